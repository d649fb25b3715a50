"""Small text defects on cards and replies, as a person reads them."""

from __future__ import annotations

from bot.blocks import override_line


def test_billing_shows_no_arrow_when_the_chosen_mode_is_the_sources():
    line = override_line("PAY_PER_REQUEST", "AWS owned key", {"billing_mode": "PAY_PER_REQUEST"})
    assert line == "*Billing:* PAY_PER_REQUEST · *Encryption:* AWS owned key"
    changed = override_line("PROVISIONED", "AWS owned key", {"billing_mode": "PAY_PER_REQUEST"})
    assert "PROVISIONED → PAY_PER_REQUEST" in changed


def test_a_batch_confirmation_names_each_table_and_its_target():
    from commands.restore import pairs_text

    text = pairs_text("MusicCollection,Sessions", "-copy")
    assert text == "`MusicCollection` → `MusicCollection-copy`, `Sessions` → `Sessions-copy`"
    assert pairs_text("orders", "orders-copy") == "`orders` → `orders-copy`"


def test_pitr_status_names_recent_events_in_words():
    from datetime import UTC, datetime

    from bot.blocks import status_blocks
    from bot.pitr import PitrInfo, TableInfo
    from bot.store import AuditEvent

    now = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
    history = [
        AuditEvent(now, "request_refused", None, "U1", "C1", "Orders", "not allowed"),
        AuditEvent(now, "pitr_period_requested", "r1", "U1", "C1", "Orders"),
        AuditEvent(now, "copy_back_done", "r2", "U2", "C1", "Orders"),
    ]
    info = TableInfo(name="Orders", status="ACTIVE", item_count=1, size_bytes=1)
    _, blocks = status_blocks("Orders", info, PitrInfo("Orders", "ENABLED"), [], history, now)
    text = str([b.to_dict() for b in blocks])
    assert "request_refused" not in text and "pitr_period_requested" not in text
    assert "Request refused" in text
    assert "Change of PITR recovery period requested" in text
    assert "Copy back done" in text


def test_a_wrongly_cased_or_mistyped_table_the_policy_names_gets_did_you_mean():
    from bot.policy import Policy

    policy = Policy(tables=["orders", "MusicCollection", "users-*"])
    no_groups = lambda group: set()  # noqa: E731
    for typed, meant in (("Orders", "orders"), ("MusicColection", "MusicCollection")):
        decision = policy.may_request("U1", "C1", typed, no_groups)
        assert not decision.allowed
        assert f"Did you mean `{meant}`?" in decision.reason, decision.reason
    # Never a table outside the policy, even one that exists and is spelled almost alike.
    decision = Policy(tables=["orders"]).may_see("U1", "C1", "Sessionz", no_groups)
    assert "Did you mean" not in decision.reason


def test_did_you_mean_only_among_the_tables_given():
    from bot.suggest import did_you_mean

    tables = ["MusicCollection", "Sessions"]
    assert did_you_mean("musiccollection", tables) == " Did you mean `MusicCollection`?"
    assert did_you_mean("prod:MusicColection@eu-west-1", tables) == (
        " Did you mean `prod:MusicCollection@eu-west-1`?"
    )
    assert did_you_mean("Payments", tables) == ""


def test_a_restore_waiting_on_aws_limit_says_queued_and_why_on_card_and_thread():
    from dataclasses import replace
    from datetime import UTC, datetime, timedelta

    from bot.blocks import approval_card, queued_text
    from bot.restores import RestoreRequest, State

    now = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
    req = RestoreRequest(
        id="abc123def456",
        source="Orders",
        target="Orders-restored",
        requester="U1",
        channel="C1",
        restore_at=now - timedelta(hours=1),
        created_at=now - timedelta(minutes=10),
        expires_at=now + timedelta(minutes=50),
    )
    # What tracking saves after AWS answered LimitExceededException.
    waiting = replace(
        req,
        state=State.APPROVED,
        limit_retries=1,
        next_check_at=now + timedelta(minutes=1),
        queued_ahead=0,
    )
    card = str([b.to_dict() for b in approval_card(waiting, now)[1]])
    assert "queued: next in line" in card and "AWS limit reached" in card, card
    thread = queued_text(waiting)
    assert "queued: next in line" in thread and "LimitExceededException" in thread, thread


def test_a_batch_card_counts_its_tables_not_the_leaders_state_alone():
    from dataclasses import replace
    from datetime import UTC, datetime, timedelta

    from bot.batches.blocks import batch_card
    from bot.restores import RestoreRequest, State

    now = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
    ids = ("r1", "r2")
    members = [
        RestoreRequest(
            id=ids[i],
            source=name,
            target=f"{name}-copy",
            requester="U1",
            channel="C1",
            restore_at=now - timedelta(hours=1),
            created_at=now - timedelta(minutes=10),
            expires_at=now + timedelta(minutes=50),
            approvals=("U2",),
            batch_id="r1",
            batch_index=i,
            batch_members=ids if i == 0 else (),
        )
        for i, name in enumerate(("MusicCollection", "Sessions"))
    ]

    def status(*states: State) -> str:
        card = batch_card([replace(m, state=s) for m, s in zip(members, states, strict=True)], now)
        return card[0]

    creating = status(State.ACTIVE, State.RESTORING)
    assert "the table is ACTIVE" not in creating
    assert "1 of 2 tables ACTIVE" in creating
    assert "all 2 tables are ACTIVE" in status(State.ACTIVE, State.ACTIVE)
    assert "1 of 2 tables ACTIVE, 1 failed" in status(State.ACTIVE, State.FAILED)


def test_an_approved_shorter_period_card_shows_the_new_window():
    from datetime import UTC, datetime, timedelta

    from bot.blocks import period_card
    from bot.period_change import PERIOD_CHANGE
    from bot.restores import RestoreRequest, State, Window

    now = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
    old_window = Window(now - timedelta(days=35), now - timedelta(minutes=5))
    req = RestoreRequest(
        id="p1",
        source="Orders",
        target="Orders",
        requester="U1",
        channel="C1",
        restore_at=None,
        created_at=now - timedelta(minutes=10),
        expires_at=now + timedelta(minutes=50),
        kind=PERIOD_CHANGE,
        recovery_days=7,
        previous_days=35,
        window=old_window,
        state=State.ACTIVE,
        decided_at=now,
    )
    text = str([b.to_dict() for b in period_card(req, now)[1]])
    window_field = text.split("Restorable window now", 1)[1].split("'}", 1)[0]
    assert "2026-11-19" in window_field, window_field  # 7 days before the approval
    assert window_field.index("2026-11-19") < window_field.index("2026-10-22")
