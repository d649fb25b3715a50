"""Getting the data back, end to end over HTTP: Compare items, the diff file, Copy back with an
approval by another person, conflicts skipped, Undo copy back; and refusals without effect.

moto's restore copies the source's *current* items, so the scenario restores first, then
changes the live (source) table: 12 items lost, 8 changed, 5 added.
"""

from __future__ import annotations

import json
import time

from bot.items.jobs import JobState
from bot.policy import Policy
from commands.items import (
    APPROVE_ACTION,
    COMPARE_ACTION,
    COPY_ALL_ACTION,
    COPY_MISSING_ACTION,
    UNDO_ACTION,
    decision_value,
)
from e2e.harness import button_labels

LIVE, RESTORED = "orders", "orders-restored"
MISSING, CHANGED, ADDED = range(0, 12), range(12, 20), range(1000, 1005)
COPY_BACK_ON = Policy(rules=[{"tables": [LIVE], "copy_back": True}])


def order(i: int) -> dict:
    return {
        "pk": {"S": f"order-{i:03d}"},
        "status": {"S": "paid"},
        "total": {"N": str(i * 10)},
    }


def changed(i: int) -> dict:
    return {**order(i), "status": {"S": "refunded"}}


def key(i: int) -> dict:
    return {"pk": {"S": f"order-{i:03d}"}}


def get(direct, i: int) -> dict | None:
    return direct.get_item(TableName=LIVE, Key=key(i), ConsistentRead=True).get("Item")


def restored_then_changed(sim, make_bot, policy: Policy = COPY_BACK_ON):
    sim.create_table(LIVE, items=0)
    direct = sim.client(direct=True)
    for i in range(200):
        direct.put_item(TableName=LIVE, Item=order(i))
    bot = make_bot(policy=policy)
    req = bot.restore_to_active(LIVE, RESTORED)
    for i in MISSING:
        direct.delete_item(TableName=LIVE, Key=key(i))
    for i in CHANGED:
        direct.put_item(TableName=LIVE, Item=changed(i))
    for i in ADDED:
        direct.put_item(TableName=LIVE, Item=order(i))
    return bot, req, direct


def posted(fake, contains: str, timeout: float = 30):
    return fake.wait_for(
        lambda c: c.method == "chat.postMessage" and contains in str(c.args.get("text", "")),
        timeout=timeout,
    )[0]


def compare(bot, fake, req, user: str = "U1"):
    bot.click(COMPARE_ACTION, req.id, user)
    reply = posted(fake, "12 missing, 8 changed, 5 added")
    (job,) = bot.services.store.job_find()
    return reply, job


