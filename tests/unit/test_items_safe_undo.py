"""Findings 3 and 4 and the hostile-data corpus, on moto, with DynamoDB's expression limits
enforced by a botocore hook (moto does not enforce them; tests/support/dynamodb_limits.py).

- Undo never deletes or reverts what it did not write or what changed since: the whole live
  item is compared with what the copy back left (consistent read), and a delete that removed
  something else is put back.
- Items found already there before the copy back are not in the undo plan.
- Wide items (150-300 attributes) are copied back and undone within 300 operators.
- AWS's own message stays with every failure.
"""

from __future__ import annotations

import boto3
import pytest
from moto import mock_aws
from support import hostile_items
from support.dynamodb_limits import enforce

from bot.items.engine import ItemCompare, ItemWriter
from bot.items.jobfile import COPY_BACK, UNDO, JobFile
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


@pytest.fixture
def client():
    with mock_aws():
        c = boto3.client("dynamodb", region_name=REGION)
        hostile_items.create_table(c, RESTORED)
        hostile_items.create_table(c, LIVE)
        yield c


@pytest.fixture
def refused(client):
    """DynamoDB's expression limits, enforced as AWS does; what it refused."""
    return enforce(client)


@pytest.fixture
def job(tmp_path):
    j = JobFile(tmp_path / "job.sqlite")
    yield j
    j.close()


def key(pk: str) -> dict:
    return {"pk": {"N": pk}}


def text(pk: str) -> str:
    return f'[{{"N":"{pk}"}}]'


def wide(pk: str, width: int, tag: str = "r") -> dict:
    return hostile_items.wide(pk, width, tag)


def setup(client, restored: list[dict], live: list[dict], job) -> None:
    hostile_items.load(client, RESTORED, restored)
    hostile_items.load(client, LIVE, live)
    ItemCompare(client, job, read_units_per_second=None).run(RESTORED, LIVE)


def write(client, job, name: str = COPY_BACK):
    if name == COPY_BACK:
        job.plan_copy_back(include_changed=True)
    else:
        job.plan_undo()
    return ItemWriter(client, job, write_units_per_second=None).run(name)


def get(client, pk: str) -> dict | None:
    return client.get_item(TableName=LIVE, Key=key(pk), ConsistentRead=True).get("Item")


# -- finding 3: undo never deletes what it did not write or what changed since ----------------
def test_undo_skips_an_inserted_item_the_application_extended_and_says_so(client, job, refused):
    setup(client, [{**key("1"), "v": {"S": "a"}}, {**key("2"), "v": {"S": "b"}}], [], job)
    assert write(client, job).written == 2
    # The application adds an attribute to an item the copy back inserted.
    client.update_item(
        TableName=LIVE,
        Key=key("1"),
        UpdateExpression="SET paid = :p",
        ExpressionAttributeValues={":p": {"BOOL": True}},
    )
    undo = write(client, job, UNDO)
    assert (undo.written, undo.conflict, undo.failed) == (1, 1, 0)
    assert get(client, "1") == {**key("1"), "v": {"S": "a"}, "paid": {"BOOL": True}}  # kept
    assert get(client, "2") is None
    ((conflict_key, detail),) = job.outcomes(UNDO, "conflict")
    assert conflict_key == text("1")
    assert "changed since the copy back" in detail and "paid" in detail


def test_an_attribute_added_between_the_check_and_the_delete_is_put_back(client, job, refused):
    """The race a condition cannot see: the application adds an attribute after the undo's
    consistent read. The delete's condition holds (every attribute it names is unchanged), so
    the engine checks what was deleted (ALL_OLD) and puts it back as it was."""
    setup(client, [{**key("1"), "v": {"S": "a"}}], [], job)
    write(client, job)
    writer_client = boto3.client("dynamodb", region_name=REGION)  # the application's

    def app_writes_first(**_):
        client.meta.events.unregister("before-call.dynamodb.DeleteItem", app_writes_first)
        writer_client.update_item(
            TableName=LIVE,
            Key=key("1"),
            UpdateExpression="SET note = :n",
            ExpressionAttributeValues={":n": {"S": "written by the app meanwhile"}},
        )

    client.meta.events.register("before-call.dynamodb.DeleteItem", app_writes_first)
    undo = write(client, job, UNDO)
    assert (undo.written, undo.conflict) == (0, 1)
    assert get(client, "1") == {
        **key("1"),
        "v": {"S": "a"},
        "note": {"S": "written by the app meanwhile"},
    }
    ((_, detail),) = job.outcomes(UNDO, "conflict")
    assert "put back as it was" in detail


