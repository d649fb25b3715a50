"""Finding 5 of issue 20: a restart must never delete an approved restore's table.

The start-up sweep deletes only drill tables the store knows as drills (name, ARN and
identity), marked with the drill tag (a key restores never use); a restore target named like
a drill table is refused before anything happens.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bot.aftercare.rules import MARKER_TAG
from bot.restores import RestoreRequest, State
from e2e.test_attacks_authz import snapshot as refusal_snapshot
from e2e.test_drills import SOURCE, drill_policy, tables

DRILL_LIKE = f"{SOURCE}-drill-202612071200"


def test_an_approved_restore_named_like_a_drill_table_survives_a_restart(make_bot, sim):
    # A restore approved and ACTIVE (made before refusals of such names existed): its table
    # carries the restore marker the aftercare step sets, like every restored table.
    first = make_bot(policy=drill_policy())
    made = sim.create_table(DRILL_LIKE, pitr=False, items=3)
    now = datetime.now(UTC)
    req = RestoreRequest(
        source=SOURCE,
        target=DRILL_LIKE,
        requester="U1",
        channel="C1",
        restore_at=None,
        created_at=now,
        expires_at=now + timedelta(hours=1),
        state=State.ACTIVE,
        approvals=("U2",),
        decided_by="U2",
        decided_at=now,
        table_arn=made["TableArn"],
        finished_at=now,
    )
    first.services.store.add(req)
    sim.client(direct=True).tag_resource(
        ResourceArn=made["TableArn"], Tags=[{"Key": MARKER_TAG, "Value": req.id}]
    )
    first.stop()

    second = make_bot(policy=drill_policy())  # the restart: its start-up sweep has run

    assert DRILL_LIKE in tables(sim)
    assert sim.requests("DeleteTable") == []
    events = [e.event for e in second.services.store.audit_events()]
    assert "drill_table_swept" not in events
    assert second.services.store.get(req.id).state == State.ACTIVE


def test_a_restore_target_named_like_a_drill_table_is_refused_with_no_side_effect(
    make_bot, fake, sim
):
    bot = make_bot(policy=drill_policy())
    before = refusal_snapshot(bot, sim, fake)

    resp = bot.command("/pitr-restore", f"{SOURCE} {DRILL_LIKE} latest")

    assert resp.status == 200
    reply = bot.wait_reply("U1", "drill")
    assert DRILL_LIKE in reply and "choose another" in reply.lower()
    # Nothing but the audit entry every refused request gets.
    assert refusal_snapshot(bot, sim, fake) == before | {"audit": before["audit"] + 1}
    assert bot.services.store.audit_events()[-1].event == "request_refused"
    assert sim.count("RestoreTableToPointInTime") == 0
    assert bot.services.store.find(limit=10) == []
