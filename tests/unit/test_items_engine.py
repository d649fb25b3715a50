"""Item recovery against moto: compare a restored table with live, copy back, conflicts, undo.

The issue's numbers at engine level: a restored table of 200 items; live then loses 12, 8 change,
5 are added.
"""

from __future__ import annotations

import json

import boto3
import pytest
from moto import mock_aws

from bot.items.engine import ItemCompare, ItemsError, ItemWriter
from bot.items.jobfile import COPY_BACK, UNDO, JobFile
from bot.items.report import examples, write_jsonl
from bot.items.values import same_item

REGION = "us-east-1"
RESTORED, LIVE = "orders-restored", "orders"


@pytest.fixture(autouse=True)
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.setenv(name, "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_DYNAMODB"):
        monkeypatch.delenv(name, raising=False)


def order(i: int) -> dict:
    return {
        "pk": {"S": f"order-{i:03d}"},
        "status": {"S": "paid"},
        "total": {"N": str(i * 10)},
        "tags": {"SS": ["a", "b", "c"]},
        "lines": {"L": [{"M": {"sku": {"S": "x"}, "qty": {"N": "1"}}}]},
    }


def create(client, name: str, key: str = "pk") -> None:
    client.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": key, "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": key, "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )


def get(client, i: int) -> dict | None:
    return client.get_item(TableName=LIVE, Key={"pk": {"S": f"order-{i:03d}"}}).get("Item")


MISSING = range(0, 12)
CHANGED = range(12, 20)
ADDED = range(1000, 1005)


def changed_version(i: int) -> dict:
    item = order(i)
    if i == 12:
        item["total"] = {"S": item["total"]["N"]}  # same text, another type: a change
    elif i == 13:
        del item["tags"]
    else:
        item["status"] = {"S": "refunded"}
    return item


@pytest.fixture
def tables():
    with mock_aws():
        client = boto3.client("dynamodb", region_name=REGION)
        create(client, RESTORED)
        create(client, LIVE)
        for i in range(200):
            client.put_item(TableName=RESTORED, Item=order(i))
            live = order(i)
            if i == 100:  # equal as DynamoDB JSON: sets as sets, numbers as numbers
                live["tags"] = {"SS": ["c", "a", "b"]}
                live["total"] = {"N": "1000.0"}
            if i not in MISSING:
                client.put_item(TableName=LIVE, Item=changed_version(i) if i in CHANGED else live)
        for i in ADDED:
            client.put_item(TableName=LIVE, Item=order(i))
        yield client


@pytest.fixture
def job(tmp_path):
    job = JobFile(tmp_path / "job.sqlite")
    yield job
    job.close()


def compare(client, job, **kwargs):
    return ItemCompare(client, job, read_units_per_second=None, page_limit=37, **kwargs).run(
        RESTORED, LIVE
    )


def test_compare_counts_missing_changed_added_and_unchanged(tables, job):
    seen = []
    counts = compare(tables, job, progress=seen.append)
    got = (counts.missing, counts.changed, counts.added, counts.unchanged)
    assert got == (12, 8, 5, 200 - 12 - 8)
    assert seen[-1].done == 200 + 200 - 12 + 5  # every item of both tables read once


def test_the_jsonl_diff_lists_all_25_differences(tables, job, tmp_path):
    compare(tables, job)
    path = tmp_path / "diff.jsonl"
    assert write_jsonl(job, path) == 25
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    by_kind = {}
    for line in lines:
        by_kind.setdefault(line["kind"], set()).add(line["key"]["pk"]["S"])
    assert by_kind == {
        "missing": {f"order-{i:03d}" for i in MISSING},
        "changed": {f"order-{i:03d}" for i in CHANGED},
        "added": {f"order-{i:03d}" for i in ADDED},
    }
    typed = next(line for line in lines if line["key"]["pk"]["S"] == "order-012")
    assert typed["attributes"]["changed"] == ["total"]
    assert typed["restored"]["total"] == {"N": "120"} and typed["live"]["total"] == {"S": "120"}
    shown = examples(job)
    assert "pk=order-013: tags removed in live" in shown["changed"]