def test_an_item_a_person_put_back_before_the_copy_back_is_never_undone(client, job, refused):
    setup(client, [{**key("1"), "v": {"S": "a"}}, {**key("2"), "v": {"S": "b"}}], [], job)
    # After the comparison, a person re-inserts item 1 by hand, identical to the backup.
    client.put_item(TableName=LIVE, Item={**key("1"), "v": {"S": "a"}})
    counts = write(client, job)
    assert (counts.written, counts.already, counts.conflict) == (1, 1, 0)
    assert job.plan_undo() == 1  # only what the copy back wrote
    undo = ItemWriter(client, job, write_units_per_second=None).run(UNDO)
    assert (undo.written, undo.conflict, undo.failed) == (1, 0, 0)
    assert get(client, "1") == {**key("1"), "v": {"S": "a"}}  # the person's item stays
    assert get(client, "2") is None


def test_undo_leaves_a_changed_item_the_application_wrote_to_since(client, job, refused):
    restored = {**key("1"), "status": {"S": "paid"}, "total": {"N": "10"}}
    setup(client, [restored], [{**key("1"), "status": {"S": "void"}, "total": {"N": "10"}}], job)
    assert write(client, job).written == 1
    client.update_item(
        TableName=LIVE,
        Key=key("1"),
        UpdateExpression="SET shipped = :s",
        ExpressionAttributeValues={":s": {"S": "yes"}},
    )
    undo = write(client, job, UNDO)
    assert (undo.written, undo.conflict) == (0, 1)
    assert get(client, "1") == {**restored, "shipped": {"S": "yes"}}


# -- finding 4: wide items within DynamoDB's 300 operators --------------------------------------
def test_a_changed_wide_item_is_copied_back_and_undone_within_300_operators(client, job, refused):
    restored = wide("1", 220)
    live = {**restored, "attribute 001": {"S": "changed"}, "extra": {"S": "only live"}}
    setup(client, [restored], [live], job)
    counts = write(client, job)
    assert (counts.written, counts.failed) == (1, 0), job.outcomes(COPY_BACK, "failed")
    assert same_item(get(client, "1"), restored)
    undo = write(client, job, UNDO)
    assert (undo.written, undo.failed) == (1, 0), job.outcomes(UNDO, "failed")
    assert same_item(get(client, "1"), live)
    assert refused == []  # nothing AWS would refuse was sent


def test_a_wide_inserted_item_can_be_undone(client, job, refused):
    setup(client, [wide("1", 300), wide("2", 151)], [], job)
    assert write(client, job).written == 2
    undo = write(client, job, UNDO)
    assert (undo.written, undo.conflict, undo.failed) == (2, 0, 0), job.outcomes(UNDO, "failed")
    assert get(client, "1") is None and get(client, "2") is None
    assert refused == []


def test_a_wide_inserted_item_extended_since_is_not_undone(client, job, refused):
    setup(client, [wide("1", 300)], [], job)
    write(client, job)
    client.update_item(
        TableName=LIVE,
        Key=key("1"),
        UpdateExpression="SET #a = :v",
        ExpressionAttributeNames={"#a": "attribute 299"},  # beyond the first 150 attributes
        ExpressionAttributeValues={":v": {"S": "changed by the app"}},
    )
    undo = write(client, job, UNDO)
    assert (undo.written, undo.conflict) == (0, 1)
    assert get(client, "1")["attribute 299"] == {"S": "changed by the app"}


