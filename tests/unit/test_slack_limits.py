"""The builders at the extremes, against Slack's documented limits (support/slack_limits.py).

slack_sdk's own validation misses some limits and cannot tell whether a fact was cut off;
these tests check both: nothing over a limit, and every fact an approver decides on present.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from support.slack_limits import balanced_backticks, texts, view_violations, violations

from bot.blocks import approval_card, done_blocks, status_blocks, to_dicts
from bot.modal_blocks import Picked, restore_modal
from bot.pitr import PitrInfo, TableInfo
from bot.restores import RestoreRequest, State, Window

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
WINDOW = Window(NOW - timedelta(days=35), NOW - timedelta(minutes=5))
SOURCE = "s" * 255
TARGET = "t" * 255
GSIS = tuple(f"gsi{i:02d}-" + "g" * 250 for i in range(20))
LSIS = tuple(f"lsi{i:02d}-" + "l" * 250 for i in range(5))
APPROVERS = tuple(f"U{i:08d}" for i in range(10))
REASON = ("the deploy at nine broke the orders table badly " * 70)[:3000]
KMS_KEY = "arn:aws:kms:eu-west-1:123456789012:key/" + "k" * 36


def extreme(state: State = State.REQUESTED, **changes: object) -> RestoreRequest:
    req = RestoreRequest(
        source=SOURCE,
        target=TARGET,
        requester="U1REQUEST",
        channel="C1",
        restore_at=NOW - timedelta(hours=3),
        created_at=NOW - timedelta(minutes=10),
        expires_at=NOW + timedelta(minutes=50),
        requester_tz="Europe/Berlin",
        reason=REASON,
        window=WINDOW,
        required_approvals=10,
        approvals=APPROVERS,
        state=state,
        source_items=10**12,
        source_bytes=10**15,
        source_billing="PROVISIONED",
        source_indexes=GSIS + LSIS,
        source_encryption="AWS owned key",
        estimate="last 10 restores: 14–95 min",
        overrides={
            "billing_mode": "PAY_PER_REQUEST",
            "sse_key": KMS_KEY,
            "exclude_indexes": list(GSIS[:10]),
        },
    )
    return replace(req, **changes)  # type: ignore[arg-type]


@pytest.mark.parametrize("state", list(State))
def test_the_approval_card_at_the_extremes_keeps_every_fact(state: State) -> None:
    _, card = approval_card(extreme(state), NOW)
    data = to_dicts(card)
    assert violations(data) == []
    shown = "\n".join(texts(data))
    # What the approver decides on, all there:
    assert "*Billing:* PROVISIONED → PAY_PER_REQUEST" in shown
    assert f"*Encryption:* AWS owned key → KMS key `{KMS_KEY}`" in shown
    assert "Restorable window" in shown and "2026-10-22" in shown
    assert "<@U1REQUEST>" in shown
    assert "10 of 10: " + ", ".join(f"<@{u}>" for u in APPROVERS) in shown
    assert "*25 indexes, 10 left out:*" in shown and "*Kept (15):*" in shown
    assert "more" in shown  # long lists are summarised, not cut
    assert SOURCE in shown and TARGET in shown
    # The reason: as much as fits, ending at a word with an ellipsis.
    reason = next(t for t in texts(data) if t.startswith("*Reason*"))
    assert reason.endswith("…") and len(reason) > 2500
    assert reason.removeprefix("*Reason*\n").removesuffix("…") in REASON
    for text in texts(data):
        assert balanced_backticks(text), text


def test_every_left_out_index_is_named_or_counted() -> None:
    _, card = approval_card(extreme(), NOW)
    facts = next(t for t in texts(to_dicts(card)) if "left out:" in t)
    named = sum(name in facts for name in GSIS[:10])
    counted = int(facts.rsplit("…and ", 1)[1].split(" more")[0]) if "…and" in facts else 0
    assert named >= 1 and named + counted == 10, facts


def test_short_facts_are_not_summarised() -> None:
    req = extreme(
        source_indexes=("by-customer", "by-date"),
        overrides={"exclude_indexes": ["by-date"]},
        reason="bad deploy",
    )
    shown = "\n".join(texts(to_dicts(approval_card(req, NOW)[1])))
    assert "*2 indexes, 1 left out:* `by-date`" in shown
    assert "*Kept (1):* `by-customer`" in shown
    assert "more" not in shown and "*Reason*\nbad deploy" in shown


def test_done_and_status_at_the_extremes() -> None:
    req = extreme(State.ACTIVE, item_count=10**12, size_bytes=10**15, finished_at=NOW)
    assert violations(to_dicts(done_blocks(req, NOW)[1])) == []
    info = TableInfo(SOURCE, "ACTIVE", item_count=10**12, size_bytes=10**15, indexes=GSIS)
    status = status_blocks(SOURCE, info, PitrInfo(SOURCE, "ENABLED", WINDOW, 35), [req], [], NOW)
    assert violations(to_dicts(status[1])) == []


# The form only offers sources whose names fit Slack's 150-character option value
# (commands/modal.py source_choices); longer ones are restored with the command.
MODAL_SOURCE = "s" * 150


@pytest.mark.parametrize("pitr", [True, False, None])
def test_the_modal_source_line_fits_with_many_long_indexes(pitr: bool | None) -> None:
    info = TableInfo(
        MODAL_SOURCE, "ACTIVE", item_count=10**12, billing_mode="PROVISIONED", indexes=GSIS + LSIS
    )
    picked = Picked(MODAL_SOURCE, TARGET, pitr=pitr, table=info, described=True)
    data = json.loads(json.dumps(restore_modal("C1", picked).to_dict()))
    assert view_violations(data) == []
    line = next(t for t in texts(data["blocks"]) if t.startswith(f"`{MODAL_SOURCE}` · "))
    assert "GSIs (25): " in line and "more" in line
    assert balanced_backticks(line)
    if pitr is False:
        assert "can't be restored until PITR is on" in line
