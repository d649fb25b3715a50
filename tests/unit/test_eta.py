"""The ETA: median and median ± MAD of earlier restores, similar tables, the floor."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bot.eta import (
    BORROWED,
    FLOOR,
    OWN,
    SIMILAR,
    Eta,
    Sample,
    card_text,
    estimate,
    overdue,
    progress_text,
)

MIN = 60.0
START = datetime(2026, 11, 29, 10, 45, tzinfo=UTC)


def orders(*minutes: float) -> list[Sample]:
    return [Sample("orders", m * MIN, source_bytes=10_000, source_items=100) for m in minutes]


def test_typical_range_from_the_tables_own_restores() -> None:
    eta = estimate("orders", orders(35, 40, 50))
    assert eta is not None and eta.basis == OWN and eta.count == 3
    assert eta.typical == 40 * MIN
    assert (eta.low, eta.high) == (35 * MIN, 45 * MIN)  # median ± MAD (MAD = 5 min)
    assert card_text(eta, "orders").startswith("typical 35–45 min (median 40 min, 3 earlier")


def test_a_restore_of_a_few_seconds_is_estimated_in_seconds_not_1_min() -> None:
    # Issue 11: a 4 s restore was announced as "1 min" on the next card.
    eta = estimate("orders", [Sample("orders", 4.0, source_bytes=10_000, source_items=100)])
    text = card_text(eta, "orders")
    assert text.startswith("typical 4 s (median 4 s, 1 earlier restore of `orders`"), text
    assert "min" not in text
    assert "typical 4 s for `orders`" in progress_text(eta, "orders", START, START)


def test_one_outlier_in_three_does_not_drag_the_estimate() -> None:
    steady = estimate("orders", orders(30, 32))
    wild = estimate("orders", orders(30, 32, 300))  # one restore hit a bad day
    assert wild is not None and steady is not None
    assert wild.typical == 32 * MIN and wild.high == 34 * MIN  # a mean would say 120 min
    assert wild.longest == 300 * MIN  # "longer than any earlier" still knows the outlier


def test_no_history_of_the_table_borrows_the_accounts_other_restores_by_size() -> None:
    # Duration grows as the square root of size in this account: 10, 20 and 40 min for
    # 1, 4 and 16 GB; a 64 GB table should take about 80 min.
    gb = 1 << 30
    history = [
        Sample("small", 10 * MIN, source_bytes=gb),
        Sample("mid", 20 * MIN, source_bytes=4 * gb),
        Sample("big", 40 * MIN, source_bytes=16 * gb),
        Sample("big", 40 * MIN, source_bytes=16 * gb),
        Sample("acc1:huge", 900 * MIN, source_bytes=64 * gb),  # another account: not counted
    ]
    eta = estimate("orders", history, source_bytes=64 * gb)
    assert eta is not None and eta.basis == BORROWED and eta.count == 4
    assert eta.typical == pytest.approx(80 * MIN, rel=0.01)
    text = card_text(eta, "orders")
    assert "borrowed: estimated from 4 restores of other tables in this account, by size" in text
    # Borrowed is a guess, not this table's record: never called overdue.
    assert not overdue(eta, 10 * eta.longest)


def test_borrowing_fits_a_slope_only_where_sizes_differ_and_keeps_it_sane() -> None:
    alike = [Sample(f"t{i}", m * MIN, source_bytes=10_000 + i) for i, m in enumerate((18, 20, 22))]
    eta = estimate("orders", alike, source_bytes=10_000_000)  # 1000x bigger, but no slope known
    assert eta is not None and eta.typical == pytest.approx(20 * MIN)
    # Bigger tables restoring faster (noise on few points): the slope is kept at 0, not < 0.
    odd = [Sample("a", 30 * MIN, source_bytes=1_000), Sample("b", 10 * MIN, source_bytes=10**9)]
    odd.append(Sample("c", 20 * MIN, source_bytes=10**6))
    eta = estimate("orders", odd, source_bytes=10**12)
    assert eta is not None and eta.typical == pytest.approx(20 * MIN)
    # Fewer than three restores of other tables, or no size: nothing borrowed.
    assert estimate("orders", odd[:2], source_bytes=10**6) is None
    assert estimate("orders", odd) is None
    # By items when the size in bytes is unknown.
    items = [
        Sample(f"t{i}", m * MIN, source_items=n)
        for i, (m, n) in enumerate(((10, 100), (20, 10_000), (40, 1_000_000)))
    ]
    eta = estimate("orders", items, source_items=100_000_000)
    assert eta is not None and eta.typical == pytest.approx(80 * MIN, rel=0.01)


def test_no_history_at_all_gives_no_estimate_or_the_configured_floor() -> None:
    assert estimate("orders", [], source_bytes=10_000) is None
    assert card_text(None, "orders") == "no history"
    floor = estimate("orders", [], source_bytes=10_000, min_minutes=20)
    assert floor is not None and floor.basis == FLOOR and floor.typical == 20 * MIN
    assert card_text(floor, "orders").startswith("at least 20 min")
    # The floor is only for tables without history.
    own = estimate("orders", orders(5), min_minutes=20)
    assert own is not None and own.typical == 5 * MIN


def test_progress_shows_expected_end_typical_range_and_share() -> None:
    eta = estimate("orders", orders(35, 40, 50))
    text = progress_text(eta, "orders", START, START + timedelta(minutes=20))
    assert text == "expected 11:20–11:30 UTC, typical 35–45 min for `orders` · 50 % of typical"


def test_overdue_once_longer_than_every_earlier_restore_of_the_table() -> None:
    eta = estimate("orders", orders(35, 40, 50))
    on_time = progress_text(eta, "orders", START, START + timedelta(minutes=49))
    late = progress_text(eta, "orders", START, START + timedelta(minutes=51))
    assert "taking longer" not in on_time
    assert late.endswith("taking longer than any earlier restore of this table")
    assert "128 % of typical" in late
    # Similar tables are a guess, not this table's record: never called overdue.
    similar = Eta(40 * MIN, 35 * MIN, 45 * MIN, 50 * MIN, 3, SIMILAR)
    assert not overdue(similar, 51 * MIN)


def test_eta_survives_the_store_round_trip_and_bad_records() -> None:
    eta = estimate("orders", orders(35, 40, 50))
    assert eta is not None and Eta.from_dict(eta.to_dict()) == eta
    assert Eta.from_dict(None) is None
    assert Eta.from_dict({"typical": "x"}) is None
