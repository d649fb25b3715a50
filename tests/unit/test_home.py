"""The App Home tab: bot.home (data + view) and the permalink cache of commands.home."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from slack_sdk.errors import SlackApiError

from bot.home import (
    MAX_TABLES,
    Coverage,
    CoverageCache,
    HomeData,
    TableCoverage,
    check_coverage,
    gather_home,
    home_view,
)
from bot.pitr import AwsError, PitrInfo
from bot.policy import Policy
from bot.restores import RestoreRequest, State
from bot.store.sqlite import SqliteStore
from commands.home import Permalinks

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
HOSTILE = "<!channel> <@U999> <https://evil.example|click> &amp; <!here>"
MARKUP = ("<!channel>", "<@U999>", "<https://evil", "<!here>")


def make(state: State = State.REQUESTED, **kw: Any) -> RestoreRequest:
    base = RestoreRequest(
        source="Orders",
        target="Orders-restored",
        requester="U1",
        channel="C1",
        restore_at=None,
        created_at=NOW - timedelta(minutes=10),
        expires_at=NOW + timedelta(minutes=50),
        card_ts="1700000000.000001",
    )
    return replace(base, state=state, **kw)


def rendered(data: HomeData) -> dict:
    view = home_view(data).to_dict()  # raises on any Slack limit
    assert view["type"] == "home"
    assert 0 < len(view["blocks"]) <= 100
    return view


def text_of(view: dict) -> str:
    return json.dumps(view, ensure_ascii=False)


class FakePitr:
    def __init__(self, tables: dict[str, str], fail_list: bool = False) -> None:
        self.tables = tables  # name -> ENABLED / DISABLED / "missing" / "denied"
        self.fail_list = fail_list
        self.list_calls = 0
        self.pitr_calls = 0

    def list_tables(self, limit: int = 1000) -> list[str]:
        self.list_calls += 1
        if self.fail_list:
            raise AwsError("AccessDeniedException", "The bot may not list tables <!channel>.")
        return list(self.tables)

    def pitr(self, name: str) -> PitrInfo:
        self.pitr_calls += 1
        status = self.tables[name]
        if status == "missing":
            raise AwsError("ResourceNotFoundException", "gone")
        if status == "denied":
            raise AwsError("AccessDeniedException", "no")
        return PitrInfo(name, status, None, 7 if status == "ENABLED" else None)


# -- the view ----------------------------------------------------------------------------------
def test_view_lists_in_flight_recent_and_coverage() -> None:
    running = make(
        State.RESTORING,
        id="run1",
        source="Orders",
        target="Orders-fix",
        restore_called_at=NOW - timedelta(minutes=3),
    )
    waiting = make(State.REQUESTED, id="wait1", source="Users", target="Users-old", requester="U2")
    done = make(
        State.ACTIVE,
        id="done1",
        source="Carts",
        target="Carts-old",
        restore_called_at=NOW - timedelta(hours=2),
        finished_at=NOW - timedelta(hours=1, minutes=48),
    )
    denied = make(State.DENIED, id="deny1", decided_at=NOW - timedelta(minutes=5))
    cov = Coverage(
        (TableCoverage("Orders", "ENABLED", 35), TableCoverage("Legacy", "DISABLED")),
        checked_at=NOW,
    )
    data = HomeData(
        now=NOW,
        in_flight=[running, waiting],
        recent=[done, denied],
        coverage=cov,
        links={"run1": "https://acme.slack.com/archives/C1/p1700000000000001"},
    )
    text = text_of(rendered(data))
    assert "`Orders` → `Orders-fix`" in text
    assert "restoring" in text and "for 3 min 00 s" in text and "<@U1>" in text
    assert "waiting for approval" in text and "<@U2>" in text
    assert "<https://acme.slack.com/archives/C1/p1700000000000001|thread>" in text
    assert "in <#C1>" in text  # no permalink: the channel at least
    assert "`Carts` → `Carts-old`" in text and "restored" in text and "took 12 min 00 s" in text
    assert "denied" in text and "after 5 min 00 s" in text
    assert "`Legacy` — PITR *DISABLED*" in text and "/pitr-enable Legacy" in text
    assert "`Orders` — PITR on, recovery period 35 days" in text
    # PITR off comes first: it is what someone has to act on
    assert text.index("`Legacy`") < text.index("`Orders` — PITR on")


def test_a_withdrawn_request_reads_withdrawn_not_denied() -> None:
    withdrawn = make(State.DENIED, id="w1", decided_by="U1", decided_at=NOW)
    refused = make(State.DENIED, id="d1", decided_by="U2", decided_at=NOW)
    cov = Coverage((), checked_at=NOW)
    shown = text_of(rendered(HomeData(now=NOW, in_flight=[], recent=[withdrawn], coverage=cov)))
    assert "withdrawn" in shown and "denied" not in shown
    shown = text_of(rendered(HomeData(now=NOW, in_flight=[], recent=[refused], coverage=cov)))
    assert "denied" in shown and "withdrawn" not in shown


def test_view_escapes_what_people_and_aws_typed() -> None:
    req = make(State.RESTORING, source=HOSTILE, target=HOSTILE, channel=HOSTILE)
    data = HomeData(
        now=NOW,
        in_flight=[req],
        recent=[make(State.FAILED, source=HOSTILE, id="f1")],
        coverage=Coverage((TableCoverage(HOSTILE, "DISABLED"),), checked_at=NOW),
        links={req.id: "https://evil.example|<!channel>"},  # never trusted as a link
    )
    text = text_of(rendered(data))
    for markup in MARKUP:
        assert markup not in text, markup
    assert "&lt;!channel&gt;" in text
    error_view = text_of(rendered(HomeData(now=NOW, coverage=Coverage(error=HOSTILE))))
    for markup in MARKUP:
        assert markup not in error_view, markup


def test_view_respects_block_and_text_limits_with_many_tables() -> None:
    long = "T" * 250
    tables = tuple(
        TableCoverage(f"{long}{i:04d}", "DISABLED" if i % 2 else "ENABLED", 35) for i in range(600)
    )
    many = [make(State.RESTORING, id=f"r{i}", source=long, target=long) for i in range(20)]
    data = HomeData(
        now=NOW,
        in_flight=many,
        in_flight_more=80,
        recent=many[:10],
        coverage=Coverage(tables, more=5000),
    )
    view = rendered(data)
    assert len(view["blocks"]) == 100
    for block in view["blocks"]:
        if block["type"] == "section":
            assert len(block["text"]["text"]) <= 3000
    text = text_of(view)
    assert "more blocks not shown" in text
    assert "…and 80 more" in text


def test_coverage_is_capped_at_50_tables_with_a_note() -> None:
    pitr = FakePitr({f"Table{i:03d}": "DISABLED" for i in range(120)})
    cov = check_coverage(pitr, Policy(), NOW)  # type: ignore[arg-type]
    assert len(cov.tables) == MAX_TABLES and cov.more == 70
    assert pitr.pitr_calls == MAX_TABLES  # the rest are not even asked about
    text = text_of(rendered(HomeData(now=NOW, coverage=cov)))
    assert "…and 70 more tables not shown" in text


def test_coverage_only_policy_tables_and_survives_table_errors() -> None:
    pitr = FakePitr(
        {"orders": "ENABLED", "orders-gone": "missing", "orders-x": "denied", "other": "ENABLED"}
    )
    cov = check_coverage(pitr, Policy(tables=["orders*"]), NOW)  # type: ignore[arg-type]
    assert [t.table for t in cov.tables] == ["orders", "orders-x"]
    assert cov.tables[1].status == "UNKNOWN" and cov.tables[1].problem == "AccessDeniedException"
    assert "couldn't check (AccessDeniedException)" in text_of(
        rendered(HomeData(now=NOW, coverage=cov))
    )


def test_aws_error_shows_a_message_instead_of_the_section() -> None:
    cov = check_coverage(FakePitr({}, fail_list=True), Policy(), NOW)  # type: ignore[arg-type]
    assert cov.error and not cov.tables
    text = text_of(rendered(HomeData(now=NOW, coverage=cov)))
    assert "Couldn't check PITR coverage" in text
    assert "PITR on" not in text


# -- caching -----------------------------------------------------------------------------------
def test_coverage_cache_asks_aws_once_a_minute() -> None:
    pitr = FakePitr({"A-table": "ENABLED"})
    t = [0.0]
    cache = CoverageCache(pitr, Policy(), lambda: NOW, ttl=60, monotonic=lambda: t[0])  # type: ignore[arg-type]
    first = cache.get()
    t[0] = 59
    assert cache.get() is first
    assert pitr.list_calls == 1
    t[0] = 61
    cache.get()
    assert pitr.list_calls == 2


def test_coverage_cache_does_not_keep_errors_nor_crash() -> None:
    pitr = FakePitr({"A-table": "ENABLED"}, fail_list=True)
    cache = CoverageCache(pitr, Policy(), lambda: NOW, monotonic=lambda: 0.0)  # type: ignore[arg-type]
    assert cache.get().error
    pitr.fail_list = False
    assert cache.get().tables  # asked again at once

    class Broken(FakePitr):
        def list_tables(self, limit: int = 1000) -> list[str]:
            raise RuntimeError("boom")

    assert CoverageCache(Broken({}), Policy(), lambda: NOW).get().error  # type: ignore[arg-type]


class FakeClient:
    def __init__(self, fail: bool = False) -> None:
        self.calls: list[dict] = []
        self.fail = fail

    def chat_getPermalink(self, **kwargs: Any) -> dict:  # noqa: N802 - slack_sdk's name
        self.calls.append(kwargs)
        if self.fail:
            raise SlackApiError("no", {"ok": False, "error": "message_not_found"})
        return {"ok": True, "permalink": f"https://acme.slack.com/archives/{kwargs['channel']}/p1"}


def test_permalinks_are_cached_per_message() -> None:
    client = FakeClient()
    links = Permalinks(client)  # type: ignore[arg-type]
    req = make(State.RESTORING)
    assert links(req) == "https://acme.slack.com/archives/C1/p1"
    assert links(req) == links(replace(req, state=State.ACTIVE))
    assert client.calls == [{"channel": "C1", "message_ts": "1700000000.000001"}]
    assert links(replace(req, card_ts=None)) is None  # no card yet: nothing to ask
    assert len(client.calls) == 1


def test_permalink_failures_give_no_link_and_are_retried_later() -> None:
    client = FakeClient(fail=True)
    t = [0.0]
    links = Permalinks(client, retry_after=60, monotonic=lambda: t[0])  # type: ignore[arg-type]
    req = make(State.RESTORING)
    assert links(req) is None
    assert links(req) is None
    assert len(client.calls) == 1
    client.fail, t[0] = False, 61
    assert links(req)
    assert len(client.calls) == 2


# -- gathering ---------------------------------------------------------------------------------
@pytest.fixture
def store(tmp_path: Any) -> Any:
    s = SqliteStore(str(tmp_path / "home.db"))
    yield s
    s.close()


def test_gather_home_reads_the_store(store: Any) -> None:
    store.add(make(State.REQUESTED, id="open1", created_at=NOW - timedelta(minutes=1)))
    for i in range(15):
        store.add(
            make(
                State.EXPIRED,
                id=f"old{i:02d}",
                created_at=NOW - timedelta(hours=30 - i),
                updated_at=NOW - timedelta(hours=29 - i),
            )
        )
    data = gather_home(
        store,
        FakePitr({"Orders": "DISABLED"}),  # type: ignore[arg-type]
        Policy(),
        NOW,
        permalink=lambda req: f"https://acme.slack.com/archives/C1/p{req.id}",
    )
    assert [r.id for r in data.in_flight] == ["open1"]
    assert len(data.recent) == 10 and data.recent[0].id == "old14"  # newest finished first
    assert data.links["open1"].endswith("popen1")
    assert [t.status for t in data.coverage.tables] == ["DISABLED"]
    rendered(data)


def test_gather_home_shows_only_what_the_viewer_may_see(store: Any) -> None:
    store.add(make(State.REQUESTED, id="orders1"))
    store.add(make(State.REQUESTED, id="secret1", source="Secret", target="Secret-copy"))
    store.add(make(State.DENIED, id="secret2", source="Secret", target="Secret-old"))
    data = gather_home(
        store,
        FakePitr({"Orders": "ENABLED", "Secret": "DISABLED"}),  # type: ignore[arg-type]
        Policy(),
        NOW,
        visible=lambda table: table != "Secret",
    )
    assert [r.id for r in data.in_flight] == ["orders1"]
    assert data.recent == []
    assert [t.table for t in data.coverage.tables] == ["Orders"]
    assert "Secret" not in str(home_view(data).to_dict())


def test_a_period_change_reads_as_one_in_the_home_tab(store: Any) -> None:
    change = make(State.ACTIVE, id="period1", kind="pitr_period", previous_days=35, recovery_days=7)
    store.add(replace(change, target="Orders", finished_at=NOW))
    data = gather_home(store, FakePitr({}), Policy(), NOW)  # type: ignore[arg-type]
    text = str(home_view(data).to_dict())
    assert "recovery period 35 → 7 days" in text and "changed" in text
    assert "restored" not in text.split("Recent")[1].split("PITR")[0]


def test_a_running_restore_shows_its_expected_end() -> None:
    eta = {"typical": 2400, "low": 2100, "high": 2700, "longest": 3000, "count": 3, "basis": "own"}
    running = make(State.RESTORING, restore_called_at=NOW - timedelta(minutes=20), eta=eta)
    text = text_of(rendered(HomeData(now=NOW, in_flight=[running])))
    assert "expected 12:15–12:25 UTC, typical 35–45 min for `Orders` · 50 % of typical" in text


class PlacesPitr(FakePitr):
    """Tables in the bot's own place, and per other (account, region); `denied` fails."""

    def __init__(self, own: dict[str, str], other: dict[tuple[str, str | None], list[str]]):
        super().__init__(own)
        self.other = other

    def list_tables(self, limit: int = 1000, account=None, region=None) -> list[str]:
        if account is None:
            return super().list_tables(limit)
        names = self.other[(account, region)]
        if names == ["denied"]:
            raise AwsError("AccessDenied", "not authorized to perform: sts:AssumeRole")
        return names

    def pitr(self, name: str) -> PitrInfo:
        return PitrInfo(name, "ENABLED", None, 35) if ":" in name else super().pitr(name)


