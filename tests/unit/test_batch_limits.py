"""The batch's builders at the extremes, against Slack's documented limits
(support/slack_limits.py), as test_slack_limits.py does for the single-table card.

Nothing an approver or the requester decides on may be cut: every table is named or counted,
the options and the reason's start are shown, failures are never the part that is cut, and the
status line and the buttons are always there.
"""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from support.slack_limits import balanced_backticks, texts, violations

from bot.batches.blocks import (
    batch_card,
    batch_done_blocks,
    batch_progress_text,
    batch_requester_notice,
    batch_status,
)
from bot.blocks import to_dicts
from bot.restores import RestoreRequest, State, Window

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
WINDOW = Window(NOW - timedelta(days=35), NOW - timedelta(minutes=5))
GSIS = tuple(f"gsi{i:02d}-" + "g" * 250 for i in range(20))
LSIS = tuple(f"lsi{i:02d}-" + "l" * 250 for i in range(5))
APPROVERS = tuple(f"U{i:08d}" for i in range(10))
REASON = ("the deploy at nine broke the orders table badly " * 70)[:3000]
KMS_KEY = "arn:aws:kms:eu-central-1:123456789012:key/" + "k" * 36
OVERRIDES = {
    "billing_mode": "PAY_PER_REQUEST",
    "sse_key": KMS_KEY,
    "exclude_indexes": list(GSIS + LSIS),
}
STATES = [State.REQUESTED, State.APPROVED, State.DENIED, State.EXPIRED]


def source(i: int) -> str:
    return f"{i:03d}" + "s" * 252  # 255 characters, DynamoDB's longest name


def target(i: int) -> str:
    return f"{i:03d}" + "t" * 252 + "@eu-central-1"  # and across regions


def batch(n: int, state: State = State.REQUESTED, **changes: object) -> list[RestoreRequest]:
    """`n` tables of the longest names, with every option, leader first."""
    ids = tuple(f"r{i:04d}" for i in range(n))
    members = []
    for i in range(n):
        req = RestoreRequest(
            id=ids[i],
            source=source(i),
            target=target(i),
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
            decided_by="U00000009" if state == State.DENIED else None,
            source_items=10**12,
            source_bytes=10**15,
            source_billing="PROVISIONED",
            source_indexes=GSIS + LSIS,
            source_encryption="AWS owned key",
            overrides=dict(OVERRIDES),
            batch_id=ids[0],
            batch_index=i,
            batch_members=ids if i == 0 else (),
        )
        members.append(replace(req, **changes))  # type: ignore[arg-type]
    return members


def counted(text: str) -> int:
    """N of the last "…and N more" in `text`, else 0."""
    found = re.findall(r"…and (\d+) more", text)
    return int(found[-1]) if found else 0


def named_or_counted(text: str, names: list[str]) -> int:
    return sum(f"`{name}`" in text or f"{name} " in text for name in names) + counted(text)


@pytest.mark.parametrize("n", [1, 50])
@pytest.mark.parametrize("state", STATES)
def test_the_batch_card_at_the_extremes_keeps_every_fact(state: State, n: int) -> None:
    members = batch(n, state)
    _, card = batch_card(members, NOW)
    data = to_dicts(card)
    assert violations(data) == []
    shown = texts(data)
    everything = "\n".join(shown)
    assert f"Restore {n} tables to one instant" in everything
    # The options, before the table list, as on the single-table card.
    assert any(t.startswith("*Billing:*") for t in shown), "the options are not shown"
    billing = next(i for i, t in enumerate(shown) if t.startswith("*Billing:*"))
    tables = next(i for i, t in enumerate(shown) if t.startswith("*Tables"))
    assert billing < tables
    assert shown[billing] == (
        f"*Billing:* PROVISIONED → PAY_PER_REQUEST · *Encryption:* AWS owned key → KMS key "
        f"`{KMS_KEY}`"
    )
    left_out = next(t for t in shown if "left out" in t)
    assert left_out.startswith("*Indexes left out of each table (25):*")
    assert named_or_counted(left_out, list(GSIS + LSIS)) == 25
    # Every table listed (50 fit when the list is spread over several sections).
    assert all(f"`{source(i)}` → `{target(i)}`" in everything for i in range(n))
    assert f"*Tables ({n})*" in everything
    assert "10 of 10: " + ", ".join(f"<@{u}>" for u in APPROVERS) in everything
    assert "Data crosses regions" in everything
    # The reason: its start, cut at a word with an ellipsis, never emptied.
    reason = next(t for t in shown if t.startswith("*Reason*"))
    assert reason.endswith("…") and len(reason) > 2500
    assert reason.removeprefix("*Reason*\n").removesuffix("…") in REASON
    # The status line always; the buttons exactly while undecided, last.
    status = data[-2 if state == State.REQUESTED else -1]
    assert status["type"] == "context"
    assert status["elements"][0]["text"].startswith(batch_status(members))
    buttons = [b for b in data if b["type"] == "actions"]
    if state == State.REQUESTED:
        assert data[-1]["type"] == "actions" and len(buttons) == 1
        assert [e["text"]["text"] for e in buttons[0]["elements"]] == ["Approve", "Deny"]
    else:
        assert buttons == []
    for text in shown:
        assert balanced_backticks(text), text


