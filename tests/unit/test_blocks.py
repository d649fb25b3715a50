"""Block Kit builders: bot.blocks. Everything goes through slack_sdk's own validation."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from slack_sdk.models.blocks import ActionsBlock, Block

from bot import blocks
from bot.blocks import (
    APPROVE_ACTION,
    DENY_ACTION,
    approval_card,
    done_blocks,
    enabled_text,
    esc,
    failed_text,
    progress_text,
    requester_notice,
    started_text,
    status_blocks,
    to_dicts,
)
from bot.pitr import PitrInfo, TableInfo
from bot.restores import NOT_CARRIED_OVER, RestoreRequest, State, Window
from bot.store import AuditEvent

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
WINDOW = Window(NOW - timedelta(days=35), NOW - timedelta(minutes=5))
HOSTILE = "<!channel> <@U999> <https://evil.example|click> &amp; <!here> <#C123>"
MARKUP = ("<!channel>", "<@U999>", "<https://evil", "<!here>", "<#C123>")


def make(state: State = State.REQUESTED, **kw: object) -> RestoreRequest:
    base = RestoreRequest(
        id="abc123def456",
        source="Orders",
        target="Orders-restored",
        requester="U1",
        channel="C1",
        restore_at=datetime(2026, 11, 26, 9, 30, tzinfo=UTC),
        created_at=NOW - timedelta(minutes=10),
        expires_at=NOW + timedelta(minutes=50),
        requester_tz="Europe/Berlin",
        reason="bad deploy at 09:31",
        window=WINDOW,
        required_approvals=2,
        approvals=("U2",),
    )
    return replace(base, state=state, **kw)  # type: ignore[arg-type]


def dump(block_list: list[Block]) -> str:
    return json.dumps(to_dicts(block_list), ensure_ascii=False)


def actions(block_list: list[Block]) -> list[dict]:
    return [b.to_dict() for b in block_list if isinstance(b, ActionsBlock)]


# -- esc ---------------------------------------------------------------------------------------
def test_esc_escapes_the_three_control_characters() -> None:
    assert esc("<!channel> & <@U1>") == "&lt;!channel&gt; &amp; &lt;@U1&gt;"
    assert esc("&lt;") == "&amp;lt;", "already-escaped text must not turn back into markup"
    assert esc(42) == "42"


# -- approval card -----------------------------------------------------------------------------
def test_requested_card_has_exactly_approve_and_deny() -> None:
    _, card = approval_card(make(), NOW)
    found = actions(card)
    assert len(found) == 1
    buttons = found[0]["elements"]
    assert [b["text"]["text"] for b in buttons] == ["Approve", "Deny"]
    assert [b["action_id"] for b in buttons] == [APPROVE_ACTION, DENY_ACTION]
    assert all(b["value"] == "abc123def456" for b in buttons)
    assert [b.get("style") for b in buttons] == ["primary", "danger"]
    assert found[0]["block_id"] == blocks.DECISION_BLOCK


@pytest.mark.parametrize(
    "state",
    [
        State.APPROVED,
        State.RESTORING,
        State.DENIED,
        State.EXPIRED,
        State.ACTIVE,
        State.FAILED,
        State.CANCELLED,
    ],
)
def test_decided_card_has_no_buttons(state: State) -> None:
    fallback, card = approval_card(make(state, decided_by="U2"), NOW)
    assert actions(card) == []
    assert '"button"' not in dump(card)
    assert blocks.STATUS_LINE[state] in fallback


def test_card_shows_what_is_being_decided() -> None:
    fallback, card = approval_card(make(), NOW)
    text = dump(card)
    assert "`Orders`" in text
    assert "`Orders-restored`" in text
    assert "<@U1>" in text
    assert "1 of 2: <@U2>" in text
    assert "2026-11-26 09:30:00 UTC (10:30 Europe/Berlin)" in text
    assert "2026-10-22 12:00:00 UTC → 2026-11-26 11:55:00 UTC" in text  # the window
    assert "bad deploy at 09:31" in text
    assert "Waiting for approval" in text
    assert "Orders" in fallback and "Orders-restored" in fallback


def test_card_for_latest_and_unknown_window() -> None:
    _, card = approval_card(make(restore_at=None, window=None, approvals=()), NOW)
    text = dump(card)
    assert "latest restorable time" in text
    assert "unknown" in text
    assert "0 of 2" in text


def test_card_names_who_denied() -> None:
    _, card = approval_card(make(State.DENIED, decided_by="U3"), NOW)
    assert "(by <@U3>)" in dump(card)


def test_card_with_source_facts() -> None:
    req = make(
        source_items=1234,
        source_bytes=2048,
        source_billing="PAY_PER_REQUEST",
        source_indexes=("by-customer", "by-date"),
        estimate="last 3 restores: 14–19 min",
        overrides={"exclude_indexes": ["by-date"], "sse_key": "alias/restores"},
    )
    _, card = approval_card(req, NOW)
    text = dump(card)
    assert "1,234 items" in text
    assert "2.0 KB" in text
    assert "`by-customer`" in text
    assert "1 left out:* `by-date`" in text
    assert "KMS key `alias/restores`" in text
    assert "last 3 restores: 14–19 min" in text


def test_card_without_history_says_so() -> None:
    assert "no history" in dump(approval_card(make(estimate=""), NOW)[1])


def test_hostile_reason_is_escaped_on_the_card() -> None:
    fallback, card = approval_card(make(reason=HOSTILE), NOW)
    text = dump(card)
    for markup in MARKUP:
        assert markup not in text
        assert markup not in fallback
    assert "&lt;!channel&gt;" in text


def test_hostile_text_is_escaped_everywhere() -> None:
    req = make(
        State.FAILED,
        reason=HOSTILE,
        error=HOSTILE,
        requester_tz=HOSTILE,
        target_status=HOSTILE,
        decided_by="<!channel>",
    )
    texts = [
        failed_text(req),
        progress_text(req, NOW),
        started_text(req),
        requester_notice(req),
        requester_notice(replace(req, state=State.DENIED)),
        dump(approval_card(req, NOW)[1]),
        dump(done_blocks(req, NOW)[1]),
    ]
    for text in texts:
        for markup in MARKUP:
            assert markup not in text, text


def test_hostile_audit_detail_is_escaped_in_status() -> None:
    history = [AuditEvent(NOW, HOSTILE, "r1", "<!channel>", "C1", "Orders", HOSTILE)]
    info = TableInfo(name="Orders", status=HOSTILE, item_count=1, size_bytes=1)
    pitr = PitrInfo("Orders", HOSTILE)
    _, status = status_blocks("Orders", info, pitr, [], history, NOW)
    text = dump(status)
    for markup in MARKUP:
        assert markup not in text


# -- done, failed, notices ---------------------------------------------------------------------
def test_done_blocks_say_what_to_do_next() -> None:
    req = make(
        State.ACTIVE,
        restore_called_at=NOW - timedelta(hours=1, minutes=5),
        finished_at=NOW,
        item_count=42,
        size_bytes=3 * 1024 * 1024,
    )
    headline, done = done_blocks(req, NOW + timedelta(hours=5))
    assert "Orders-restored" in headline and "ACTIVE" in headline
    assert "1 h 05 min" in headline
    text = dump(done)
    assert "`Orders-restored`" in text
    assert "*ACTIVE*" in text
    assert "Items: 42" in text
    assert "3.0 MB" in text
    for item in NOT_CARRIED_OVER:
        assert item in text
    assert "/pitr-enable Orders-restored" in text


def test_done_blocks_for_latest_and_unknown_counts() -> None:
    req = make(State.ACTIVE, restore_at=None, finished_at=NOW)
    text = dump(done_blocks(req, NOW)[1])
    assert "latest restorable time" in text
    assert "Items: unknown" in text


def test_failed_text_carries_the_error_and_next_step() -> None:
    text = failed_text(make(State.FAILED, error="Table `x` is busy"))
    assert "FAILED" in text
    assert "is busy" in text
    assert "/pitr-restore" in text


def test_requester_notices() -> None:
    assert "denied by <@U3>" in requester_notice(make(State.DENIED, decided_by="U3"))
    assert "expired" in requester_notice(make(State.EXPIRED))


def test_a_requester_withdrawing_is_told_withdrawn_not_denied() -> None:
    req = make(State.DENIED, decided_by="U1")
    assert req.requester == "U1"
    notice = requester_notice(req)
    assert "withdrew" in notice and "denied" not in notice
    fallback, card = approval_card(req, NOW)
    assert "Withdrawn" in dump(card) and "Denied" not in dump(card)
    assert "Withdrawn" in fallback and "Denied" not in fallback
    assert "expired" in requester_notice(make(State.EXPIRED))


def test_progress_text() -> None:
    req = make(
        State.RESTORING,
        target_status="CREATING",
        restore_called_at=NOW - timedelta(minutes=12, seconds=30),
        polls=7,
    )
    text = progress_text(req, NOW)
    assert "`Orders-restored` is CREATING" in text
    assert "12 min 30 s elapsed" in text
    assert "#7" in text


def test_status_blocks_pitr_off_says_how_to_enable() -> None:
    info = TableInfo(name="Orders", status="ACTIVE", item_count=3, size_bytes=100)
    _, status = status_blocks("Orders", info, PitrInfo("Orders", "DISABLED"), [], [], NOW)
    text = dump(status)
    assert "DISABLED" in text
    assert "/pitr-enable Orders" in text
    assert "No restores in flight" in text


def test_status_blocks_pitr_on_with_window_and_in_flight() -> None:
    info = TableInfo(name="Orders", status="ACTIVE", item_count=3, size_bytes=100)
    pitr = PitrInfo("Orders", "ENABLED", WINDOW, 7)
    restoring = make(State.RESTORING, restore_called_at=NOW - timedelta(minutes=3))
    _, status = status_blocks("Orders", info, pitr, [restoring], [], NOW)
    text = dump(status)
    assert "*ENABLED*" in text
    assert "7 days" in text
    assert "`Orders-restored`: RESTORING for 3 min 00 s" in text


def test_enabled_text() -> None:
    text = enabled_text(PitrInfo("Orders", "ENABLED", None, 7))
    assert "ENABLED" in text and "`Orders`" in text and "7 days" in text
    assert "default 35 days" in enabled_text(PitrInfo("Orders", "ENABLED"))


# -- Slack's limits ----------------------------------------------------------------------------
LONG_SOURCE = "s" * 255
LONG_TARGET = "t" * 255


def long_request(state: State) -> RestoreRequest:
    return make(
        state,
        source=LONG_SOURCE,
        target=LONG_TARGET,
        reason="<&>" * 167,  # 501 characters, each escaped to 4-5
        approvals=tuple(f"U{i:08d}" for i in range(10)),
        required_approvals=10,
        decided_by="U00000009",
        error="x" * 1000,
        item_count=10**12,
        size_bytes=10**15,
        finished_at=NOW,
        restore_called_at=NOW - timedelta(hours=30),
        polls=100_000,
    )


@pytest.mark.parametrize("state", list(State))
def test_every_builder_passes_slack_validation_with_long_names(state: State) -> None:
    req = replace(
        long_request(state),
        source_items=10**12,
        source_bytes=10**15,
        source_billing="PROVISIONED",
        source_indexes=tuple(f"{i}" * 255 for i in range(10)) + ("extra",),
    )
    fallback, card = approval_card(req, NOW)
    to_dicts(card)  # raises SlackObjectFormationError if any limit is exceeded
    assert len(fallback) <= 4000
    headline, done = done_blocks(req, NOW)
    to_dicts(done)
    assert len(headline) <= 4000


def test_status_blocks_pass_validation_with_long_names_and_history() -> None:
    info = TableInfo(name=LONG_SOURCE, status="ACTIVE", item_count=10**12, size_bytes=10**15)
    pitr = PitrInfo(LONG_SOURCE, "ENABLED", WINDOW, 35)
    in_flight = [long_request(State.RESTORING)]
    history = [
        AuditEvent(NOW, "requested", "r1", "U1", "C1", LONG_SOURCE, "<&>" * 400) for _ in range(100)
    ]
    _, status = status_blocks(LONG_SOURCE, info, pitr, in_flight, history, NOW)
    to_dicts(status)


def test_status_blocks_pass_validation_with_fifty_restores_in_flight() -> None:
    # DynamoDB runs up to 50 restores at once per account; /pitr-status must still render.
    info = TableInfo(name="Orders", status="ACTIVE", item_count=1, size_bytes=1)
    pitr = PitrInfo("Orders", "ENABLED", WINDOW, 35)
    in_flight = [
        make(State.RESTORING, target=f"Orders-restore-incident-2026-11-26-{i:02d}")
        for i in range(50)
    ]
    _, status = status_blocks("Orders", info, pitr, in_flight, [], NOW)
    to_dicts(status)


def test_fit_cuts_at_a_line_end_when_there_is_one() -> None:
    text = "\n".join(f"line {i:04d} " + "x" * 40 for i in range(200))
    cut = blocks.fit(text, 1000)
    assert len(cut) <= 1000 and cut.endswith("\n…")
    kept = cut.removesuffix("\n…").split("\n")
    assert kept == text.split("\n")[: len(kept)]  # whole lines only


def test_fit_cuts_a_single_long_line_inside_it() -> None:
    """The Home tab's case: one over-long line still fills the limit (no lone "…")."""
    cut = blocks.fit("y" * 5000, 3000)
    assert cut == "y" * 2999 + "…"
    assert blocks.fit("short", 3000) == "short"


def test_status_recent_activity_is_cut_at_a_word_with_an_ellipsis() -> None:
    detail = "the requester asked for a restore because the deploy at nine broke the orders " * 3
    history = [AuditEvent(NOW, "requested", "r1", "U1", "C1", "Orders", detail)]
    info = TableInfo(name="Orders", status="ACTIVE", item_count=1, size_bytes=1)
    _, status = status_blocks("Orders", info, PitrInfo("Orders", "ENABLED"), [], history, NOW)
    shown = status[-1].to_dict()["elements"][0]["text"]
    kept = shown.rsplit(" · ", 1)[1]
    assert kept.endswith("…") and len(kept) <= 120
    words = detail.split()
    # Every word shown is a whole word of the detail: nothing cut mid-word.
    assert all(w in words for w in kept.removesuffix("…").split())
