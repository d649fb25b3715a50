"""The export path's pure rules (bot/items/export_plan.py) and the per-key merge of consecutive
exports into the job file (bot/items/export_index.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bot.items.export_index import ExportIndex
from bot.items.export_plan import MAX_PERIOD, MIN_PERIOD, large_share, near_instant, parse_s3, plan

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
LATEST = NOW - timedelta(minutes=5)
EARLIEST = NOW - timedelta(days=35)


def test_a_recent_instant_is_one_period_from_it_to_the_latest_restorable_time():
    instant = NOW - timedelta(hours=2, seconds=0.25)
    p = plan(instant, EARLIEST, LATEST, NOW)
    assert [(x.start, x.end) for x in p.periods] == [(instant, LATEST)]


@pytest.mark.parametrize("hours", [24.1, 30, 47.9, 48.0, 24 * 35 - 1])
def test_an_older_instant_is_cut_into_consecutive_periods_of_15_minutes_to_24_hours(hours):
    instant = LATEST - timedelta(hours=hours)
    p = plan(instant, EARLIEST, LATEST, NOW)
    assert len(p.periods) >= 2
    assert p.periods[0].start == instant and p.periods[-1].end == LATEST
    for a, b in zip(p.periods, p.periods[1:], strict=False):
        assert a.end == b.start
    assert all(MIN_PERIOD <= x.end - x.start <= MAX_PERIOD for x in p.periods)


def test_thirty_hours_is_two_exports():
    assert len(plan(NOW - timedelta(hours=30), EARLIEST, LATEST, NOW).periods) == 2


def test_less_than_15_minutes_of_log_waits_until_there_is():
    instant = NOW - timedelta(minutes=5)
    p = plan(instant, EARLIEST, LATEST, NOW)
    assert p.periods == () and p.refusal == ""
    # LatestRestorableDateTime trails the clock by 5 minutes: 15 + 5 after the instant.
    assert p.wait_until == instant + timedelta(minutes=20)


def test_outside_the_window_is_refused_saying_what_fits():
    p = plan(EARLIEST - timedelta(hours=1), EARLIEST, LATEST, NOW)
    assert p.periods == () and p.wait_until is None
    assert "outside" in p.refusal and f"{EARLIEST:%Y-%m-%d %H:%M}" in p.refusal


def test_the_future_is_refused():
    assert "future" in plan(NOW + timedelta(minutes=1), EARLIEST, LATEST, NOW).refusal


def test_near_the_instant_and_large_share():
    instant = NOW - timedelta(hours=1)
    at = int(instant.timestamp() * 1e6)
    assert near_instant(at + 59_000_000, instant)
    assert not near_instant(at + 61_000_000, instant)
    assert not near_instant(None, instant)
    assert large_share(600, 1000) and not large_share(10, 1000) and not large_share(5, 0)


def test_s3_urls():
    assert parse_s3("s3://my-bucket/pitr/exports/").prefix == "pitr/exports"
    assert parse_s3("s3://my-bucket").prefix == ""
    for bad in ("my-bucket", "https://x/y", "s3://", "s3://UP_per/x"):
        with pytest.raises(ValueError):
            parse_s3(bad)


def rec(pk: str, old: str | None, new: str | None) -> dict:
    r: dict = {"Keys": {"pk": {"S": pk}}}
    if old is not None:
        r["OldImage"] = {"pk": {"S": pk}, "v": {"S": old}}
    if new is not None:
        r["NewImage"] = {"pk": {"S": pk}, "v": {"S": new}}
    return r


def test_consecutive_exports_merge_per_key(tmp_path):
    files = ExportIndex(tmp_path / "job.sqlite")
    files.set_meta(key_names=["pk"])
    # Period 1, then period 2.
    files.add_file("p1-a", [rec("changed-twice", "t", "x"), rec("born-then-changed", None, "1")])
    files.add_file("p1-b", [rec("deleted-later", "t", "y")])
    files.add_file(
        "p2-a",
        [
            rec("changed-twice", "x", "z"),
            rec("born-then-changed", "1", "2"),
            rec("deleted-later", "y", None),
            rec("only-late", "t", "w"),
        ],
    )
    # A resumed read neither repeats nor double-counts a file.
    assert files.add_file("p1-a", [rec("changed-twice", "WRONG", "WRONG")]) == 0
    assert files.records_read() == 7
    counts = files.diff_counts()
    assert (counts.missing, counts.changed, counts.added) == (1, 2, 1)
    diffs = {d.key: d for d in files.differences()}
    twice = diffs['[{"S":"changed-twice"}]']
    assert twice.restored["v"] == {"S": "t"} and twice.live["v"] == {"S": "z"}
    assert diffs['[{"S":"deleted-later"}]'].restored["v"] == {"S": "t"}
    assert diffs['[{"S":"born-then-changed"}]'].restored is None  # did not exist at the instant
    files.close()


def test_a_large_share_of_the_table_changed_says_a_restore_may_fit_better():
    from bot.items.export_flow import large_share_note
    from bot.items.jobs import ItemJob

    def job(missing: int, changed: int) -> ItemJob:
        return ItemJob(
            restore_id="",
            live_table="orders",
            restored_table="orders at …",
            channel="C1",
            thread_ts=None,
            requested_by="U1",
            created_at=NOW,
            job_path="x",
            missing=missing,
            changed=changed,
            export={"item_count": 1000},
        )

    assert "restore to a new table and a switch of tables" in large_share_note(job(400, 200))
    assert large_share_note(job(10, 20)) == ""


def test_an_export_job_keeps_its_periods_and_arns_through_the_store_record():
    import json

    from bot.items.jobs import ItemJob

    export = {
        "instant": NOW.isoformat(),
        "periods": [{"start": NOW.isoformat(), "end": LATEST.isoformat(), "arn": "arn:x"}],
        "wait_until": None,
    }
    job = ItemJob("", "orders", "orders at …", "C1", None, "U1", NOW, "x", export=export)
    again = ItemJob.from_record(json.loads(json.dumps(job.to_record())))
    assert again == job and again.export["periods"][0]["arn"] == "arn:x"


def test_keys_limit_the_records_to_those_partition_key_values():
    from bot.items.export_flow import _key_filter

    keep = _key_filter(["order-1", " 7 "], "pk")
    assert keep({"Keys": {"pk": {"S": "order-1"}}})
    assert keep({"Keys": {"pk": {"N": "7.0"}}})  # numbers compare as DynamoDB stores them
    assert not keep({"Keys": {"pk": {"S": "order-2"}}})
    assert not keep({"Keys": {"pk": {"B": "b3JkZXItMQ=="}}})
    assert _key_filter(None, "pk")({"Keys": {}})


# -- the 15-minute and 24-hour boundaries, and the last period's end -------------------------
def periods(instant: datetime, latest: datetime = LATEST) -> list[timedelta]:
    return [x.end - x.start for x in plan(instant, EARLIEST, latest, NOW).periods]


def test_exactly_15_minutes_is_one_export_and_a_second_less_waits():
    assert periods(LATEST - MIN_PERIOD) == [MIN_PERIOD]
    short = plan(LATEST - MIN_PERIOD + timedelta(seconds=1), EARLIEST, LATEST, NOW)
    assert short.periods == () and short.wait_until is not None


def test_exactly_24_hours_is_one_export_and_a_second_more_is_two():
    assert periods(LATEST - MAX_PERIOD) == [MAX_PERIOD]
    assert periods(LATEST - MAX_PERIOD - timedelta(seconds=1)) == [
        timedelta(hours=12, seconds=0.5),
        timedelta(hours=12, seconds=0.5),
    ]


@pytest.mark.parametrize(
    "total",
    [
        timedelta(hours=120) - timedelta(microseconds=3),  # 5 periods: rounding must not add 1 µs
        timedelta(hours=72) - timedelta(microseconds=2),
        timedelta(hours=24, microseconds=1),
        timedelta(days=34, hours=23, microseconds=7),
    ],
)
def test_no_period_is_a_microsecond_over_24_hours_however_the_division_falls(total):
    found = periods(LATEST - total)
    assert sum(found, timedelta(0)) == total
    assert all(MIN_PERIOD <= x <= MAX_PERIOD for x in found), max(found)


def test_the_last_export_ends_at_the_latest_restorable_time_never_after_it():
    # AWS refuses an ExportToTime after LatestRestorableDateTime ("outside of the point in time
    # recovery window"); whole seconds when that leaves 15 minutes, else the latest itself.
    latest = LATEST + timedelta(microseconds=700_000)
    (p,) = plan(LATEST - timedelta(hours=2), EARLIEST, latest, NOW).periods
    assert p.end == LATEST and p.end <= latest
    instant = latest - MIN_PERIOD
    (q,) = plan(instant, EARLIEST, latest, NOW).periods
    assert (q.start, q.end) == (instant, latest)


def test_only_exports_begun_an_hour_before_the_request_are_skipped_by_the_lookup():
    from bot.items.exports import _started_before

    def arn(at: datetime) -> str:
        return f"arn:aws:dynamodb:us-east-1:1:table/t/export/{int(at.timestamp() * 1000):014d}-ab12"

    assert _started_before(arn(NOW - timedelta(hours=2)), NOW)
    assert not _started_before(arn(NOW - timedelta(minutes=30)), NOW)  # clocks may differ
    assert not _started_before(arn(NOW + timedelta(minutes=1)), NOW)
    assert not _started_before("arn:aws:dynamodb:us-east-1:1:table/t/export/other-shape", NOW)