def test_a_long_reason_without_spaces_is_cut_not_emptied() -> None:
    _, card = batch_card(batch(3, reason="x" * 3000), NOW)
    data = to_dicts(card)
    assert violations(data) == []
    reason = next(t for t in texts(data) if t.startswith("*Reason*"))
    assert reason.startswith("*Reason*\n" + "x" * 2000) and reason.endswith("…")


def test_more_tables_than_a_message_holds_are_counted_and_the_buttons_stay() -> None:
    members = batch(300)
    _, card = batch_card(members, NOW)
    data = to_dicts(card)
    assert violations(data) == []  # 50 blocks at most
    everything = "\n".join(texts(data))
    named = sum(f"`{source(i)}`" in everything for i in range(300))
    assert named > 100 and named + counted(everything) == 300
    assert "more tables" in everything
    assert data[-1]["type"] == "actions" and data[-2]["type"] == "context"


@pytest.mark.parametrize("failed", [1, 5, 50])
def test_the_progress_reply_names_or_counts_every_table_failures_first(failed: int) -> None:
    members = batch(50, State.RESTORING, target_status="CREATING", restore_called_at=NOW)
    # The failed ones come last in the batch: they must not be what is cut.
    members[-failed:] = [
        replace(m, state=State.FAILED, error="AWS said: " + "no " * 1000) for m in members[-failed:]
    ]
    text = batch_progress_text(members, NOW)
    assert len(text) <= 3000 and balanced_backticks(text)
    assert text.startswith(":rocket: Restoring 50 tables to the same instant:")
    shown_failed = [m for m in members[-failed:] if f"`{m.target}`: FAILED: AWS said" in text]
    assert shown_failed == members[-failed:] or failed == 50
    assert named_or_counted(text, [m.target for m in members]) == 50
    if failed == 50:
        assert "FAILED" in text.rsplit("…and", 1)[1]  # the rest counted by state


@pytest.mark.parametrize("n, failed", [(1, 1), (50, 3), (50, 50)])
def test_the_summary_names_every_table_failures_first(n: int, failed: int) -> None:
    members = batch(n, State.ACTIVE, item_count=10**12, size_bytes=10**15, finished_at=NOW)
    members[-failed:] = [
        replace(m, state=State.FAILED, error="DELETING instead of ACTIVE: " + "x " * 1500)
        for m in members[-failed:]
    ]
    fallback, blocks = batch_done_blocks(members, NOW)
    data = to_dicts(blocks)
    assert violations(data) == []
    everything = "\n".join(texts(data))
    assert all(f"`{m.target}`" in everything for m in members)  # they all fit in 50 sections
    first = texts(data)[0]
    assert first.startswith(f"*{n - failed} of {n} tables restored; {failed} failed: ")
    assert (
        f":x: `{members[-failed].source}` → `{members[-failed].target}` FAILED: DELETING" in first
    )
    assert len(fallback) <= 3000
    assert fallback.startswith(f"{n - failed} of {n} tables restored; {failed} failed: ")
    assert named_or_counted(fallback.split(" — ", 1)[1], [m.target for m in members]) == n
    for text in texts(data):
        assert balanced_backticks(text), text


@pytest.mark.parametrize("state", [State.DENIED, State.EXPIRED, "withdrawn"])
def test_the_requester_notice_names_or_counts_every_table(state: State | str) -> None:
    if state == "withdrawn":
        members = batch(50, State.DENIED, decided_by="U1REQUEST")
    else:
        members = batch(50, state)  # type: ignore[arg-type]
    notice = batch_requester_notice(members)
    assert len(notice) <= 3000 and balanced_backticks(notice)
    assert "50 tables" in notice and "nothing was restored" in notice
    assert named_or_counted(notice, [m.source for m in members]) == 50
    assert notice.endswith("more tables")
