"""Item data goes only to its readers (issue 20, findings 1, 8, 9, 11), over signed HTTP
against the real app and the fake Slack.

| what                                                          | expected                        |
|---------------------------------------------------------------|---------------------------------|
| Compare items by an allowed reader                            | thread: counts only; diff file  |
|                                                               | and examples by DM; audited     |
| Compare items / `/pitr-diff` by someone who may not read      | counts only, told who can read; |
|                                                               | nothing uploaded anywhere       |
| `item_channel` the bot was not invited to (chat:write.public) | refused once, said why          |
| a diff over Slack's size limit                                | not retried, said why           |
| job files expire                                              | their Slack files deleted, once |
| an ARN of an account neither the bot's nor in `accounts:`     | refused, no card, no AWS call   |
| a reason with a URL, @here, <!channel>                        | verbatim, inert                 |
| every message posted or edited                                | unfurl_links/media false        |
"""

from __future__ import annotations

import stat
from datetime import timedelta
from pathlib import Path

from bot.policy import Policy
from commands.items import COMPARE_ACTION
from e2e.test_copy_back import LIVE, RESTORED, posted, restored_then_changed

COUNTS = "12 missing, 8 changed, 5 added"
READERS = Policy(approvers=["U1", "U2"], rules=[{"tables": [LIVE], "copy_back": True}])
U2_READS = Policy(approvers=["U2"], rules=[{"tables": [LIVE], "copy_back": True}])


def in_channel(fake, channel: str = "C1") -> list[str]:
    """Everything the bot said in `channel` (posts and edits, text and blocks)."""
    return [
        str(c.args)
        for c in fake.calls()
        if c.method in ("chat.postMessage", "chat.update", "chat.postEphemeral")
        or c.method == "files.completeUploadExternal"
        if c.args.get("channel", c.args.get("channel_id")) == channel
    ]


def item_values_shown(texts: list[str]) -> list[str]:
    # Keys (order-000 …) and changed values ("refunded") are item data.
    return [t for t in texts if "order-0" in t or "order-1" in t or "refunded" in t]


def delivered(bot, job_id: str, count: int = 1):
    """The job once `count` deliveries are recorded."""
    import time

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        job = bot.services.store.job_get(job_id)
        if len(job.delivered) >= count:
            return job
        time.sleep(0.05)
    raise AssertionError(f"never delivered: {bot.services.store.job_get(job_id)}")