def test_a_failure_keeps_aws_own_message(client, job):
    setup(client, [{**key("1"), "v": {"S": "a"}}], [], job)
    message = "One or more parameter values were invalid: an AWS explanation"

    class Refused:
        status_code = 400
        headers: dict = {}

    def refuse(**_):
        error = {"Code": "ValidationException", "Message": message}
        return Refused(), {"Error": error, "ResponseMetadata": {"HTTPStatusCode": 400}}

    client.meta.events.register("before-call.dynamodb.PutItem", refuse)
    counts = write(client, job)
    assert counts.failed == 1
    ((_, detail),) = job.outcomes(COPY_BACK, "failed")
    assert detail == f"ValidationException: {message}"


# -- acceptance: the hostile-data corpus round-trips exactly ------------------------------------
def test_the_hostile_corpus_round_trips_through_compare_copy_back_and_undo(client, job, refused):
    corpus = hostile_items.build()
    hostile_items.load(client, RESTORED, corpus.restored)
    hostile_items.load(client, LIVE, corpus.live)
    live_before = hostile_items.snapshot(client, LIVE)
    restored = hostile_items.snapshot(client, RESTORED)

    counts = ItemCompare(client, job, read_units_per_second=None, page_limit=50).run(RESTORED, LIVE)
    got = (counts.missing, counts.changed, counts.added, counts.unchanged)
    want = (len(corpus.missing), len(corpus.changed), len(corpus.added), len(corpus.unchanged))
    assert got == want

    copied = write(client, job)
    assert (copied.written, copied.conflict, copied.failed) == (
        len(corpus.missing) + len(corpus.changed),
        0,
        0,
    ), job.outcomes(COPY_BACK, "failed")[:3]
    after = hostile_items.snapshot(client, LIVE)
    assert after.keys() == restored.keys() | corpus.added
    for pk, item in restored.items():
        assert same_item(after[pk], item), pk

    undone = write(client, job, UNDO)
    assert (undone.written, undone.conflict, undone.failed) == (copied.written, 0, 0), (
        job.outcomes(UNDO, "failed")[:3] + job.outcomes(UNDO, "conflict")[:3]
    )
    final = hostile_items.snapshot(client, LIVE)
    assert final.keys() == live_before.keys()
    for pk, item in live_before.items():
        assert same_item(final[pk], item), pk
    assert refused == []


def test_an_item_no_safe_condition_fits_is_counted_before_approval_and_never_sent(
    client, job, refused
):
    """A changed item whose copy back itself writes more than 150 attributes: no condition
    within 300 operators makes it safe, so it is left out of the plan and counted for the
    approval card, never sent to fail (or, worse, be written unguarded)."""
    restored = wide("1", 300)
    live = {n: ({"S": "other"} if "S" in v else v) for n, v in restored.items()}
    setup(client, [restored, {**key("2"), "v": {"S": "b"}}], [live], job)
    plan = job.copy_plan(include_changed=True)
    assert (plan.missing, plan.changed, plan.too_wide, plan.not_undoable) == (1, 0, 1, 0)
    counts = write(client, job)
    assert (counts.planned, counts.written, counts.failed) == (1, 1, 0)
    assert get(client, "1") == live
    assert refused == []


def test_the_card_tells_the_approver_what_is_left_out_and_why():
    from datetime import UTC, datetime

    from bot.items.jobs import ItemJob, JobState
    from commands.items import approval_blocks

    job = ItemJob(
        "r1", LIVE, RESTORED, "C1", "1.0", "U1", datetime.now(UTC), "/nonexistent",
        state=JobState.COPY_REQUESTED, include_changed=True, ttl_attribute="expires",
        plan={"missing": 5, "changed": 2, "expired": 3, "left_out": 1, "too_wide": 4,
              "not_undoable": 2},
    )  # fmt: skip
    text, blocks = approval_blocks(job)
    body = str([b.to_dict() for b in blocks])
    assert text.startswith("Copy back 7 items")
    assert "*3* items whose TTL (`expires`) has passed" in body
    assert "*1* keys, as asked" in body
    assert "*4* items whose change writes too many attributes" in body and "300" in body
    assert "*2* of them cannot be undone" in body