def test_coverage_spans_every_account_and_region_and_names_the_unreachable() -> None:
    policy = Policy.model_validate(
        {
            "accounts": {
                "prod": {
                    "role_arn": "arn:aws:iam::111111111111:role/r",
                    "regions": ["eu-west-1"],
                },
                "staging": {"role_arn": "arn:aws:iam::222222222222:role/r"},
            }
        }
    )
    pitr = PlacesPitr(
        {"orders": "DISABLED"},
        {("prod", "eu-west-1"): ["orders"], ("staging", None): ["denied"]},
    )
    cov = check_coverage(pitr, policy, NOW)  # type: ignore[arg-type]
    assert [t.table for t in cov.tables] == ["orders", "prod:orders@eu-west-1"]
    text = text_of(home_view(HomeData(now=NOW, coverage=cov)).to_dict())
    assert "`prod:orders@eu-west-1` — PITR on" in text
    assert "Couldn't list the tables of staging" in text and "sts:AssumeRole" in text


def test_coverage_counts_and_warnings_follow_what_the_viewer_may_see(store: Any) -> None:
    # 120 tables, 50 checked: the "…and N more" count was the same for every viewer, and a
    # viewer who may see no table still read which accounts could not be listed and why.
    names = {f"Table{i:03d}": "DISABLED" for i in range(120)}
    cov = check_coverage(FakePitr(names), Policy(), NOW)  # type: ignore[arg-type]
    cov = replace(cov, unreachable=(("staging", "AccessDenied: not authorised"),))

    class Cached:
        def get(self) -> Any:
            return cov

    def view(visible: Any) -> str:
        data = gather_home(store, FakePitr({}), Policy(), NOW, coverage=Cached(), visible=visible)  # type: ignore[arg-type]
        return text_of(home_view(data).to_dict())

    everyone = view(None)
    assert "…and 70 more tables not shown" in everyone and "staging" in everyone
    evens = view(lambda table: int(table[-3:]) % 2 == 0)  # 25 shown, 35 of the rest
    assert "…and 35 more tables not shown" in evens and "staging" in evens
    nobody = view(lambda table: False)
    assert "more tables" not in nobody and "staging" not in nobody
