"""Restore drills, the pure part: state machine, schedule, policy key, what people read."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from bot.drills.model import (
    Drill,
    DrillState,
    InvalidTransition,
    drill_status_line,
    drill_target,
    parse_every,
    report_line,
    slot_drill_id,
)
from bot.policy import Policy, PolicyError, load_policy

NOW = datetime(2026, 11, 29, 12, 0, 30, tzinfo=UTC)


def drill(**kw) -> Drill:
    base = dict(
        source="orders",
        target=drill_target("orders", NOW),
        channel="C9",
        slot=NOW,
        created_at=NOW,
    )
    base.update(kw)
    return Drill(**base)


def test_the_happy_path_goes_through_every_state_in_order():
    d = drill()
    d = d.advance(DrillState.RESTORING, NOW, restore_called_at=NOW)
    d = d.advance(DrillState.VERIFYING, NOW, active_at=NOW + timedelta(minutes=20))
    d = d.advance(DrillState.CLEANING, NOW, passed=True)
    d = d.advance(DrillState.PASSED, NOW, finished_at=NOW)
    assert d.final and d.restore_duration == timedelta(minutes=20)


@pytest.mark.parametrize(
    ("start", "to"),
    [
        (DrillState.STARTED, DrillState.VERIFYING),  # no verifying what was never restored
        (DrillState.STARTED, DrillState.PASSED),
        (DrillState.RESTORING, DrillState.PASSED),  # never pass without verify and cleanup
        (DrillState.VERIFYING, DrillState.PASSED),  # never pass with the table still there
        (DrillState.VERIFYING, DrillState.FAILED),  # a verified table is always cleaned up
        (DrillState.PASSED, DrillState.FAILED),
        (DrillState.FAILED, DrillState.STARTED),
    ],
)
def test_forbidden_transitions_are_refused(start, to):
    with pytest.raises(InvalidTransition):
        drill(state=start).advance(to, NOW)


def test_record_round_trips():
    d = drill(state=DrillState.CLEANING, restore_called_at=NOW, passed=True, items=5)
    assert Drill.from_record(d.to_record()) == d


def test_drill_table_name_and_slot_ids():
    assert drill_target("orders", NOW) == "orders-drill-202611291200"
    assert slot_drill_id("orders", NOW) == slot_drill_id("orders", NOW)
    assert slot_drill_id("orders", NOW) != slot_drill_id("payments", NOW)
    assert slot_drill_id("orders", NOW) != slot_drill_id("orders", NOW + timedelta(days=7))


# -- schedule ---------------------------------------------------------------------------------
@pytest.mark.parametrize(("text", "seconds"), [("7d", 7 * 86400), ("12h", 43200), ("10s", 10)])
def test_intervals(text, seconds):
    assert parse_every(text).period == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["0d", "7 days", "weekly", "* * *", "61 * * * *", ""])
def test_bad_every_is_refused_with_what_is_accepted(text):
    with pytest.raises(ValueError, match="every"):
        parse_every(text)


def test_interval_slots_are_aligned_and_the_same_for_every_replica():
    every = parse_every("12h")
    assert every.due_slot(NOW) == datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
    assert every.due_slot(NOW + timedelta(minutes=10)) == every.due_slot(NOW)


def test_a_slot_missed_by_more_than_an_hour_is_skipped_not_run_late():
    every = parse_every("12h")
    assert every.due_slot(datetime(2026, 11, 29, 13, 30, tzinfo=UTC)) is None


def test_a_short_interval_has_a_slot_at_every_step():
    every = parse_every("10s")
    assert every.due_slot(NOW) == datetime(2026, 11, 29, 12, 0, 30, tzinfo=UTC)
    assert every.due_slot(NOW + timedelta(seconds=9)) == every.due_slot(NOW)
    assert every.due_slot(NOW + timedelta(seconds=10)) == NOW + timedelta(seconds=10)


def test_cron_due_slot_is_the_latest_fire_time():
    every = parse_every("0 3 * * 1")  # Mondays 03:00 UTC
    monday = datetime(2026, 11, 30, 3, 0, tzinfo=UTC)
    assert every.due_slot(monday + timedelta(minutes=5)) == monday
    assert every.due_slot(monday - timedelta(minutes=1)) is None
    assert every.due_slot(monday + timedelta(hours=2)) is None  # missed: wait a week
    assert parse_every("*/15 * * * *").due_slot(NOW) == datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


# -- the policy key -----------------------------------------------------------------------------
def test_policy_drills_key(tmp_path):
    path = tmp_path / "policy.yml"
    path.write_text(
        'drills:\n  - tables: ["orders", "pay*"]\n    every: "7d"\n    channel: C0123ABCD\n'
        '  - tables: ["*"]\n    every: "0 3 * * *"\n    channel: C0999\n',
        encoding="utf-8",
    )
    policy = load_policy(path)
    assert policy.drill_for("payments").channel == "C0123ABCD"
    assert policy.drill_for("other").every == "0 3 * * *"
    assert Policy().drill_for("orders") is None


@pytest.mark.parametrize(
    ("entry", "complaint"),
    [
        ('{tables: [orders], every: "weekly", channel: C1}', "every"),
        ('{tables: [orders], every: "7d", channel: "#general"}', "channel"),
        ('{tables: [], every: "7d", channel: C1}', "tables"),
        ('{tables: [orders], every: "7d", channel: C1, approvers: [U1]}', "approvers"),
        (
            '{tables: [orders], every: "7d", channel: C1, require_approval: maybe}',
            "require_approval",
        ),
    ],
)
def test_bad_drill_entries_are_refused_at_load(tmp_path, entry, complaint):
    path = tmp_path / "policy.yml"
    path.write_text(f"drills:\n  - {entry}\n", encoding="utf-8")
    with pytest.raises(PolicyError) as err:
        load_policy(path)
    assert complaint in str(err.value)


def test_require_approval_key_defaults_to_false_and_reads_true(tmp_path):
    path = tmp_path / "policy.yml"
    path.write_text(
        'drills:\n  - tables: ["orders"]\n    every: "7d"\n    channel: C1\n'
        "    require_approval: true\n"
        '  - tables: ["*"]\n    every: "7d"\n    channel: C2\n',
        encoding="utf-8",
    )
    policy = load_policy(path)
    assert policy.drill_for("orders").require_approval is True
    assert policy.drill_for("other").require_approval is False


def test_a_drill_awaiting_approval_starts_or_is_cancelled_and_nothing_else():
    waiting = drill(state=DrillState.AWAITING_APPROVAL)
    assert not waiting.final
    assert waiting.advance(DrillState.STARTED, NOW).state == DrillState.STARTED
    assert waiting.advance(DrillState.CANCELLED, NOW).final
    for to in (DrillState.RESTORING, DrillState.PASSED, DrillState.FAILED):
        with pytest.raises(InvalidTransition):
            waiting.advance(to, NOW)
    with pytest.raises(InvalidTransition):
        drill(state=DrillState.CANCELLED).advance(DrillState.STARTED, NOW)


def test_status_line_tells_a_drill_waiting_for_approval_and_ignores_cancelled_ones():
    waiting = drill(state=DrillState.AWAITING_APPROVAL)
    cancelled = drill(state=DrillState.CANCELLED, finished_at=NOW, problem="denied")
    assert drill_status_line([waiting]) == "Drills: a drill waits for approval."
    assert drill_status_line([cancelled]) is None  # it never ran: no "last drill failed"
    line = report_line(replace(cancelled, decided_by="U2"))
    assert "not run: denied by <@U2>" in line


# -- what people read ---------------------------------------------------------------------------
def test_report_line_says_passed_duration_and_items():
    d = drill(
        state=DrillState.PASSED,
        restore_called_at=NOW,
        active_at=NOW + timedelta(minutes=21, seconds=4),
        items=5,
        source_items=5,
        sampled=5,
        matched=5,
        cleanup="drill table deleted",
    )
    line = report_line(d)
    assert "passed" in line and "21 min 04 s" in line and "5 items" in line
    assert "\n" not in line


def test_report_line_says_failed_and_why():
    line = report_line(drill(state=DrillState.FAILED, problem="PITR is not enabled"))
    assert "FAILED" in line and "PITR is not enabled" in line and "not restored" in line


def test_status_line_shows_last_drill_and_range():
    def passed(minutes: int, day: int) -> Drill:
        at = NOW - timedelta(days=day)
        return drill(
            state=DrillState.PASSED,
            restore_called_at=at,
            active_at=at + timedelta(minutes=minutes),
            finished_at=at + timedelta(minutes=minutes + 1),
        )

    line = drill_status_line([passed(20, 1), passed(35, 8)])
    assert "last drill passed 2026-11-28" in line
    assert "20 min 00 s–35 min 00 s" in line
    assert drill_status_line([]) is None


@pytest.mark.parametrize(
    ("weekday", "expected"),
    [("0", "Sunday"), ("7", "Sunday"), ("1", "Monday"), ("1-5", "Monday"), ("sat", "Saturday")],
)
def test_cron_weekdays_count_from_sunday_like_cron(weekday, expected):
    # APScheduler 3 alone would read "1" as Tuesday.
    every = parse_every(f"0 3 * * {weekday}")
    fire = every.cron.get_next_fire_time(None, datetime(2026, 11, 28, 4, tzinfo=UTC))  # Sat
    assert fire.strftime("%A") == expected


def test_report_line_keeps_aws_words_plain():
    line = report_line(drill(state=DrillState.FAILED, problem="refused <!channel> & co"))
    assert "<!channel>" not in line and "&lt;!channel&gt; &amp; co" in line
