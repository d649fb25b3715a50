"""What people type: parse_restore and parse_enable (commands/)."""

from __future__ import annotations

import pytest

from commands.common import InputError, split_args, split_reason
from commands.enable import parse_enable
from commands.restore import USAGE, parse_restore


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Orders Orders-r", ("Orders", "Orders-r", "latest", "")),
        ("Orders Orders-r latest", ("Orders", "Orders-r", "latest", "")),
        ('Orders Orders-r "25 minutes ago"', ("Orders", "Orders-r", "25 minutes ago", "")),
        ("Orders Orders-r '25 minutes ago'", ("Orders", "Orders-r", "25 minutes ago", "")),
        ("Orders Orders-r “25 minutes ago”", ("Orders", "Orders-r", "25 minutes ago", "")),
        ("Orders Orders-r ‘25 minutes ago’", ("Orders", "Orders-r", "25 minutes ago", "")),
        ("Orders Orders-r 25 minutes ago", ("Orders", "Orders-r", "25 minutes ago", "")),
        ("Orders Orders-r yesterday 14:05", ("Orders", "Orders-r", "yesterday 14:05", "")),
        ("Orders Orders-r 2026-11-26T09:30", ("Orders", "Orders-r", "2026-11-26T09:30", "")),
        ("  Orders   Orders-r   1764149400  ", ("Orders", "Orders-r", "1764149400", "")),
        (
            "Orders Orders-r 1 hour ago reason: bad deploy at 09:31",
            ("Orders", "Orders-r", "1 hour ago", "bad deploy at 09:31"),
        ),
        (
            "Orders Orders-r Reason: it's broken, “really”",
            ("Orders", "Orders-r", "latest", "it's broken, “really”"),
        ),
        (
            '"Orders" "Orders-r" "25 minutes ago" reason:   rollback  ',
            ("Orders", "Orders-r", "25 minutes ago", "rollback"),
        ),
    ],
)
def test_parse_restore(text: str, expected: tuple[str, str, str, str]) -> None:
    assert parse_restore(text) == expected


def test_reason_is_capped_at_500_characters() -> None:
    _, _, _, reason = parse_restore("Orders Orders-r reason: " + "x" * 800)
    assert len(reason) == 500


@pytest.mark.parametrize("text", ["", "Orders", "  Orders  ", "reason: because", '"" '])
def test_missing_target_shows_usage(text: str) -> None:
    with pytest.raises(InputError) as err:
        parse_restore(text)
    assert "source and a target" in str(err.value)
    assert USAGE in str(err.value)


@pytest.mark.parametrize(
    "text", ['Orders Orders-r "25 minutes ago', "Orders 'Orders-r", "Orders Orders-r “latest"]
)
def test_unbalanced_quotes(text: str) -> None:
    with pytest.raises(InputError) as err:
        parse_restore(text)
    assert "quotes" in str(err.value)


def test_ten_kilobytes_of_when_is_refused() -> None:
    with pytest.raises(InputError) as err:
        parse_restore("Orders Orders-r " + "1 hour ago " * 1000)
    assert "limited to 1000" in str(err.value)


def test_ten_kilobytes_of_reason_is_refused() -> None:
    # "longer command text is refused before any parsing" (commands.common.MAX_TEXT).
    with pytest.raises(InputError):
        parse_restore("Orders Orders-r latest reason: " + "x" * 10_000)


def test_split_args_and_reason_directly() -> None:
    assert split_args("a “b c” ‘d e’") == ["a", "b c", "d e"]
    assert split_reason("a b latest reason: bad deploy") == ("a b latest", "bad deploy")
    assert split_reason("treason: no") == ("treason: no", "")


# -- /pitr-enable ------------------------------------------------------------------------------
@pytest.mark.parametrize("days", range(1, 36))
def test_parse_enable_days(days: int) -> None:
    assert parse_enable(f"Orders {days}") == ("Orders", days)


def test_parse_enable_without_days() -> None:
    assert parse_enable("Orders") == ("Orders", None)
    assert parse_enable("  'Orders'  ") == ("Orders", None)


@pytest.mark.parametrize("days", ["0", "36", "x", "-1", "7.5", "100", "7d", "²"])
def test_parse_enable_refuses_bad_days(days: str) -> None:
    with pytest.raises(InputError) as err:
        parse_enable(f"Orders {days}")
    assert "1 to 35" in str(err.value)


@pytest.mark.parametrize("text", ["", "   ", "Orders 7 extra"])
def test_parse_enable_usage(text: str) -> None:
    with pytest.raises(InputError) as err:
        parse_enable(text)
    assert "Usage: `/pitr-enable TABLE [DAYS]`" in str(err.value)


@pytest.mark.parametrize("table", ["ab", "<!channel>", "my table"])
def test_parse_enable_refuses_bad_table_names(table: str) -> None:
    with pytest.raises(InputError):
        parse_enable(f'"{table}" 7')


def test_parse_enable_refuses_huge_text() -> None:
    with pytest.raises(InputError):
        parse_enable("Orders " + "7" * 10_000)
