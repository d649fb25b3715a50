"""Item recovery, the pure core: values, classification, conditions, pacing."""

from __future__ import annotations

import re

import pytest

from bot.items.conditions import ConditionTooLong, Write, condition_for, request
from bot.items.diff import Kind, attribute_diff, classify
from bot.items.pacing import TokenBucket
from bot.items.values import digest, from_json, key_text, same_item, to_json


def S(v):  # noqa: N802 - DynamoDB type names
    return {"S": v}


def N(v):  # noqa: N802
    return {"N": v}


# -- types matter, numbers are numbers, sets are sets ----------------------------------------
def test_a_number_and_a_string_with_the_same_text_differ():
    assert classify({"pk": S("a"), "v": N("1")}, {"pk": S("a"), "v": S("1")}) is Kind.CHANGED


def test_numbers_compare_numerically():
    assert classify({"pk": S("a"), "v": N("1.0")}, {"pk": S("a"), "v": N("1")}) is Kind.UNCHANGED
    assert classify({"pk": S("a"), "v": N("1.01")}, {"pk": S("a"), "v": N("1")}) is Kind.CHANGED


def test_sets_compare_as_sets_lists_in_order_maps_by_key():
    a = {"pk": S("a"), "tags": {"SS": ["x", "y"]}, "ns": {"NS": ["1", "2.0"]}}
    b = {"pk": S("a"), "tags": {"SS": ["y", "x"]}, "ns": {"NS": ["2", "1"]}}
    assert classify(a, b) is Kind.UNCHANGED
    assert digest(a) == digest(b)
    la = {"pk": S("a"), "l": {"L": [S("x"), S("y")]}}
    lb = {"pk": S("a"), "l": {"L": [S("y"), S("x")]}}
    assert classify(la, lb) is Kind.CHANGED
    ma = {"pk": S("a"), "m": {"M": {"a": N("1"), "b": S("x")}}}
    mb = {"pk": S("a"), "m": {"M": {"b": S("x"), "a": N("1.00")}}}
    assert classify(ma, mb) is Kind.UNCHANGED
    assert classify(ma, {"pk": S("a"), "m": {"M": {"a": N("1")}}}) is Kind.CHANGED


def test_a_string_set_is_not_a_list():
    assert not same_item({"s": {"SS": ["x"]}}, {"s": {"L": [S("x")]}})


def test_classification_of_each_kind():
    item = {"pk": S("a"), "v": N("1")}
    assert classify(item, None) is Kind.MISSING
    assert classify(None, item) is Kind.ADDED
    assert classify(item, dict(item)) is Kind.UNCHANGED
    assert classify(item, {"pk": S("a")}) is Kind.CHANGED
    with pytest.raises(ValueError):
        classify(None, None)


def test_attribute_summary_names_what_differs():
    diff = attribute_diff(
        {"pk": S("a"), "status": S("paid"), "note": S("x")},
        {"pk": S("a"), "status": S("open"), "extra": N("2")},
    )
    assert diff.changed == ("status",)
    assert diff.only_restored == ("note",)
    assert diff.only_live == ("extra",)
    assert diff.summary() == "status changed; note removed in live; extra added in live"


def test_binary_round_trips_through_json_and_keys_are_canonical():
    item = {"pk": N("1.0"), "b": {"B": b"\x00\xff"}, "bs": {"BS": [b"a", b"b"]}}
    assert from_json(to_json(item)) == item
    assert key_text(item, ("pk",)) == key_text({"pk": N("1")}, ("pk",))
    assert key_text({"pk": N("1")}, ("pk",)) != key_text({"pk": S("1")}, ("pk",))


# -- no-clobber conditions ---------------------------------------------------------------------
def test_a_missing_item_is_put_only_if_the_key_is_still_absent():
    write = Write({"pk": S("a")}, {"pk": S("a"), "v": N("1")}, None)
    op, kwargs = request("orders", write, "pk")
    assert op == "put_item"
    assert kwargs["ConditionExpression"] == "attribute_not_exists(#k)"
    assert kwargs["ExpressionAttributeNames"] == {"#k": "pk"}
    assert "ExpressionAttributeValues" not in kwargs


def test_a_changed_item_is_overwritten_only_if_live_is_exactly_what_was_seen():
    seen = {"pk": S("a"), "status": S("open"), "size": N("3")}
    restored = {"pk": S("a"), "status": S("paid"), "note": S("gift")}
    cond = condition_for(Write({"pk": S("a")}, restored, seen), "pk")
    names, values = cond.names, cond.values
    checked = {
        names[t.split(" = ")[0]]: values[t.split(" = ")[1]]
        for t in cond.expression.split(" AND ")
        if " = " in t
    }
    assert checked == seen  # every attribute of the seen live item, with its value
    absent = [
        names[t[len("attribute_not_exists(") : -1]]
        for t in cond.expression.split(" AND ")
        if t.startswith("attribute_not_exists(")
    ]
    assert absent == ["note"]  # the restored copy has it, live did not: must still be absent


