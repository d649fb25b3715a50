"""Finding 6 of issue 20: limits on every flood, over HTTP against the real app.

Each refusal goes only to the person who asked, says why, and starts nothing.
"""

from __future__ import annotations

import time

from bot.items.jobs import JobState
from bot.policy import Policy
from bot.settings import work_dir_of
from commands.items import APPROVE_ACTION, COMPARE_ACTION, COPY_MISSING_ACTION
from e2e.test_attacks_authz import snapshot as refusal_snapshot
from e2e.test_copy_back import RESTORED, compare, posted, restored_then_changed, wait_job
from e2e.test_drills import NEVER_DUE, drill_policy


def wait_for(check, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while not (value := check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)
    return value


def test_ten_identical_pitr_diff_start_one_comparison_and_refuse_nine(make_bot, fake, sim):
    bot, req, _ = restored_then_changed(sim, make_bot)
    sim.hold("Scan")  # the one comparison stays running while the others arrive
    try:
        for i in range(10):  # ten commands (each its own trigger_id: not a replay)
            resp = bot.sender.command(
                "/pitr-diff",
                RESTORED,
                user_id="U1",
                channel_id="C1",
                response_url=fake.response_url("U1"),
                trigger_id=f"trig.diff.{i}",
            )
            assert resp.status == 200

        refusals = wait_for(
            lambda: (
                found
                if len(found := [t for t in bot.replies_to("U1") if "already running" in t]) >= 9
                else None
            ),
            30,
            "nine refusals",
        )
        assert len(refusals) == 9
        assert "A comparison of `orders` is already running (started by U1" in refusals[0]
        (job,) = bot.services.store.job_find()
        assert job.state == JobState.COMPARING and job.restore_id == req.id
        started = [e for e in bot.services.store.audit_events() if e.event == "compare_started"]
        assert len(started) == 1
        job_files = list(work_dir_of(bot.services.settings).glob("*.sqlite"))
        assert len(job_files) <= 1
    finally:
        sim.release("Scan")
    wait_job(bot, job.id, JobState.COMPARED)


def restore_into(bot, target: str):
    """The restore into `target`, once its card is posted (BotUnderTest.wait_card returns the
    newest restore, whichever it is)."""
    found = [r for r in bot.services.store.find(limit=100) if r.target == target and r.card_ts]
    return found[0] if found else None


def test_an_approved_copy_back_runs_while_comparisons_are_running(make_bot, fake, sim):
    bot, req, _ = restored_then_changed(sim, make_bot)
    _, job = compare(bot, fake, req)
    # Two comparisons of other tables, by two people, held at their first Scan: before the
    # fix they took both of the item jobs' threads.
    others = []
    for name, user in (("ledger", "U1"), ("payments", "U3")):
        sim.create_table(name, items=3)
        bot.command("/pitr-restore", f"{name} {name}-restored latest")
        other = wait_for(lambda n=name: restore_into(bot, f"{n}-restored"), 30, "the card")
        bot.approve(other.id, "U2")
        others.append((bot.wait_state(other.id, "ACTIVE"), user))
    sim.hold("Scan")
    try:
        for other, user in others:
            bot.click(COMPARE_ACTION, other.id, user)
        comparing = {"ledger", "payments"}
        wait_for(
            lambda: (
                {j.live_table for j in bot.services.store.job_find(states=[JobState.COMPARING])}
                == comparing
            ),
            30,
            "two comparisons at work",
        )

        bot.click(COPY_MISSING_ACTION, job.id, "U1")
        posted(fake, "Copy back 12 items into orders?")
        bot.click(APPROVE_ACTION, job.id, "U2")

        posted(fake, "Copy back into orders: 12 written, 0 skipped (conflict), 0 failed")
        running = bot.services.store.job_find(states=[JobState.COMPARING])
        assert {j.live_table for j in running} == comparing  # still running, Scans held
    finally:
        sim.release("Scan")


def cards_waiting(bot) -> list:
    return [r for r in bot.services.store.find(limit=100) if r.card_ts]


def test_caps_on_requests_waiting_for_a_decision_refuse_past_the_limit(make_bot, fake, sim):
    bot = make_bot(PITR_BOT_MAX_OPEN_REQUESTS_PER_USER=2, PITR_BOT_MAX_OPEN_REQUESTS=3)
    for i in range(2):
        bot.command("/pitr-restore", f"MusicCollection flood-{i} latest")
        wait_for(lambda n=i: len(cards_waiting(bot)) == n + 1, 30, f"card {i + 1}")

    before = refusal_snapshot(bot, sim, fake)
    bot.command("/pitr-restore", "MusicCollection flood-2 latest")
    reply = bot.wait_reply("U1", "waiting for a decision")
    assert "You already have 2 requests waiting" in reply
    assert "PITR_BOT_MAX_OPEN_REQUESTS_PER_USER" in reply
    # No card, no AWS write, no post; only the audit entry every refused request gets.
    assert refusal_snapshot(bot, sim, fake) == before | {"audit": before["audit"] + 1}

    bot.command("/pitr-restore", "MusicCollection flood-3 latest", user="U3")  # 3 in all
    wait_for(lambda: len(cards_waiting(bot)) == 3, 30, "the third card")
    bot.command("/pitr-restore", "MusicCollection flood-4 latest", user="U2")
    reply = bot.wait_reply("U2", "waiting for a decision")
    assert "3 requests are waiting" in reply and "PITR_BOT_MAX_OPEN_REQUESTS)" in reply
    assert len(bot.services.store.find(limit=100)) == 3


def test_drills_are_refused_when_the_accounts_restore_slots_are_short(make_bot, fake, sim):
    # 49 of the account's 50 slots kept for restores: one restore running leaves drills none.
    bot = make_bot(policy=drill_policy(), PITR_BOT_DRILL_RESERVED_SLOTS=49)
    sim.hold_creating("incident-copy")
    bot.command("/pitr-restore", "MusicCollection incident-copy latest")
    req = bot.wait_card()
    bot.approve(req.id, "U2")
    bot.wait_state(req.id, "RESTORING")
    wait_for(lambda: sim.count("RestoreTableToPointInTime") == 1, 30, "the restore call")
    audit = len(bot.services.store.audit_events())

    bot.command("/pitr-drill", "MusicCollection")

    reply = bot.wait_reply("U1", "slots are short")
    assert "PITR_BOT_DRILL_RESERVED_SLOTS" in reply
    assert bot.services.store.drill_find(limit=10) == []
    assert sim.count("RestoreTableToPointInTime") == 1  # the incident's: no drill restore
    assert sim.count("TagResource") == 0 and sim.count("DeleteTable") == 0
    drill_events = [e for e in bot.services.store.audit_events()[audit:] if "drill" in e.event]
    assert drill_events == []
    assert not [c for c in fake.calls("chat.postMessage") if c.args.get("channel") == "C9"]
    sim.finish_creating("incident-copy")


def test_drills_per_person_are_capped(make_bot, fake, sim):
    sim.create_table("Ledger", pitr=True, items=2)
    policy = Policy(
        drills=[{"tables": ["MusicCollection", "Ledger"], "every": NEVER_DUE, "channel": "C9"}]
    )
    bot = make_bot(policy=policy, PITR_BOT_MAX_DRILLS_PER_USER=1, creating_seconds=600)
    bot.command("/pitr-drill", "MusicCollection")
    bot.wait_reply("U1", "drill of")
    wait_for(lambda: sim.count("RestoreTableToPointInTime") == 1, 30, "the first drill's restore")
    before = refusal_snapshot(bot, sim, fake)

    bot.command("/pitr-drill", "Ledger")

    reply = bot.wait_reply("U1", "You already have 1 drills running")
    assert "PITR_BOT_MAX_DRILLS_PER_USER" in reply
    assert [d.source for d in bot.services.store.drill_find(limit=10)] == ["MusicCollection"]
    assert refusal_snapshot(bot, sim, fake) == before
