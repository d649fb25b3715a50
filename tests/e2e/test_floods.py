"""Finding 6 of issue 20: limits on every flood, over HTTP against the real app.

Each refusal goes only to the person who asked, says why, and starts nothing.
"""

from __future__ import annotations

import time

from bot.items.jobs import JobState
from bot.settings import work_dir_of
from commands.items import APPROVE_ACTION, COMPARE_ACTION, COPY_MISSING_ACTION
from e2e.test_attacks_authz import snapshot as refusal_snapshot
from e2e.test_copy_back import RESTORED, compare, posted, restored_then_changed, wait_job


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


def test_an_approved_copy_back_runs_while_comparisons_are_running(make_bot, fake, sim):
    bot, req, _ = restored_then_changed(sim, make_bot)
    _, job = compare(bot, fake, req)
    # Two comparisons of other tables, by two people, held at their first Scan: before the
    # fix they took both of the item jobs' threads.
    others = []
    for name, user in (("ledger", "U1"), ("payments", "U3")):
        sim.create_table(name, items=3)
        others.append((bot.restore_to_active(name, f"{name}-restored"), user))
    sim.hold("Scan")
    try:
        for other, user in others:
            bot.click(COMPARE_ACTION, other.id, user)
        wait_for(lambda: sim.gates.waiting("Scan") >= 2, 30, "two comparisons at work")

        bot.click(COPY_MISSING_ACTION, job.id, "U1")
        posted(fake, "Copy back 12 items into orders?")
        bot.click(APPROVE_ACTION, job.id, "U2")

        posted(fake, "Copy back into orders: 12 written, 0 skipped (conflict), 0 failed")
        assert sim.gates.waiting("Scan") >= 2  # the comparisons were still running
        running = bot.services.store.job_find(states=[JobState.COMPARING])
        assert len(running) == 2
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