def wait_job(bot, job_id: str, state: JobState, timeout: float = 30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = bot.services.store.job_get(job_id)
        if job.state == state:
            return job
        time.sleep(0.05)
    raise AssertionError(f"job never reached {state}: {bot.services.store.job_get(job_id)}")


def test_compare_then_copy_back_the_12_missing_with_another_persons_approval(make_bot, fake, sim):
    bot, req, direct = restored_then_changed(sim, make_bot)
    reply, job = compare(bot, fake, req)
    card_ts = bot.services.store.get(req.id).card_ts
    assert reply.args["thread_ts"] == card_ts
    text = str(reply.args["blocks"])
    assert "*12* missing" in text and "*8* changed" in text and "*5* added" in text
    assert "180 unchanged" in text
    assert "order-0" not in text  # item data never goes to the thread (issue 20)
    assert button_labels(reply.args) == [
        "Copy back 12 missing items",
        "Copy back 12 missing + 8 changed",
    ]
    # The full diff, as JSON Lines, and examples: by DM to the asker, an item reader.
    (upload,) = fake.wait_for(lambda c: c.method == "file_upload", timeout=30)
    lines = [json.loads(line) for line in upload.args["content"].splitlines()]
    kinds = {}
    for line in lines:
        kinds.setdefault(line["kind"], set()).add(line["key"]["pk"]["S"])
    assert len(lines) == 25
    assert kinds == {
        "missing": {f"order-{i:03d}" for i in MISSING},
        "changed": {f"order-{i:03d}" for i in CHANGED},
        "added": {f"order-{i:03d}" for i in ADDED},
    }
    (complete,) = fake.wait_for(lambda c: c.method == "files.completeUploadExternal")
    assert complete.args["channel_id"] == "DU1" and "thread_ts" not in complete.args
    # an example with the differing attribute
    assert "pk=order-012: status changed" in complete.args["initial_comment"]

    untouched = {i: get(direct, i) for i in [*CHANGED, *ADDED]}
    bot.click(COPY_MISSING_ACTION, job.id, "U1")
    card = posted(fake, "Copy back 12 items into orders?")
    # Approve / Deny, and (issue 20, finding 7) the approver may leave keys out first.
    assert button_labels(card.args) == ["Approve", "Deny", "Leave out keys…"]
    assert "writes to production" in str(card.args["blocks"])
    assert "live table `orders`" in str(card.args["blocks"])

    bot.click(APPROVE_ACTION, job.id, "U1")  # the requester: four eyes
    bot.wait_reply("U1", "someone else")
    assert bot.services.store.job_get(job.id).state == JobState.COPY_REQUESTED

    bot.click(APPROVE_ACTION, job.id, "U2")
    final = posted(fake, "Copy back into orders: 12 written, 0 skipped (conflict), 0 failed")
    assert final.args["reply_broadcast"] in (True, "true", "1")
    assert button_labels(final.args) == ["Undo copy back"]
    for i in MISSING:
        assert get(direct, i) == order(i)
    for i, item in untouched.items():
        assert get(direct, i) == item  # the 8 changed and 5 added: untouched
    events = [e.event for e in bot.services.store.audit_events()]
    for event in ("compare_started", "compare_done", "copy_back_requested"):
        assert event in events
    assert "copy_back_approved" in events and "copy_back_done" in events
    metrics = bot.services.metrics.render().decode()
    assert 'pitr_bot_items_total{what="written"} 12.0' in metrics
    assert 'pitr_bot_items_total{what="read"} 393.0' in metrics  # 200 restored + 193 live


def test_conflicts_are_skipped_and_reported_and_undo_restores_the_overwritten(make_bot, fake, sim):
    # Keys not secret here: the skipped items are listed by key in the thread.
    keys_shown = Policy(rules=[{"tables": [LIVE], "copy_back": True, "item_keys_visible": True}])
    bot, req, direct = restored_then_changed(sim, make_bot, policy=keys_shown)
    _, job = compare(bot, fake, req)
    live_before = {i: get(direct, i) for i in CHANGED}
    # Between the comparison and the approval, the application writes:
    recreated = {**order(3), "status": {"S": "re-created by the app"}}
    direct.put_item(TableName=LIVE, Item=recreated)
    again = {**changed(15), "status": {"S": "changed again by the app"}}
    direct.put_item(TableName=LIVE, Item=again)

    bot.click(COPY_ALL_ACTION, job.id, "U1")
    posted(fake, "Copy back 20 items into orders?")
    bot.click(APPROVE_ACTION, job.id, "U2")
    final = posted(fake, "Copy back into orders: 18 written, 2 skipped (conflict), 0 failed")
    shown = str(final.args["blocks"])
    assert "order-003" in shown and "order-015" in shown
    # Each phase has its own progress message, edited in place: the comparison's ends "done"
    # and is never overwritten by the copy back's progress. Read once every edit owed is sent
    # (the comparison's last edit and the copy back's go by the announcer, not with the post).
    bot.quiet()
    updates = fake.calls("chat.update")
    compare_ts = {c.args["ts"] for c in updates if "Comparison done" in str(c.args.get("text"))}
    assert len(compare_ts) == 1
    last = [c for c in updates if c.args["ts"] in compare_ts][-1]
    assert last.args["text"] == ":white_check_mark: Comparison done."
    assert get(direct, 3) == recreated and get(direct, 15) == again  # never forced
    for i in set(CHANGED) - {15}:
        assert get(direct, i) == order(i)

    bot.click(UNDO_ACTION, job.id, "U1")
    posted(fake, "Undo copy back into orders?")
    bot.click(APPROVE_ACTION, decision_value(job.id, undo=True), "U2")
    posted(fake, "Undo of copy back into orders: 18 written, 0 skipped (conflict), 0 failed")
    for i in set(CHANGED) - {15}:
        assert get(direct, i) == live_before[i]  # the overwritten versions are back
    for i in set(MISSING) - {3}:
        assert get(direct, i) is None  # what the copy back inserted is gone
    assert get(direct, 3) == recreated and get(direct, 15) == again


def test_copy_back_off_refuses_the_button_with_how_to_enable_it_and_writes_nothing(
    make_bot, fake, sim
):
    bot, req, direct = restored_then_changed(sim, make_bot, policy=Policy())
    _, job = compare(bot, fake, req)
    bot.quiet()  # the comparison's own messages (e.g. the diff file's) are not the click's
    sim.clear()
    posts = len(fake.calls("chat.postMessage"))
    bot.click(COPY_MISSING_ACTION, job.id, "U1")
    refusal = bot.wait_reply("U1", "copy_back: true")
    assert "orders" in refusal
    assert bot.services.store.job_get(job.id).state == JobState.COMPARED
    assert len(fake.calls("chat.postMessage")) == posts  # no card
    assert sim.count("PutItem") == sim.count("UpdateItem") == 0
    assert all(get(direct, i) is None for i in MISSING)


def test_people_the_policy_does_not_allow_and_tables_the_bot_did_not_restore_are_refused(
    make_bot, fake, sim
):
    policy = Policy(requesters=["U1", "U2"], rules=[{"tables": [LIVE], "copy_back": True}])
    bot, req, _ = restored_then_changed(sim, make_bot, policy=policy)
    sim.clear()
    bot.click(COMPARE_ACTION, req.id, "U3")
    bot.wait_reply("U3", "not allowed")
    bot.command("/pitr-diff", "MusicCollection", user="U1")  # a table the bot never made
    bot.wait_reply("U1", "not a table this bot restored")
    bot.command("/pitr-diff", f"{RESTORED} keys: order-001", user="U3")
    assert bot.wait_reply("U3", "not allowed")
    assert bot.services.store.job_find() == []
    assert sim.count("Scan") == sim.count("Query") == 0

    # Allowed: /pitr-diff with keys compares only those partition keys.
    bot.command("/pitr-diff", f"{RESTORED} keys: order-001, order-013,order-1000", user="U1")
    posted(fake, "1 missing, 1 changed, 1 added")


def test_without_files_write_the_thread_says_so_and_the_counts_are_posted_once(make_bot, fake, sim):
    bot, req, _ = restored_then_changed(sim, make_bot)
    fake.fail("files.getUploadURLExternal", times=5, status=200, error="missing_scope")
    compare(bot, fake, req)
    posted(fake, "files:write")
    counts = [
        c
        for c in fake.calls("chat.postMessage")
        if "12 missing, 8 changed, 5 added" in str(c.args.get("text", ""))
    ]
    assert len(counts) == 1
    assert fake.calls("file_upload") == []


def test_a_copy_back_approval_clicked_from_another_channel_does_nothing(make_bot, fake, sim):
    bot, req, direct = restored_then_changed(sim, make_bot)
    _, job = compare(bot, fake, req)
    bot.click(COPY_MISSING_ACTION, job.id, "U1")
    posted(fake, "Copy back 12 items into orders?")
    sim.clear()
    resp = bot.click(APPROVE_ACTION, job.id, "U2", channel="C666")
    assert resp.status == 200
    assert bot.services.store.job_get(job.id).state == JobState.COPY_REQUESTED
    assert sim.count("PutItem") == 0 and get(direct, 0) is None


def test_diff_keys_matching_nothing_says_so_and_attaches_no_file(make_bot, fake, sim):
    bot, _, _ = restored_then_changed(sim, make_bot)
    bot.command("/pitr-diff", f"{RESTORED} keys: foo", user="U1")
    reply = posted(fake, "no item with those keys")
    assert "0 unchanged" not in str(reply.args)
    (job,) = bot.services.store.job_find()
    wait_job(bot, job.id, JobState.COMPARED)
    bot.quiet()
    assert fake.calls("files.getUploadURLExternal") == []
    assert fake.calls("files.completeUploadExternal") == []
