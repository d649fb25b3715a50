"""What a person means by WHEN: bot.when."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.when import WhenError, ago, format_instant, parse_when, zone

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
BERLIN = "Europe/Berlin"


@pytest.mark.parametrize("text", ["latest", "", "  ", "LATEST", "now", None])
def test_latest_means_none(text: str | None) -> None:
    assert parse_when(text, BERLIN, NOW) is None  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "delta"),
    [
        ("1 hour ago", timedelta(hours=1)),
        ("25 minutes ago", timedelta(minutes=25)),
        ("2h ago", timedelta(hours=2)),
        ("90 seconds ago", timedelta(seconds=90)),
        ("3 days ago", timedelta(days=3)),
    ],
)
def test_relative_text(text: str, delta: timedelta) -> None:
    got = parse_when(text, BERLIN, NOW)
    assert got is not None
    assert got.tzinfo is not None
    assert abs(got - (NOW - delta)) < timedelta(seconds=1)
    # Relative text does not depend on the person's time zone.
    other = parse_when(text, "America/New_York", NOW)
    assert other is not None and abs(other - got) < timedelta(seconds=1)


def test_iso_without_zone_is_read_in_the_persons_zone() -> None:
    got = parse_when("2026-11-26T09:30", BERLIN, NOW)
    assert got == datetime(2026, 11, 26, 8, 30, tzinfo=UTC)
    assert got.utcoffset() == timedelta(0)


def test_iso_without_zone_respects_summer_time() -> None:
    got = parse_when("2026-07-01T09:30", BERLIN, NOW)
    assert got == datetime(2026, 7, 1, 7, 30, tzinfo=UTC)


def test_iso_with_space_and_seconds() -> None:
    assert parse_when("2026-11-26 09:30:15", "UTC", NOW) == datetime(
        2026, 11, 26, 9, 30, 15, tzinfo=UTC
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-26T09:30Z", datetime(2026, 11, 26, 9, 30, tzinfo=UTC)),
        ("2026-11-26T09:30:00+00:00", datetime(2026, 11, 26, 9, 30, tzinfo=UTC)),
        ("2026-11-26T06:30-05:00", datetime(2026, 11, 26, 11, 30, tzinfo=UTC)),
        ("2026-11-26T09:30+0530", datetime(2026, 11, 26, 4, 0, tzinfo=UTC)),
    ],
)
def test_iso_with_explicit_offset_ignores_the_persons_zone(text: str, expected: datetime) -> None:
    assert parse_when(text, BERLIN, NOW) == expected


def test_iso_impossible_date_is_refused() -> None:
    with pytest.raises(WhenError) as err:
        parse_when("2026-02-30T09:30", BERLIN, NOW)
    assert "not a valid date" in str(err.value)


def test_unix_seconds() -> None:
    got = parse_when("1795685400", BERLIN, NOW)
    assert got == datetime(2026, 11, 26, 9, 30, tzinfo=UTC)


def test_unix_seconds_with_fraction() -> None:
    got = parse_when("1795685400.5", "UTC", NOW)
    assert got == datetime(2026, 11, 26, 9, 30, 0, 500000, tzinfo=UTC)


@pytest.mark.parametrize("text", ["11", "5", "1", "31", "2026", "1130", "20261126", "1.5"])
def test_a_bare_number_that_is_not_unix_seconds_is_refused(text: str) -> None:
    # dateparser would read "11" as a day in November and "5" as May: never guess.
    with pytest.raises(WhenError) as err:
        parse_when(text, BERLIN, NOW)
    message = str(err.value)
    assert f"`{text}`" in message and "Unix seconds" in message and "latest" in message


def test_the_readme_unix_example_is_its_iso_example() -> None:
    readme = (Path(__file__).parents[2] / "docs" / "user-guide.md").read_text()
    found = re.search(r"Unix seconds \(`(\d+)`, the same\s+instant as `([^`]+)`\)", readme)
    assert found, "the user guide lost its Unix-seconds example"
    unix, iso = found.groups()
    assert parse_when(unix, BERLIN, NOW) == parse_when(iso, BERLIN, NOW)
    assert f"ISO 8601 (`{iso}`" in readme


def test_yesterday_at_a_local_time() -> None:
    got = parse_when("yesterday 14:05", BERLIN, NOW)
    # 2026-11-25 14:05 in Berlin (CET, UTC+1) is 13:05 UTC.
    assert got == datetime(2026, 11, 25, 13, 5, tzinfo=UTC)


def test_yesterday_near_midnight_uses_the_persons_date() -> None:
    # 23:30 UTC on the 26th is already the 27th in Berlin, so "yesterday" is the 26th there.
    now = datetime(2026, 11, 26, 23, 30, tzinfo=UTC)
    got = parse_when("yesterday 14:05", BERLIN, now)
    assert got == datetime(2026, 11, 26, 13, 5, tzinfo=UTC)


@pytest.mark.parametrize(
    "text",
    ["in 2 hours", "tomorrow", "2026-11-26T13:30Z", "1900000000", "2027-01-01"],
)
def test_future_is_refused(text: str) -> None:
    with pytest.raises(WhenError) as err:
        parse_when(text, "UTC", NOW)
    assert "future" in str(err.value)


def test_a_few_seconds_of_clock_skew_is_tolerated() -> None:
    assert parse_when("2026-11-26T12:00:30Z", "UTC", NOW) == NOW + timedelta(seconds=30)


@pytest.mark.parametrize(
    "text", ["banana", "blah blah blah", "<!channel>", "';DROP TABLE x;--", "2026-13-45"]
)
def test_garbage_is_refused_with_help(text: str) -> None:
    with pytest.raises(WhenError) as err:
        parse_when(text, BERLIN, NOW)
    assert "latest" in str(err.value)


def test_very_long_text_is_refused_quickly() -> None:
    with pytest.raises(WhenError) as err:
        parse_when("1 hour ago " * 1000, BERLIN, NOW)
    assert "too long" in str(err.value)


def test_whenerror_is_a_valueerror() -> None:
    assert issubclass(WhenError, ValueError)


@pytest.mark.parametrize("tz", ["Mars/Olympus", "", None, "../../etc/passwd", "Not A Zone"])
def test_unknown_tz_falls_back_to_utc(tz: str | None) -> None:
    assert str(zone(tz)) == "UTC"
    assert parse_when("2026-11-26T09:30", tz, NOW) == datetime(2026, 11, 26, 9, 30, tzinfo=UTC)


def test_format_instant_utc_only() -> None:
    instant = datetime(2026, 11, 26, 9, 30, tzinfo=UTC)
    assert format_instant(instant, "UTC") == "2026-11-26 09:30:00 UTC"
    assert format_instant(instant, None) == "2026-11-26 09:30:00 UTC"


def test_format_instant_with_local_time() -> None:
    instant = datetime(2026, 11, 26, 9, 30, tzinfo=UTC)
    assert format_instant(instant, BERLIN) == "2026-11-26 09:30:00 UTC (10:30 Europe/Berlin)"


def test_format_instant_shows_the_local_date_when_it_differs() -> None:
    instant = datetime(2026, 11, 26, 23, 30, tzinfo=UTC)
    assert format_instant(instant, BERLIN) == (
        "2026-11-26 23:30:00 UTC (2026-11-27 00:30 Europe/Berlin)"
    )


@pytest.mark.parametrize(
    ("delta", "text"),
    [
        (timedelta(seconds=5), "5 s ago"),
        (timedelta(seconds=89), "89 s ago"),
        (timedelta(minutes=25), "25 min ago"),
        (timedelta(hours=3), "3.0 h ago"),
        (timedelta(days=3), "3.0 days ago"),
        (timedelta(seconds=-10), "in the future"),
    ],
)
def test_ago(delta: timedelta, text: str) -> None:
    assert ago(NOW - delta, NOW) == text


@pytest.mark.parametrize(
    "text",
    [
        "0001-01-01",
        "0001-01-01T00:00:00+14:00",
        "0001-01-01 00:00",
        "9999-12-31",
        "9999-12-31T23:59:59-12:00",
        "99999999999",
        "1969-12-31T23:59:59Z",
    ],
)
@pytest.mark.parametrize("tz", ["Europe/Berlin", "America/New_York", "Pacific/Kiritimati", "UTC"])
def test_extreme_dates_are_refused_with_a_reason_never_a_crash(text, tz):
    # Before: OverflowError (0001-01-01 east of UTC) or a year-1 instant handed on.
    with pytest.raises(WhenError) as info:
        parse_when(text, tz, datetime(2026, 11, 27, 3, 0, tzinfo=UTC))
    assert "`latest`" in str(info.value) or "future" in str(info.value)
