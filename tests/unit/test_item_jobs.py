"""Getting the data back, the pure parts: the job's state machine, /pitr-diff's text, the cards."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bot.items.jobs import ItemJob, JobState
from bot.restores import InvalidTransition
from commands.common import InputError
from commands.items import approval_blocks, compared_blocks, parse_diff

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def job(**kw) -> ItemJob:
    base = dict(
        restore_id="r1",
        live_table="orders",
        restored_table="orders-copy",
        channel="C1",
        thread_ts="1.0",
        requested_by="U1",
        created_at=NOW,
        job_path="/tmp/j.sqlite",
    )
    base.update(kw)
    return ItemJob(**base)


def test_nothing_is_written_without_a_request_and_an_approval():
    compared = job().advance(JobState.COMPARED, NOW, missing=3)
    with pytest.raises(InvalidTransition):
        compared.advance(JobState.COPYING, NOW)  # no approval skipped
    asked = compared.advance(JobState.COPY_REQUESTED, NOW, copy_requested_by="U1")
    assert asked.advance(JobState.COMPARED, NOW).state == JobState.COMPARED  # denied: ask again
    copied = asked.advance(JobState.COPYING, NOW).advance(JobState.COPIED, NOW)
    with pytest.raises(InvalidTransition):
        copied.advance(JobState.UNDOING, NOW)
    assert ItemJob.from_record(copied.to_record()) == copied


def test_pitr_diff_takes_a_table_and_optional_keys():
    assert parse_diff("orders-copy") == ("orders-copy", None)
    assert parse_diff("orders-copy keys: a, b,c") == ("orders-copy", ["a", "b", "c"])
    for bad in ("", "a b", "orders-copy keys: ,", "t keys: " + ",".join(map(str, range(101)))):
        with pytest.raises(InputError):
            parse_diff(bad)


def test_the_copy_back_buttons_and_the_card_say_what_goes_to_production():
    compared = job(missing=12, changed=8, added=5, unchanged=180, state=JobState.COMPARED)
    _, blocks = compared_blocks(compared, {})
    labels = [e.text.text for b in blocks if b.type == "actions" for e in b.elements]
    assert labels == ["Copy back 12 missing items", "Copy back 12 missing + 8 changed"]
    nothing_changed = job(missing=2, state=JobState.COMPARED)
    _, blocks = compared_blocks(nothing_changed, {})
    labels = [e.text.text for b in blocks if b.type == "actions" for e in b.elements]
    assert labels == ["Copy back 2 missing items"]

    asked = job(
        missing=12,
        changed=8,
        include_changed=True,
        copy_requested_by="U1",
        state=JobState.COPY_REQUESTED,
    )
    text, blocks = approval_blocks(asked)
    body = str([b.to_dict() for b in blocks])
    assert text.startswith("Copy back 20 items into orders?")
    assert "writes to production" in body and "`orders`" in body
    labels = [e.text.text for b in blocks if b.type == "actions" for e in b.elements]
    assert labels == ["Approve", "Deny"]
    decided = job(**{**asked.__dict__, "state": JobState.COPYING, "copy_decided_by": "U2"})
    _, blocks = approval_blocks(decided)
    assert not [b for b in blocks if b.type == "actions"]  # a decided card loses its buttons


def test_progress_says_items_read_rate_and_expected_end():
    from bot.items.engine import Progress
    from commands.items import progress_text

    comparing = job()
    assert "Comparing items of `orders-copy` with `orders`" in progress_text(comparing, None)
    text = progress_text(comparing, Progress("compare", 1200, 4000, 200.0, 6.0))
    assert "1,200 of ~4,000 items read" in text
    assert "200 items/s" in text
    assert "about 14 s to go" in text
    copying = job(state=JobState.COPYING)
    text = progress_text(copying, Progress("copy_back", 5, 20, 5.0, 1.0))
    assert text.startswith(":hourglass_flowing_sand: Copying back into `orders`")
    assert "5 of ~20 items done" in text


def test_job_files_live_in_pitr_bot_work_dir_or_beside_the_sqlite_state(tmp_path):
    from bot.settings import Settings, work_dir_of

    beside = Settings(_env_file=None, PITR_BOT_STATE=f"sqlite:///{tmp_path}/state/bot.db")
    assert work_dir_of(beside) == tmp_path / "state" / "pitr-bot-jobs"
    chosen = Settings(_env_file=None, PITR_BOT_WORK_DIR=str(tmp_path / "jobs"))
    assert work_dir_of(chosen) == tmp_path / "jobs"
