"""The App Home tab: restores in flight, recent ones, drills, and the PITR coverage of policy
tables in every account and region the policy allows.

Tables are written as everywhere else (cards, reports): their stored reference, so a table of
another account or region reads `prod:orders@eu-west-1` and one of the bot's own a plain name.

Two halves. `gather_home` reads the store and (through a 60-second `CoverageCache`) DynamoDB;
`home_view` is a pure function from that data to a `slack_sdk.models.views.View`. Text a person
typed goes through `esc`/`code`; every section is cut to Slack's 3000 characters and the view to
its 100 blocks, so `to_dict()` never raises on real data.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

from slack_sdk.models.blocks import Block, ContextBlock, DividerBlock, HeaderBlock, SectionBlock
from slack_sdk.models.views import View

from bot.blocks import code, esc, eta_line, fit, md, slack_date, subject, user
from bot.drills.model import FINAL, LIVE, Drill, report_line
from bot.period_change import PERIOD_CHANGE
from bot.pitr import NOT_FOUND, AwsError, PitrService
from bot.places import Place, places
from bot.policy import Policy
from bot.restores import RestoreRequest, State, human_duration
from bot.store import Store
from bot.when import format_instant

log = logging.getLogger(__name__)

OPEN_STATES: tuple[State, ...] = (State.REQUESTED, State.APPROVED, State.RESTORING)
DONE_STATES: tuple[State, ...] = (
    State.ACTIVE,
    State.FAILED,
    State.DENIED,
    State.EXPIRED,
    State.CANCELLED,
)
MAX_IN_FLIGHT = 20
MAX_RECENT = 10
MAX_TABLES = 50
MAX_DRILLS = 10
MAX_BLOCKS = 100  # Slack's limit for a view
MAX_TEXT = 3000  # Slack's limit for a section's text
COVERAGE_TTL = 60.0  # seconds a coverage report is reused

OPEN_LABEL = {
    State.REQUESTED: ":raised_hand: waiting for approval",
    State.APPROVED: ":hourglass_flowing_sand: approved, starting",
    State.RESTORING: ":hourglass_flowing_sand: restoring",
}
DONE_LABEL = {
    State.ACTIVE: ":white_check_mark: restored",
    State.FAILED: ":x: failed",
    State.DENIED: ":no_entry: denied",
    State.EXPIRED: ":hourglass: expired",
    State.CANCELLED: ":heavy_multiplication_x: cancelled",
}


# -- data --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TableCoverage:
    table: str
    status: str  # ENABLED, DISABLED, ENABLING, DISABLING, or UNKNOWN when the check failed
    recovery_days: int | None = None
    problem: str | None = None  # why the status is UNKNOWN

    @property
    def enabled(self) -> bool:
        return self.status == "ENABLED"


@dataclass(frozen=True)
class Coverage:
    """PITR of the tables the policy covers: at most MAX_TABLES checked, `more` not checked."""

    tables: tuple[TableCoverage, ...] = ()
    more: int = 0
    error: str | None = None  # set instead of `tables` when AWS could not be asked
    checked_at: datetime | None = None
    # Other accounts/regions that could not be listed: (place, why), shown as a warning.
    unreachable: tuple[tuple[str, str], ...] = ()
    unchecked: tuple[str, ...] = ()  # the `more` tables' names: counted per viewer


@dataclass(frozen=True)
class HomeData:
    now: datetime
    in_flight: Sequence[RestoreRequest] = ()
    in_flight_more: int = 0
    recent: Sequence[RestoreRequest] = ()
    coverage: Coverage = field(default_factory=Coverage)
    # restore id -> permalink of its approval card (the thread); missing ones get no link
    links: Mapping[str, str] = field(default_factory=dict)
    store_error: str | None = None
    drills: Sequence[Drill] = ()  # live ones first, then the latest finished
    drills_configured: bool = False  # the policy has `drills` (so the section is shown)


def check_coverage(
    pitr: PitrService, policy: Policy, now: datetime, limit: int = MAX_TABLES
) -> Coverage:
    """Ask DynamoDB about the policy's tables, in the bot's own account and region and in
    every account and region of the policy's `accounts`; an AWS error listing the bot's own
    becomes `Coverage.error`, one listing another place a line in `unreachable`."""
    try:
        names = sorted(n for n in pitr.list_tables() if policy.table_allowed(n))
    except AwsError as exc:
        return Coverage(error=exc.message, checked_at=now)
    unreachable: list[tuple[str, str]] = []
    home = getattr(getattr(getattr(pitr, "client", None), "meta", None), "region_name", None)
    for place in places(policy.accounts, home)[1:]:
        if not policy.place_allowed(place.account, place.region).allowed:
            continue
        try:
            found = pitr.list_tables(account=place.account, region=place.region)
        except AwsError as exc:
            unreachable.append((_place_text(place), exc.message))
            continue
        names += sorted(r for r in map(place.ref, found) if policy.table_allowed(r))
    rows: list[TableCoverage] = []
    for name in names[:limit]:
        try:
            info = pitr.pitr(name)
        except AwsError as exc:
            if exc.code in NOT_FOUND:  # deleted since ListTables
                continue
            rows.append(TableCoverage(name, "UNKNOWN", problem=exc.code))
            continue
        rows.append(TableCoverage(name, info.status, info.recovery_days))
    unchecked = tuple(names[limit:])
    return Coverage(tuple(rows), len(unchecked), None, now, tuple(unreachable), unchecked)


def _place_text(place: Place) -> str:
    return f"{place.account or 'this account'}" + (f" in {place.region}" if place.region else "")


class CoverageCache:
    """One coverage check per `ttl` seconds however often Home is opened; thread-safe."""

    def __init__(
        self,
        pitr: PitrService,
        policy: Policy,
        clock: Callable[[], datetime],
        ttl: float = COVERAGE_TTL,
        monotonic: Callable[[], float] = time.monotonic,
    ):
        self.pitr, self.policy, self.clock, self.ttl = pitr, policy, clock, ttl
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._value: Coverage | None = None
        self._at = 0.0

    def get(self) -> Coverage:
        with self._lock:  # concurrent opens wait for one check instead of each doing one
            if self._value is not None and self._monotonic() - self._at < self.ttl:
                return self._value
            try:
                value = check_coverage(self.pitr, self.policy, self.clock())
            except Exception:  # noqa: BLE001 - Home must render whatever AWS does
                log.warning("PITR coverage check failed", exc_info=True)
                value = Coverage(error="The PITR check failed unexpectedly.", checked_at=None)
            if value.error is None:
                self._value, self._at = value, self._monotonic()
            else:
                self._value = None  # don't keep an error: the next open asks again
            return value

    def clear(self) -> None:
        with self._lock:
            self._value = None


def gather_home(
    store: Store,
    pitr: PitrService,
    policy: Policy,
    now: datetime,
    coverage: CoverageCache | None = None,
    permalink: Callable[[RestoreRequest], str | None] | None = None,
    visible: Callable[[str], bool] | None = None,
    with_drills: bool = False,
) -> HomeData:
    """Everything Home shows. `permalink(req)` gives the link to a card's thread (or None).

    `visible(table)` says whether the viewer may see that table (the policy); None shows all.
    """

    def shows(table: str) -> bool:
        return visible is None or visible(table)

    store_error = None
    in_flight: list[RestoreRequest] = []
    recent: list[RestoreRequest] = []
    drills: list[Drill] = []
    try:
        in_flight = [r for r in store.find(states=OPEN_STATES, limit=100) if shows(r.source)]
        done = [r for r in store.find(states=DONE_STATES, limit=3 * MAX_RECENT) if shows(r.source)]
        recent = sorted(done, key=ended_at, reverse=True)[:MAX_RECENT]
        if with_drills:
            live = store.drill_find(states=LIVE, limit=MAX_DRILLS)
            final = store.drill_find(states=FINAL, limit=MAX_DRILLS)
            final.sort(key=lambda d: d.finished_at or d.created_at, reverse=True)
            drills = [d for d in [*live, *final] if shows(d.source)][:MAX_DRILLS]
    except Exception:  # noqa: BLE001 - show what can be shown
        log.warning("could not read restores for the Home tab", exc_info=True)
        store_error = "The bot could not read its restore records just now."
    shown = in_flight[:MAX_IN_FLIGHT]
    cov = coverage.get() if coverage is not None else check_coverage(pitr, policy, now)
    if visible is not None:
        # Counts and warnings are facts too: a viewer learns nothing of tables they may not see.
        tables = tuple(t for t in cov.tables if shows(t.table))
        more = sum(1 for name in cov.unchecked if shows(name))
        unreachable = cov.unreachable if tables or more else ()
        cov = replace(cov, tables=tables, more=more, unreachable=unreachable)
    links: dict[str, str] = {}
    if permalink is not None:
        for req in [*shown, *recent]:
            url = permalink(req)
            if url:
                links[req.id] = url
    return HomeData(
        now=now,
        in_flight=shown,
        in_flight_more=len(in_flight) - len(shown),
        recent=recent,
        coverage=cov,
        links=links,
        store_error=store_error,
        drills=drills,
        drills_configured=bool(policy.drills),
    )


def ended_at(req: RestoreRequest) -> datetime:
    return req.finished_at or req.decided_at or req.updated_at or req.created_at


# -- view --------------------------------------------------------------------------------------
def home_view(data: HomeData) -> View:
    """The Home tab for `data`; always valid for views.publish."""
    blocks: list[Block] = [
        HeaderBlock(text="Point-in-time restores"),
        ContextBlock(
            elements=[
                md(
                    "Restores of DynamoDB tables by `/pitr-restore`, and which tables can be "
                    f"restored. Updated {slack_date(data.now, format_instant(data.now, 'UTC'))}; "
                    "open the tab again to refresh."
                )
            ]
        ),
        DividerBlock(),
        HeaderBlock(text="In flight"),
    ]
    if data.store_error:
        blocks.append(SectionBlock(text=md(f":warning: {esc(data.store_error)}")))
    else:
        lines = [_open_line(r, data) for r in data.in_flight]
        if data.in_flight_more:
            lines.append(f"…and {data.in_flight_more} more")
        blocks += _sections(lines or ["Nothing in flight."])
        blocks.append(HeaderBlock(text=f"Recent (last {MAX_RECENT} finished)"))
        blocks += _sections([_done_line(r, data) for r in data.recent] or ["No restores yet."])
        if data.drills or data.drills_configured:
            blocks.append(HeaderBlock(text="Restore drills"))
            lines = [_drill_line(d, data) for d in data.drills]
            blocks += _sections(lines or ["No drills yet."])
    blocks.append(DividerBlock())
    blocks += coverage_blocks(data.coverage)
    return View(type="home", blocks=_cap(blocks))


def _thread(req: RestoreRequest, data: HomeData) -> str:
    url = data.links.get(req.id)
    if url and url.startswith("https://") and not any(c in url for c in "<>|\n "):
        return f"<{url}|thread>"
    channel = req.channel if req.channel.isalnum() else None
    return f"in <#{channel}>" if channel else ""


def _open_line(req: RestoreRequest, data: HomeData) -> str:
    parts = [
        f"*{subject(req)}*",
        OPEN_LABEL.get(req.state, esc(req.state.value)),
        f"for {human_duration(req.elapsed(data.now))}",
        eta_line(req, data.now),
        f"asked by {user(req.requester)}",
        _review(req),
        _thread(req, data),
    ]
    return "• " + " · ".join(p for p in parts if p)


def _review(req: RestoreRequest) -> str:
    """A break-glass self-approval stays visible until another approver reviewed it."""
    if not req.break_glass_reason:
        return ""
    if req.reviewed_by:
        return f"break-glass, reviewed by {user(req.reviewed_by)}"
    return ":rotating_light: break-glass, *review pending*"


def _done_line(req: RestoreRequest, data: HomeData) -> str:
    end = ended_at(req)
    if req.state in (State.ACTIVE, State.FAILED) and req.restore_called_at:
        took = f"took {human_duration(end - req.restore_called_at)}"
    else:
        took = f"after {human_duration(end - req.created_at)}"
    parts = [
        subject(req),
        ":leftwards_arrow_with_hook: withdrawn"
        if req.withdrawn
        else ":white_check_mark: changed"
        if req.kind == PERIOD_CHANGE and req.state == State.ACTIVE
        else DONE_LABEL.get(req.state, esc(req.state.value)),
        took,
        f"asked by {user(req.requester)}",
        _review(req),
        slack_date(end, format_instant(end, "UTC")),
        _thread(req, data),
    ]
    return "• " + " · ".join(p for p in parts if p)


def _drill_line(drill: Drill, data: HomeData) -> str:
    """A running drill, or a finished one as its channel report says it (the same line)."""
    if drill.final:
        end = drill.finished_at or drill.created_at
        return f"• {report_line(drill)} · {slack_date(end, format_instant(end, 'UTC'))}"
    took = human_duration(data.now - drill.created_at)
    return (
        f"• :test_tube: Restore drill of {code(drill.source)}: "
        f"{esc(drill.state.value.lower())} for {took}"
    )


def coverage_blocks(cov: Coverage) -> list[Block]:
    blocks: list[Block] = [HeaderBlock(text="PITR coverage")]
    if cov.error:
        blocks.append(
            SectionBlock(
                text=md(
                    fit(
                        ":warning: Couldn't check PITR coverage right now: "
                        f"{esc(cov.error)} Open the tab again later."
                    )
                )
            )
        )
        return blocks
    for place, why in cov.unreachable:
        blocks.append(
            SectionBlock(
                text=md(fit(f":warning: Couldn't list the tables of {esc(place)}: {esc(why)}"))
            )
        )
    if not cov.tables:
        blocks.append(
            SectionBlock(
                text=md("No tables the policy covers exist in the bot's accounts and regions.")
            )
        )
        return blocks
    off = [t for t in cov.tables if not t.enabled]
    on = [t for t in cov.tables if t.enabled]
    summary = f"{len(on)} of {len(cov.tables)} checked tables have PITR on."
    if cov.more:
        summary += f" …and {cov.more} more tables not shown."
    if cov.checked_at:
        summary += f" Checked {slack_date(cov.checked_at, format_instant(cov.checked_at, 'UTC'))}."
    blocks.append(ContextBlock(elements=[md(summary)]))
    if off:
        blocks.append(
            SectionBlock(
                text=md(
                    f":warning: *PITR off — {_tables(len(off))} cannot be restored to a point "
                    "in time.* Turn it on with `/pitr-enable TABLE`."
                )
            )
        )
        blocks += _sections([_table_line(t) for t in off])
    if on:
        blocks.append(SectionBlock(text=md(":shield: *PITR on*")))
        blocks += _sections([_table_line(t) for t in on])
    return blocks


def _tables(n: int) -> str:
    return "this table" if n == 1 else f"these {n} tables"


def _table_line(t: TableCoverage) -> str:
    if t.enabled:
        days = f"{t.recovery_days} days" if t.recovery_days else "35 days (default)"
        return f"• {code(t.table)} — PITR on, recovery period {days}"
    if t.status == "UNKNOWN":
        return f"• {code(t.table)} — couldn't check ({esc(t.problem or 'error')})"
    return f"• {code(t.table)} — PITR *{esc(t.status)}* · `/pitr-enable {esc(t.table)}`"


# -- limits ------------------------------------------------------------------------------------
def _sections(lines: Iterable[str], limit: int = MAX_TEXT) -> list[Block]:
    """Pack lines into as few sections as Slack's text limit allows."""
    chunks: list[str] = []
    current = ""
    for line in lines:
        line = fit(line, limit)
        if current and len(current) + 1 + len(line) > limit:
            chunks.append(current)
            current = line
        else:
            current = f"{current}\n{line}" if current else line
    if current:
        chunks.append(current)
    return [SectionBlock(text=md(c)) for c in chunks]


def _cap(blocks: list[Block], limit: int = MAX_BLOCKS) -> list[Block]:
    if len(blocks) <= limit:
        return blocks
    dropped = len(blocks) - (limit - 1)
    note = ContextBlock(elements=[md(f"…{dropped} more blocks not shown (Slack's limit).")])
    return [*blocks[: limit - 1], note]
