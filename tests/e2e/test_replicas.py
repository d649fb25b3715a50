"""Two `pitr-bot serve` replicas on one DynamoDB state table (PITR_BOT_STATE=dynamodb://...).

Both talk to the same FakeSlack and the same simulated AWS; the state table lives in moto
behind the proxy, which forwards one request at a time (serialize=True) because moto applies
conditional writes and transactions without locking while DynamoDB is linearizable.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator

import pytest

from e2e.process import (
    BotProcess,
    Bots,
    approve,
    broadcasts,
    cards,
    dynamo_request,
    request_restore,
    wait_until,
)

TOKEN = "xoxb-replicas-e2e-token-2b7e4a"  # noqa: S105 - a test secret
SECRET = "replicas-signing-secret-8d1f60"  # noqa: S105
STATE_TABLE = "pitr-bot-state"
POLL = 0.5


@pytest.fixture
def replicas(tmp_path, fake, sim) -> Iterator[tuple[Bots, BotProcess, BotProcess]]:
    sim.serialize = True
    group = Bots(tmp_path, fake, sim.env, TOKEN, SECRET, state=f"dynamodb://{STATE_TABLE}")
    try:
        # Started together: both find no state table, one creates it, both must cope.
        a = group.spawn("a", poll_seconds=POLL)
        b = group.spawn("b", poll_seconds=POLL)
        a.wait_healthy(timeout=30)
        b.wait_healthy(timeout=30)
        yield group, a, b
    finally:
        group.kill_all()


def stored(sim, restore_id: str) -> dict:
    doc = dynamo_request(sim.client(direct=True), STATE_TABLE, restore_id)
    assert doc is not None, restore_id
    return doc


def metric(bot: BotProcess, line_prefix: str) -> float:
    for line in bot.metrics().splitlines():
        if line.startswith(line_prefix + " "):
            return float(line.split()[-1])
    return 0.0


def replica_id(bot: BotProcess) -> str:
    """The id this process's leases carry, from its start-up log."""
    said = [r["message"] for r in bot.json_logs() if "tracking as replica" in r["message"]]
    assert len(said) == 1, said
    return said[0].rsplit(" ", 1)[1]


def called_restore(bot: BotProcess, restore_id: str) -> bool:
    return any(
        r.get("restore_id") == restore_id and "RestoreTableToPointInTime called" in r["message"]
        for r in bot.json_logs()
    )


def test_a_card_posted_via_one_replica_is_approved_via_the_other(replicas, fake, sim):
    _, a, b = replicas
    target = "ApprovedOnTheOtherReplica"
    sim.creating_for[target] = 1
    restore_id = request_restore(a, SECRET, fake, target)

    assert approve(b, SECRET, fake, restore_id, "U2").status == 200
    wait_until(lambda: broadcasts(fake, target), 60, "the completion broadcast")
    time.sleep(3 * POLL + 1)

    assert sim.count("RestoreTableToPointInTime") == 1
    assert len(cards(fake, target)) == 1
    assert len(broadcasts(fake, target)) == 1, fake.dump()
    doc = stored(sim, restore_id)
    assert doc["state"] == "ACTIVE" and doc["decided_by"] == "U2"