def test_a_changed_item_is_updated_attribute_by_attribute_never_put_whole():
    seen = {"pk": S("a"), "status": S("open"), "size": N("3"), "same": S("x")}
    restored = {"pk": S("a"), "status": S("paid"), "note": S("gift"), "same": S("x")}
    op, kwargs = request("orders", Write({"pk": S("a")}, restored, seen), "pk")
    assert op == "update_item"  # a PutItem would drop an attribute the app added since
    assert kwargs["Key"] == {"pk": S("a")} and "Item" not in kwargs
    names, values = kwargs["ExpressionAttributeNames"], kwargs["ExpressionAttributeValues"]
    set_part, remove_part = kwargs["UpdateExpression"].split(" REMOVE ")
    assigned = {
        names[a.split(" = ")[0]]: values[a.split(" = ")[1]]
        for a in set_part.removeprefix("SET ").split(", ")
    }
    assert assigned == {"status": S("paid"), "note": S("gift")}  # only what differs
    assert [names[r] for r in remove_part.split(", ")] == ["size"]  # the copy lacks it
    assert "attribute_not_exists" in kwargs["ConditionExpression"]  # same no-clobber check


def test_undo_of_an_insert_deletes_only_if_live_is_what_we_wrote():
    wrote = {"pk": S("a"), "v": N("1")}
    op, kwargs = request("orders", Write({"pk": S("a")}, None, wrote), "pk")
    assert op == "delete_item"
    assert kwargs["Key"] == {"pk": S("a")}
    assert set(kwargs["ExpressionAttributeNames"].values()) == {"pk", "v"}


@pytest.mark.parametrize(
    "name", ["status", "a.b", "x y", "#v", ":v", "size", "attribute_not_exists"]
)
def test_any_attribute_name_goes_through_placeholders(name):
    seen = {"pk": S("a"), name: S("x")}
    cond = condition_for(Write({"pk": S("a")}, {"pk": S("a")}, seen), "pk")
    tokens = re.split(r"[\s()]+", cond.expression.strip())
    assert all(re.fullmatch(r"#[an]\d+|:v\d+|=|AND|attribute_not_exists", t) for t in tokens)
    assert name in cond.names.values()


def test_an_update_of_too_many_attributes_for_one_condition_is_refused_not_truncated():
    # Wide items condition on the attributes the update writes (conditions.py); an update
    # that writes 400 attributes has no condition within DynamoDB's 300 operators.
    seen = {"pk": S("a"), **{f"attribute_{i}": N(str(i)) for i in range(400)}}
    restored = {"pk": S("a"), **{f"attribute_{i}": N(str(i + 1)) for i in range(400)}}
    with pytest.raises(ConditionTooLong):
        condition_for(Write({"pk": S("a")}, restored, seen), "pk")


# -- pacing ------------------------------------------------------------------------------------
class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


def test_the_bucket_holds_the_rate_over_time():
    clock = FakeClock()
    bucket = TokenBucket(10, clock=clock, sleep=clock.sleep)
    for _ in range(110):
        bucket.take(1)
    # 10 units of burst, then 100 more at 10/s.
    assert clock.now == pytest.approx(10.0)


def test_a_cost_known_after_the_call_is_paid_off_before_the_next():
    clock = FakeClock()
    bucket = TokenBucket(5, clock=clock, sleep=clock.sleep)
    bucket.wait()
    bucket.spend(25)  # 5 in the bucket, 20 of debt
    bucket.wait()
    assert clock.now == pytest.approx(4.0)


def test_unpaced_never_waits():
    clock = FakeClock()
    bucket = TokenBucket(None, clock=clock, sleep=clock.sleep)
    for _ in range(1000):
        bucket.take(100)
    assert clock.now == 0


def test_progress_says_when_it_should_end():
    from bot.items.engine import Progress

    assert Progress("compare", 1000, 4000, rate=100.0, elapsed=10).eta_seconds == 30
    assert Progress("compare", 1000, None, rate=100.0, elapsed=10).eta_seconds is None
    assert Progress("compare", 5000, 4000, rate=100.0, elapsed=50).eta_seconds is None


def test_index_row_agrees_with_key_text_digest_and_wire_json():
    # The comparison's one-pass hot loop must give what the separate functions give: the same
    # key, the same digest (so equal items still compare equal), the same item back.
    from bot.items.values import from_json, index_row, key_text, to_json

    items = [
        {"pk": {"S": "a"}, "n": {"N": "7"}, "tags": {"SS": ["x", "y"]}},  # already canonical
        {"pk": {"S": "b"}, "n": {"N": "1.50"}, "tags": {"SS": ["y", "x"]}},  # needs normalising
        {
            "pk": {"N": "01"},
            "b": {"B": b"\x00\xff"},
            "m": {"M": {"z": {"S": "1"}, "a": {"BOOL": True}}},
        },
        {"pk": {"S": "c"}, "l": {"L": [{"N": "2.0"}, {"NULL": True}]}, "bs": {"BS": [b"b", b"a"]}},
    ]
    for it in items:
        key, hashed, text = index_row(it, ("pk",))
        assert key == key_text(it, ("pk",))
        assert hashed == digest(it)
        assert from_json(text) == from_json(to_json(it))
    # attribute order does not change the digest
    a = {"pk": {"S": "a"}, "x": {"S": "1"}, "y": {"N": "2"}}
    b = {"y": {"N": "2.0"}, "x": {"S": "1"}, "pk": {"S": "a"}}
    assert index_row(a, ("pk",))[1] == index_row(b, ("pk",))[1]
