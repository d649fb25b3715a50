"""Is the table still the one the restore created? (bot/table_identity.py, pure)"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bot.table_identity import identity, identity_problem, replaced_problem

ARN = "arn:aws:dynamodb:us-east-1:123456789012:table/"
AT = datetime(2026, 11, 26, 9, 30, tzinfo=UTC)


def ours(**changes) -> dict:
    record = identity(ARN + "copy", "id-1", ARN + "orders", AT, "rid1")
    record.update(changes)
    return record


def test_the_same_table_passes() -> None:
    assert identity_problem("copy", ours(), ours()) is None


@pytest.mark.parametrize(
    ("current", "named"),
    [
        (ours(table_id="id-2"), "table ID"),
        (ours(source_arn=None, restored_at=None), "restore source, restore time"),
        (ours(restored_at="2026-11-27T00:00:00+00:00"), "restore time"),
        (ours(source_arn=ARN + "payments"), "restore source"),
        (ours(marker=None), "marker tag"),
        (ours(marker="someone-else"), "marker tag"),
        (ours(arn=ARN + "other"), "ARN"),
        (ours(table_id=None), "table ID"),  # recorded one, AWS gives none now
    ],
)
def test_any_difference_refuses_and_says_which(current, named) -> None:
    problem = identity_problem("copy", ours(), current)
    assert problem is not None and named in problem and "did not touch it" in problem


def test_without_a_table_id_the_tag_and_restore_summary_must_match() -> None:
    # moto gives no TableId: a new table with the same name still differs in the rest.
    recorded = ours(table_id=None)
    assert identity_problem("copy", recorded, ours(table_id=None)) is None
    newcomer = identity(ARN + "copy", None, None, None, None)
    assert identity_problem("copy", recorded, newcomer) is not None


def test_fails_closed_without_a_record_a_table_or_a_restore_summary() -> None:
    assert "no record" in identity_problem("copy", None, ours())
    assert "does not exist" in identity_problem("copy", ours(), None)
    bare = ours(source_arn=None, restored_at=None)
    assert identity_problem("copy", bare, bare) is not None


def test_the_marker_is_not_compared_before_the_bot_tagged_the_table() -> None:
    assert identity_problem("copy", ours(), ours(marker=None), check_marker=False) is None
    assert identity_problem("copy", ours(), ours(table_id="x", marker=None), False) is not None


def test_a_live_table_deleted_and_created_again_is_not_the_one_compared() -> None:
    # Copy back and undo write only to the live table that was compared (ARN, TableId, time).
    at = datetime(2026, 11, 1, tzinfo=UTC)
    arn = "arn:aws:dynamodb:us-east-1:123456789012:table/orders"
    compared = identity(arn, None, None, None, None, at)
    assert replaced_problem("orders", compared, dict(compared)) is None
    again = identity(arn, None, None, None, None, datetime(2026, 11, 2, tzinfo=UTC))
    assert "creation time" in (replaced_problem("orders", compared, again) or "")
    assert "does not exist" in (replaced_problem("orders", compared, None) or "")
    assert "no record" in (replaced_problem("orders", None, compared) or "")