@pytest.mark.parametrize("paused_first", [False, True], ids=["straight", "caller paused first"])
def test_twenty_concurrent_approvals_across_replicas_then_kill_9_of_the_tracker(
    replicas, fake, sim, paused_first
):
    _, a, b = replicas
    target = "RacedAndTakenOver" + ("Paused" if paused_first else "")
    sim.hold_creating(target)  # CREATING until the test says otherwise
    restore_id = request_restore(a, SECRET, fake, target)
    assert len(cards(fake, target)) == 1

    # 20 clicks at once: U2 and U3, half on each replica.
    clicks = [(a if i % 2 == 0 else b, "U2" if i % 4 < 2 else "U3") for i in range(20)]
    barrier = threading.Barrier(len(clicks))
    statuses: list[int] = []

    def click(bot: BotProcess, user: str) -> None:
        barrier.wait()
        statuses.append(approve(bot, SECRET, fake, restore_id, user).status)

    threads = [threading.Thread(target=click, args=c) for c in clicks]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert statuses == [200] * 20

    wait_until(
        lambda: (doc := stored(sim, restore_id))["table_arn"] and doc["polls"] >= 1,
        60,
        "the restore to be started and polled",
    )
    time.sleep(2 * POLL)  # any late loser of the race would have called by now
    assert sim.count("RestoreTableToPointInTime") == 1
    approved = metric(a, 'pitr_bot_events_total{event="approved"}') + metric(
        b, 'pitr_bot_events_total{event="approved"}'
    )
    assert approved == 1
    replies = [str(c.args.get("text", "")) for c in fake.calls("response_url")]
    assert not [t for t in replies if "went wrong" in t or "Too many people" in t], replies

    (caller,) = [bot for bot in (a, b) if called_restore(bot, restore_id)]
    if paused_first:
        # The caller stops (a VM pause, a long GC) past its lease: the other replica takes the
        # restore over; once resumed, the caller must leave it alone.
        caller.proc.send_signal(signal.SIGSTOP)
        try:
            wait_until(
                lambda: stored(sim, restore_id)["lease_owner"] not in (None, replica_id(caller)),
                120,
                "the other replica to take over from the paused caller",
            )
        finally:
            caller.proc.send_signal(signal.SIGCONT)

    # Kill -9 the replica that holds the lease while CREATING. Usually the caller, but on a
    # busy machine a late poll lets the other take it over first (as paused_first forces).
    lease_owner = stored(sim, restore_id)["lease_owner"]
    assert lease_owner is not None
    (holder,) = [bot for bot in (a, b) if replica_id(bot) == lease_owner]
    survivor = b if holder is a else a
    assert sim.is_creating(target)
    holder.kill()
    killed_at = time.monotonic()

    def taken_over() -> bool:
        doc = stored(sim, restore_id)
        return doc["lease_owner"] not in (None, lease_owner) or doc["state"] == "ACTIVE"

    try:
        # Eventually, not by a deadline: the lease is 1.5 s, but a loaded machine may stall a
        # store call up to its read timeout (20 s) and retry it.
        wait_until(taken_over, 120, "the other replica to take the lease")
    except AssertionError:
        survivor.proc.send_signal(signal.SIGUSR1)  # its threads' stacks, for the report
        time.sleep(1)
        raise AssertionError(f"no takeover; survivor's threads:\n{survivor.stderr()}") from None
    takeover = time.monotonic() - killed_at
    print(f"lease taken over {takeover:.2f}s after kill -9 (poll {POLL}s, lease {3 * POLL}s)")
    assert stored(sim, restore_id)["state"] == "RESTORING"  # taken over while CREATING
    sim.finish_creating(target)

    wait_until(lambda: broadcasts(fake, target), 60, "the completion broadcast")
    time.sleep(3 * POLL + 1)
    done = broadcasts(fake, target)
    assert len(done) == 1, fake.dump()
    assert "ACTIVE" in str(done[0].args.get("text", ""))
    assert sim.count("RestoreTableToPointInTime") == 1
    doc = stored(sim, restore_id)
    assert doc["state"] == "ACTIVE" and doc["lease_owner"] is None
    # The tracker logs "is ACTIVE" after the store write that queues the broadcast, and the
    # announcer's thread may send the broadcast first: wait for the line, do not assume it.
    wait_until(
        lambda: any(
            r.get("restore_id") == restore_id and "is ACTIVE" in r["message"]
            for r in survivor.json_logs()
        ),
        30,
        "the survivor to log the restore ACTIVE",
    )
    assert survivor.terminate() == 0, survivor.stderr()
