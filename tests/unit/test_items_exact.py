"""Finding 2: numbers are exact to DynamoDB's 38 digits everywhere (keys, values, sets), and
finding 10: item sizes are counted as DynamoDB counts them.

Python's default decimal context keeps 28 digits: `Decimal.normalize()` under it made numbers
that differ only in digits 29-38 one number, so keys collapsed and changes went unseen.
"""

from __future__ import annotations

import pytest
from support.hostile_items import hostile_pairs, number

from bot.items.diff import Kind, attribute_diff, classify
from bot.items.jobfile import JobFile
from bot.items.report import line
from bot.items.values import (
    canonical,
    digest,
    index_row,
    key_text,
    same_item,
    same_value,
    to_json,
)

PAIRS = hostile_pairs()


def test_the_corpus_pairs_differ_only_beyond_the_28th_digit_in_every_sign_and_scale():
    signs = {a.startswith("-") for a, _ in PAIRS}
    # (has a fraction, has more than one integer digit): 0.00…, 1.2…, 12.3…, 123…000
    scales = {("." in a, len(a.lstrip("-").split(".")[0]) > 1) for a, _ in PAIRS}
    assert signs == {True, False} and len(scales) == 3
    for a, b in PAIRS:
        assert a != b
        assert a.replace(".", "").lstrip("-0")[:28] == b.replace(".", "").lstrip("-0")[:28]


@pytest.mark.parametrize(("a", "b"), PAIRS[:: len(PAIRS) // 40 or 1], ids=str)
def test_numbers_that_differ_in_digits_29_to_38_are_different_values(a, b):
    assert not same_value({"N": a}, {"N": b})
    assert canonical({"N": a}) != canonical({"N": b})
    restored, live = {"pk": {"S": "x"}, "amount": {"N": a}}, {"pk": {"S": "x"}, "amount": {"N": b}}
    assert classify(restored, live) is Kind.CHANGED
    assert attribute_diff(restored, live).changed == ("amount",)
    assert digest(restored) != digest(live)


def test_every_hostile_pair_differs_as_a_value_as_a_key_and_in_a_set():
    for a, b in PAIRS:
        assert not same_value({"N": a}, {"N": b}), (a, b)
        # keys: two items, never one
        assert key_text({"pk": {"N": a}}, ("pk",)) != key_text({"pk": {"N": b}}, ("pk",)), (a, b)
        assert index_row({"pk": {"N": a}}, ("pk",))[0] != index_row({"pk": {"N": b}}, ("pk",))[0]
        # sets: a member changed in digit 29-38 is a different set
        x, y = {"NS": [a, "1", "-7"]}, {"NS": ["-7", b, "1"]}
        assert not same_value(x, y), (a, b)
        # two members that differ beyond digit 28 stay two members
        assert len(canonical({"NS": [a, b]})["NS"]) == 2


def test_equal_numbers_written_differently_stay_equal_at_38_digits():
    a = number("-", -5)
    assert same_value({"N": a}, {"N": a + "000"})  # trailing zeros after the point
    big = number("", 37)  # a 38-digit integer
    assert same_value({"N": big}, {"N": big[:1] + "." + big[1:] + "E+37"})
    assert same_value({"N": "1E-130"}, {"N": "0." + "0" * 129 + "1"})
    top = "9.9999999999999999999999999999999999999E+125"
    assert canonical({"N": top}) == {"N": "99999999999999999999999999999999999999" + "0" * 88}
    assert canonical({"N": "-0.0"}) == {"N": "0"}
    assert same_value({"NS": [a, a + "0"]}, {"NS": [a]})


def test_numeric_keys_that_differ_beyond_digit_28_are_two_items_in_the_job_file(tmp_path):
    job = JobFile(tmp_path / "job.sqlite")
    try:
        job.set_meta(key_names=["pk"])
        a, b = PAIRS[0]
        rows = [index_row({"pk": {"N": n}, "v": {"S": n}}, ("pk",)) for n in (a, b)]
        job.add_items("restored", rows)
        job.add_items("live", rows[:1])
        counts = job.diff_counts()
        assert (counts.missing, counts.unchanged) == (1, 1)
        (missing,) = list(job.differences([Kind.MISSING]))
        assert missing.restored == {"pk": {"N": b}, "v": {"S": b}}
        # the report keeps the number's every digit
        assert line(missing, ("pk",))["key"] == {"pk": {"N": b}}
    finally:
        job.close()


def test_a_number_outside_what_dynamodb_stores_is_refused_not_rounded():
    with pytest.raises(ValueError):
        canonical({"N": "NaN"})
    with pytest.raises(ValueError):
        canonical({"N": "Infinity"})


# -- finding 10: sizes as DynamoDB counts them ------------------------------------------------
def test_binary_is_counted_as_raw_bytes_not_base64():
    from bot.items.values import item_size

    blob = b"\xff" * 300_000
    item = {"pk": {"S": "a"}, "blob": {"B": blob}}
    assert item_size(item) == len("pk") + 1 + len("blob") + 300_000
    assert len(to_json(item)) > 400_000  # base64 would count it as over DynamoDB's 400 KB


def test_sizes_of_every_type_follow_aws_rules():
    from bot.items.values import item_size

    assert item_size({"name": {"S": "héllo"}}) == 4 + 6  # UTF-8 bytes of name and value
    assert item_size({"n": {"N": "12345678901234567890123456789012345678"}}) == 1 + 19 + 1
    assert item_size({"n": {"N": "-1.5"}}) == 1 + 1 + 1 + 1  # 2 digits, +1, negative +1
    assert item_size({"n": {"N": "1000"}}) == 1 + 1 + 1  # trailing zeros are not stored
    assert item_size({"b": {"BOOL": True}, "z": {"NULL": True}}) == 2 + 2
    assert item_size({"l": {"L": [{"S": "ab"}, {"N": "1"}]}}) == 1 + 3 + (1 + 2) + (1 + 2)
    assert item_size({"m": {"M": {"k": {"S": "ab"}}}}) == 1 + 3 + 1 + 1 + 2
    assert item_size({"s": {"SS": ["a", "bc"]}, "bs": {"BS": [b"\x00\x01"]}}) == 1 + 3 + 2 + 2


def test_same_item_is_exact_for_wide_items_with_hostile_numbers():
    a, b = PAIRS[-1]
    wide = {f"n{i}": {"N": a} for i in range(300)}
    other = dict(wide, n299={"N": b})
    assert not same_item(wide, other)
    assert same_item(wide, dict(wide))