def test_copy_back_missing_puts_the_12_back_and_touches_nothing_else(tables, job):
    compare(tables, job)
    before = {i: get(tables, i) for i in list(CHANGED) + list(ADDED)}
    assert job.plan_copy_back(include_changed=False) == 12
    counts = ItemWriter(tables, job, write_units_per_second=None).run()
    assert (counts.written, counts.conflict, counts.failed, counts.pending) == (12, 0, 0, 0)
    for i in MISSING:
        assert same_item(get(tables, i), order(i))
    for i, item in before.items():
        assert get(tables, i) == item
    # Run again (e.g. a second click): nothing is written twice, counts unchanged.
    assert ItemWriter(tables, job, write_units_per_second=None).run() == counts


def test_conflicts_are_skipped_and_listed_and_undo_restores_the_overwritten(tables, job):
    compare(tables, job)
    assert job.plan_copy_back(include_changed=True) == 20
    # Between the comparison and the copy back the application writes:
    recreated = {**order(3), "status": {"S": "recreated by the app"}}
    tables.put_item(TableName=LIVE, Item=recreated)
    changed_again = {**changed_version(15), "status": {"S": "changed again"}}
    tables.put_item(TableName=LIVE, Item=changed_again)
    # and one changed item gains an attribute only the restored copy had: live moved on.
    tables.update_item(
        TableName=LIVE,
        Key={"pk": {"S": "order-013"}},
        UpdateExpression="SET tags = :t",
        ExpressionAttributeValues={":t": {"SS": ["new"]}},
    )
    live_before = {i: get(tables, i) for i in CHANGED}

    counts = ItemWriter(tables, job, write_units_per_second=None).run()
    assert (counts.written, counts.conflict, counts.failed) == (17, 3, 0)
    conflicts = dict(job.outcomes(COPY_BACK, "conflict"))
    assert {json.loads(k)[0]["S"] for k in conflicts} == {"order-003", "order-013", "order-015"}
    assert get(tables, 3) == recreated  # never forced
    assert get(tables, 15) == changed_again
    assert get(tables, 13)["tags"] == {"SS": ["new"]}
    for i in set(MISSING) - {3}:
        assert same_item(get(tables, i), order(i))
    for i in set(CHANGED) - {13, 15}:
        assert same_item(get(tables, i), order(i))

    # Undo: the app changes one copied-back item meanwhile: that one is left alone.
    tables.put_item(TableName=LIVE, Item={**order(5), "status": {"S": "app wrote after"}})
    assert job.plan_undo() == 17
    undo = ItemWriter(tables, job, write_units_per_second=None).run(UNDO)
    assert (undo.written, undo.conflict, undo.failed) == (16, 1, 0)
    for i in set(CHANGED):
        assert same_item(get(tables, i), live_before[i])  # the overwritten versions are back
    for i in set(MISSING) - {3, 5}:
        assert get(tables, i) is None  # the inserted items are gone
    assert get(tables, 3) == recreated
    assert get(tables, 5)["status"] == {"S": "app wrote after"}


def test_an_attribute_the_app_added_after_the_comparison_survives_copy_back_and_undo(tables, job):
    compare(tables, job)
    job.plan_copy_back(include_changed=True)
    # After the comparison the application adds an attribute to a changed item: no condition
    # can see it (it is in neither version), so only a write that leaves it alone keeps it.
    tables.update_item(
        TableName=LIVE,
        Key={"pk": {"S": "order-014"}},
        UpdateExpression="SET shipped = :s",
        ExpressionAttributeValues={":s": {"S": "yes"}},
    )
    counts = ItemWriter(tables, job, write_units_per_second=None).run()
    assert (counts.written, counts.conflict, counts.failed) == (20, 0, 0)
    assert get(tables, 14) == {**order(14), "shipped": {"S": "yes"}}
    assert get(tables, 13) == order(13)  # an attribute live had lost is set back

    job.plan_undo()
    undo = ItemWriter(tables, job, write_units_per_second=None).run(UNDO)
    assert (undo.written, undo.conflict, undo.failed) == (20, 0, 0)
    assert get(tables, 14) == {**changed_version(14), "shipped": {"S": "yes"}}
    assert get(tables, 13) == changed_version(13)  # and removed again by the undo


