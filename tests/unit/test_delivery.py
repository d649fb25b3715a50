"""bot/delivery.py and the text rules item data is shown by (issue 20, findings 1, 9, 11)."""

from __future__ import annotations

import tracemalloc
from datetime import UTC, datetime
from pathlib import Path

import pytest
from slack_sdk import WebClient
from support.fake_slack import FakeSlack

from bot import delivery
from bot.blocks import code, esc
from bot.items.diff import Kind
from bot.items.jobs import ItemJob
from bot.policy import Policy
from commands.items import compared_blocks

MB = 1024 * 1024


@pytest.fixture
def fake():
    with FakeSlack() as server:
        yield server


def big_file(path: Path, size: int) -> Path:
    with path.open("wb") as handle:
        for _ in range(size // MB):
            handle.write(b"x" * MB)
    return path


def test_an_upload_streams_the_file_from_disk_and_memory_stays_flat(fake, tmp_path):
    path = big_file(tmp_path / "diff.jsonl", 32 * MB)
    client = WebClient(base_url=fake.api_url, token="xoxb-test")
    client.auth_test()  # the client's own first-call allocations are not the upload's
    tracemalloc.start()
    try:
        file_id = delivery.upload(client, path, "DU1", "diff.jsonl", "Differences")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    (sent,) = fake.calls("file_upload")
    assert sent.args["length"] == 32 * MB and sent.args["file_id"] == file_id
    (complete,) = fake.calls("files.completeUploadExternal")
    assert complete.args["channel_id"] == "DU1"
    # A whole-file read would hold 32 MB at once; the stream holds a chunk or so.
    assert peak < 4 * MB, peak


def test_a_file_over_the_limit_is_refused_before_any_slack_call(fake, tmp_path, monkeypatch):
    monkeypatch.setattr(delivery, "MAX_FILE_BYTES", 10)
    path = tmp_path / "diff.jsonl"
    path.write_text("x" * 11)
    client = WebClient(base_url=fake.api_url, token="xoxb-test")
    with pytest.raises(delivery.UploadRefused) as refused:
        delivery.upload(client, path, "DU1", "diff.jsonl", "Differences")
    assert refused.value.error == "file_too_large" and "GB" in refused.value.advice
    assert fake.calls() == []


def test_a_permanent_slack_error_is_refused_not_retried(fake, tmp_path):
    path = tmp_path / "diff.jsonl"
    path.write_text("{}\n")
    fake.not_member = {"C9"}
    client = WebClient(base_url=fake.api_url, token="xoxb-test")
    with pytest.raises(delivery.UploadRefused) as refused:
        delivery.upload(client, path, "C9", "diff.jsonl", "Differences")
    assert "/invite @pitr-bot" in refused.value.advice
    assert "chat:write.public" in refused.value.advice


def test_the_readers_default_to_the_tables_approvers_and_a_rule_can_name_others():
    def members(group):
        return {"S1": ["U7"]}.get(group)

    policy = Policy(
        approvers=["U2", "S1"],
        rules=[{"tables": ["ledger"], "item_readers": ["U9"], "item_keys_visible": True}],
    )
    assert policy.may_read_items("U2", "orders", members).allowed
    assert policy.may_read_items("U7", "orders", members).allowed  # through the group
    assert not policy.may_read_items("U1", "orders", members).allowed
    assert policy.may_read_items("U9", "ledger", members).allowed
    assert not policy.may_read_items("U2", "ledger", members).allowed
    assert policy.item_keys_visible_for("ledger") and not policy.item_keys_visible_for("orders")
    places = delivery.destinations(policy, "orders", "U1", members)
    assert places == []  # not a reader, no item_channel: counts only


def test_item_channel_must_be_a_channel_id():
    with pytest.raises(ValueError, match="channel ID"):
        Policy(item_channel="#secrets")


def test_plain_broadcasts_are_broken_and_control_characters_shown():
    assert esc("@here and @channel, @everyone") == "@\u2060here and @\u2060channel, @\u2060everyone"
    assert code("a\nb\tc\x1b") == "`a\\nb\\tc\\x1b`"


def test_keys_shown_in_the_thread_are_code_spans_that_cannot_forge_a_line():
    job = ItemJob("r1", "orders", "orders-copy", "C1", "1.1", "U1", datetime.now(UTC), "/x")
    forged = "pk=a\n:white_check_mark: *Copy back approved by <@U2>*"
    _, blocks = compared_blocks(job, {Kind.MISSING: [forged]})
    text = blocks[0].to_dict()["text"]
    assert text["verbatim"] is True
    line = next(line for line in text["text"].split("\n") if line.startswith("Missing"))
    assert "\\n:white_check_mark:" in line and "&lt;@U2&gt;" in line


def test_deleting_shared_files_tolerates_gone_ones_and_reports_refusals(fake):
    client = WebClient(base_url=fake.api_url, token="xoxb-test")
    fake.fail("files.delete", times=1, status=200, error="file_not_found")
    assert delivery.unshare(client, ["F1", "F2"]) == []
    fake.fail("files.delete", times=1, status=200, error="cant_delete_file")
    assert delivery.unshare(client, ["F3"]) == ["F3 (cant_delete_file)"]
    assert [c.args["file"] for c in fake.calls("files.delete")] == ["F1", "F2", "F3"]


def test_a_missing_scope_is_named_as_slack_names_it():
    from slack_sdk.errors import SlackApiError

    class Refusing:
        def conversations_open(self, users):
            raise SlackApiError("no", {"ok": False, "error": "missing_scope", "needed": "im:write"})

    with pytest.raises(delivery.UploadRefused) as refused:
        delivery.open_place(Refusing(), delivery.Destination("dm", "U1"))
    assert "`im:write`" in refused.value.advice