def test_the_thread_gets_counts_only_and_the_diff_goes_to_the_reader_by_dm(make_bot, fake, sim):
    bot, req, _ = restored_then_changed(sim, make_bot, policy=READERS)
    bot.click(COMPARE_ACTION, req.id, "U1")
    reply = posted(fake, COUNTS)
    assert reply.args["channel"] == "C1"
    assert "*12* missing" in str(reply.args["blocks"])
    bot.wait_reply("U1", "direct message")
    (job,) = bot.services.store.job_find()
    job = delivered(bot, job.id)
    (opened,) = fake.calls("conversations.open")
    assert opened.args["users"] == "U1"
    (complete,) = fake.calls("files.completeUploadExternal")
    assert complete.args["channel_id"] == "DU1" and "thread_ts" not in complete.args
    assert "order-012" in complete.args["initial_comment"]  # the examples: DM only
    bot.quiet()
    assert item_values_shown(in_channel(fake)) == []
    reads = [e for e in bot.services.store.audit_events() if e.event == "items_read"]
    assert [(e.actor, e.table, e.restore_id) for e in reads] == [("U1", LIVE, job.id)]
    # Local job files: this user's only.
    path = Path(job.job_path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.with_suffix(".jsonl").stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_someone_who_may_not_read_items_gets_counts_and_is_told_who_can(make_bot, fake, sim):
    bot, req, _ = restored_then_changed(sim, make_bot, policy=U2_READS)
    bot.click(COMPARE_ACTION, req.id, "U1")  # U1 may request, but item_readers = approvers
    note = bot.wait_reply("U1", "counts only")
    assert "<@U2>" in note
    posted(fake, COUNTS)
    # /pitr-diff typed in another channel: counts in the restore's thread, no data anywhere.
    bot.command("/pitr-diff", f"{RESTORED} keys: order-001", user="U1", channel="C9")
    posted(fake, "1 missing, 0 changed, 0 added")
    bot.quiet()
    assert fake.calls("files.getUploadURLExternal") == []
    assert fake.calls("conversations.open") == []
    assert item_values_shown(in_channel(fake)) == []
    assert in_channel(fake, "C9") == []
    assert not [e for e in bot.services.store.audit_events() if e.event == "items_read"]


def test_a_restricted_channel_the_bot_is_not_in_is_refused_once_and_said(make_bot, fake, sim):
    policy = Policy(approvers=["U1", "U2"], item_channel="C9")
    fake.not_member = {"C9"}  # chat:write.public, bot not invited (the README's set-up)
    bot, req, _ = restored_then_changed(sim, make_bot, policy=policy)
    bot.click(COMPARE_ACTION, req.id, "U1")
    warning = posted(fake, "could not go to")
    assert "/invite @pitr-bot" in warning.args["text"] and "not_in_channel" in warning.args["text"]
    (job,) = bot.services.store.job_find()
    job = delivered(bot, job.id, count=2)
    bot.quiet()
    shares = [c.args["channel_id"] for c in fake.calls("files.completeUploadExternal")]
    assert sorted(shares) == ["C9", "DU1"]  # C9 tried once, never again
    assert item_values_shown([warning.args["text"]]) == []
    assert len(job.slack_files) == 1


def test_a_diff_over_slacks_size_limit_fails_once_and_says_why(make_bot, fake, sim, monkeypatch):
    from bot import delivery  # (here: the module is new)

    monkeypatch.setattr(delivery, "MAX_FILE_BYTES", 100)
    bot, req, _ = restored_then_changed(sim, make_bot, policy=READERS)
    bot.click(COMPARE_ACTION, req.id, "U1")
    warning = posted(fake, "file_too_large")
    assert "GB" in warning.args["text"]
    bot.quiet()
    assert fake.calls("files.getUploadURLExternal") == []
    assert len([c for c in fake.calls("chat.postMessage") if COUNTS in c.args["text"]]) == 1


def test_expired_job_files_take_their_slack_files_with_them_once(make_bot, fake, sim):
    bot, req, _ = restored_then_changed(sim, make_bot, policy=READERS)
    bot.click(COMPARE_ACTION, req.id, "U1")
    posted(fake, COUNTS)
    (job,) = bot.services.store.job_find()
    job = delivered(bot, job.id)
    engine = bot.services.announcer.item_senders["items_unshare"].__self__.engine
    engine.retention = timedelta(0)
    assert engine.remove_expired() == 1
    assert engine.remove_expired() == 0
    fake.wait_for("files.delete")
    bot.quiet()
    assert [c.args["file"] for c in fake.calls("files.delete")] == list(job.slack_files)
    assert bot.services.store.job_get(job.id).slack_files == ()
    assert not Path(job.job_path).exists()


def test_an_arn_of_an_unknown_account_is_refused_without_a_card_or_aws_call(make_bot, fake, sim):
    bot = make_bot()
    sim.clear()
    arn = "arn:aws:dynamodb:us-east-1:999999999999:table/MusicCollection"
    bot.command("/pitr-restore", f"{arn} music-copy latest")
    refusal = bot.wait_reply("U1", "999999999999")
    assert "accounts" in refusal
    bot.quiet()
    assert bot.cards() == [] and bot.services.store.find() == []
    assert sim.count("DescribeTable") == sim.count("DescribeContinuousBackups") == 0
    # The bot's own account by ARN still works.
    own = "arn:aws:dynamodb:us-east-1:123456789012:table/MusicCollection"
    bot.command("/pitr-restore", f"{own} music-copy latest")
    bot.wait_card()


def test_reasons_are_verbatim_and_inert_and_no_message_unfurls(make_bot, fake, sim):
    bot = make_bot()
    reason = "see https://evil.example/x @here <!channel> @everyone"
    bot.command("/pitr-restore", f"MusicCollection music-copy latest reason: {reason}")
    req = bot.wait_card()
    (card,) = bot.cards()
    sections = [b for b in card.args["blocks"] if "Reason" in str(b)]
    (section,) = sections
    assert section["text"]["verbatim"] is True
    shown = section["text"]["text"]
    assert "<!channel>" not in shown and "&lt;!channel&gt;" in shown
    assert "@here" not in shown and "@\u2060here" in shown and "@\u2060everyone" in shown
    bot.approve(req.id, "U2")
    bot.wait_state(req.id, "ACTIVE")
    bot.quiet()
    sent = [
        c
        for c in fake.calls()
        if c.method in ("chat.postMessage", "chat.postEphemeral", "chat.update") and not c.failed
    ]
    assert len(sent) >= 3
    for call in sent:
        assert call.args.get("unfurl_links") in (False, "false", "0"), call
        assert call.args.get("unfurl_media") in (False, "false", "0"), call


def test_skipped_items_are_counted_not_listed_where_keys_are_secret(make_bot, fake, sim):
    from commands.items import APPROVE_ACTION, COPY_MISSING_ACTION

    policy = Policy(approvers=["U1", "U2"], rules=[{"tables": [LIVE], "copy_back": True}])
    bot, req, direct = restored_then_changed(sim, make_bot, policy=policy)
    bot.click(COMPARE_ACTION, req.id, "U1")
    posted(fake, COUNTS)
    (job,) = bot.services.store.job_find()
    direct.put_item(TableName=LIVE, Item={"pk": {"S": "order-003"}, "status": {"S": "new"}})
    bot.click(COPY_MISSING_ACTION, job.id, "U1")
    posted(fake, "Copy back 12 items into orders?")
    bot.click(APPROVE_ACTION, job.id, "U2")
    final = posted(fake, "11 written, 1 skipped (conflict)")
    bot.quiet()
    assert item_values_shown([str(final.args)]) == []
    assert item_values_shown(in_channel(fake)) == []