def test_a_resumed_overwrite_already_done_counts_once_as_written(tables, job):
    compare(tables, job)
    job.plan_copy_back(include_changed=True)
    # The copy back had sent its update of order-014 (which the app then extended) before
    # the crash lost its outcome.
    job.attempt(COPY_BACK, '[{"S":"order-014"}]')
    tables.put_item(TableName=LIVE, Item={**order(14), "shipped": {"S": "yes"}})
    counts = ItemWriter(tables, job, write_units_per_second=None).run()
    assert (counts.written, counts.conflict, counts.failed) == (20, 0, 0)
    assert dict(job.outcomes(COPY_BACK, "written"))['[{"S":"order-014"}]'] == "already there"


def test_tables_with_different_keys_are_refused_without_writing(tables, job):
    create(tables, "other", key="id")
    with pytest.raises(ItemsError, match="different primary keys"):
        ItemCompare(tables, job, read_units_per_second=None).run(RESTORED, "other")
    assert job.diff_counts().differences == 0


def test_a_missing_table_is_said_in_plain_words(tables, job):
    with pytest.raises(ItemsError, match="`nope` does not exist"):
        ItemCompare(tables, job, read_units_per_second=None).run("nope", LIVE)


def test_a_write_whose_outcome_was_lost_in_a_crash_counts_once_as_written(tables, job):
    compare(tables, job)
    job.plan_copy_back()
    # The copy back had put order-000 when the process died, before recording it.
    job.attempt(COPY_BACK, '[{"S":"order-000"}]')
    tables.put_item(TableName=LIVE, Item=order(0))
    counts = ItemWriter(tables, job, write_units_per_second=None).run()
    assert (counts.written, counts.conflict, counts.failed) == (12, 0, 0)
    details = dict(job.outcomes(COPY_BACK, "written"))
    assert details['[{"S":"order-000"}]'] == "already there"


def test_partition_keys_limit_the_comparison_to_those_keys(tables, job):
    keys = ["order-003", "order-015", "order-100", "order-1000", " order-150 ", "no-such"]
    counts = ItemCompare(tables, job, read_units_per_second=None).run(RESTORED, LIVE, keys)
    got = (counts.missing, counts.changed, counts.added, counts.unchanged)
    assert got == (1, 1, 1, 2)


def test_a_partition_key_of_the_wrong_type_is_refused_before_reading(tables, job):
    tables.create_table(
        TableName="numbered",
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "N"}],
        BillingMode="PAY_PER_REQUEST",
    )
    with pytest.raises(ItemsError, match="`id` is a number"):
        ItemCompare(tables, job, read_units_per_second=None).run("numbered", "numbered", ["x"])


def test_a_restored_copy_in_another_region_is_compared_through_its_own_client(tmp_path):
    """A cross-region restore: the copy in us-east-1, the live table in eu-west-1 (same name
    in both regions, different items), each read through its region's client."""
    with mock_aws():
        here = boto3.client("dynamodb", region_name=REGION)
        there = boto3.client("dynamodb", region_name="eu-west-1")
        create(here, RESTORED)
        create(there, LIVE)
        create(here, LIVE)  # a decoy: the live name in the copy's region must not be read
        for i in range(10):
            here.put_item(TableName=RESTORED, Item=order(i))
            if i >= 3:
                there.put_item(TableName=LIVE, Item=order(i))
        job = JobFile(tmp_path / "job.sqlite")
        counts = ItemCompare(here, job, read_units_per_second=None, live_client=there).run(
            RESTORED, LIVE
        )
        assert (counts.missing, counts.changed, counts.added, counts.unchanged) == (3, 0, 0, 7)
        job.plan_copy_back()
        written = ItemWriter(there, job, write_units_per_second=None).run(COPY_BACK, LIVE)
        job.close()
        assert written.written == 3
        assert there.scan(TableName=LIVE, Select="COUNT")["Count"] == 10
        assert here.scan(TableName=LIVE, Select="COUNT")["Count"] == 0
