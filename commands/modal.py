"""The restore form: `/pitr-restore` with no arguments opens it (see commands/restore.py).

Four listeners, all Slack-facing glue; the checks are the workflow's own:
- `open_modal` (called by the slash command right after ack): views.open, nothing before it,
  because a trigger_id is only good for 3 seconds.
- options for the source picker (block_suggestion): the tables the policy lets this person
  restore from this channel, in the bot's own account and region and in every account and
  region of the policy's `accounts` (as `prod:orders@eu-west-1`), matching what they typed,
  labelled with PITR on/off; at most Slack's 100, saying so when more matched.
- picking sources (block_actions): re-render with the target (several: a suffix) pre-filled.
  Several picks are submitted as the command's comma-separated sources: the same parsing,
  the same batch (one card, one approval, one instant).
- submit (view_submission): pure checks, then the workflow's preflight within a time budget, so
  refusals are shown inline on their field; then the same approval card as the slash command.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures import wait as wait_futures
from dataclasses import dataclass, field
from typing import Any

from slack_bolt import Ack, App
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError

from bot.blocks import esc
from bot.items.export_plan import exports_set_up
from bot.modal_blocks import (
    BILLING_ON_DEMAND,
    CALLBACK_ID,
    INDEXES_BLOCK,
    MAX_OPTION_VALUE,
    MAX_OPTIONS,
    SOURCE_ACTION,
    SOURCE_BLOCK,
    SSE_BLOCK,
    WHEN_PICK_BLOCK,
    WHEN_TEXT_BLOCK,
    ModalInput,
    Picked,
    default_suffix,
    default_target,
    metadata_channel,
    options_response,
    picked_sources,
    read_state,
    restore_modal,
)
from bot.pitr import AwsError, PitrService
from bot.places import Place, places
from bot.policy import KMS_KEY_REF, table_name_of
from bot.restores import State, table_name_problem
from bot.services import Services
from bot.tableref import RefError, parse_sources, targets_for
from bot.workflow import NewRequest, Outcome
from commands.common import after_ack, pairs_text, reports_errors, user_tz

log = logging.getLogger(__name__)

CACHE_SECONDS = 60.0  # table list and PITR status for the picker
PITR_LOOKUPS = 25  # PITR status is looked up for the first N matches; "PITR ?" beyond
OPTIONS_BUDGET = 1.5  # seconds to spend on PITR lookups while Slack waits for options
LIST_BUDGET = 1.0  # seconds to wait for the places' table lists (slow ones join later)
MAX_MATCHES = 1000  # tables counted for "First 100 of N"
SUBMIT_BUDGET = 2.0  # seconds to spend on the preflight while Slack waits for the ack
MAX_GSIS = 20  # DynamoDB's limit of global secondary indexes per table
MAX_ERROR = 300
SORRY = "Something went wrong on my side; it is logged. Try again."

HOME = Place()  # the bot's own account and region
INDEX_NAME = re.compile(r"^[A-Za-z0-9_.-]{3,255}$")
KMS_KEY = KMS_KEY_REF  # the policy's kms_keys take the same forms


# -- the picker's data --------------------------------------------------------------------
class TableCache:
    """ListTables (per place) and PITR status, kept for a minute: a picker asks on every
    keystroke."""

    def __init__(
        self,
        pitr: PitrService,
        ttl: float = CACHE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.pitr = pitr
        self.ttl = ttl
        self.clock = clock
        self._lock = threading.Lock()
        self._names: dict[Place, tuple[float, list[str]]] = {}
        self._status: dict[str, tuple[float, bool]] = {}
        self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="pitr-lookup")

    def tables(self, place: Place = HOME) -> list[str]:
        """The table names of one place (the bot's own by default)."""
        with self._lock:
            hit = self._names.get(place)
            if hit and self.clock() - hit[0] < self.ttl:
                return hit[1]
        names = self.pitr.list_tables(account=place.account, region=place.region)
        with self._lock:
            self._names[place] = (self.clock(), names)
        return names

    def tables_in(self, where: list[Place], budget: float) -> list[tuple[Place, list[str]]]:
        """The table names of each place, listed in parallel. The bot's own place is waited
        for (as before there were others; its failure raises AwsError). Another place that
        fails (no role, access denied) or is slower than `budget` is left out this time, and
        logged; a slow one fills the cache for the next keystroke."""
        futures = [(place, self._pool.submit(self.tables, place)) for place in where]
        for place, future in futures:
            if place == HOME:
                future.result()
        wait_futures([f for _, f in futures], timeout=budget)
        found: list[tuple[Place, list[str]]] = []
        for place, future in futures:
            if not future.done():
                log.info("tables of %s not listed within the budget", place)
                continue
            try:
                found.append((place, future.result()))
            except AwsError as exc:
                if place == HOME:
                    raise
                log.warning("listing tables of %s failed: %s", place, exc.message)
        return found

    def cached_pitr(self, name: str) -> bool | None:
        with self._lock:
            hit = self._status.get(name)
        return hit[1] if hit and self.clock() - hit[0] < self.ttl else None

    def lookup_pitr(self, name: str) -> bool | None:
        cached = self.cached_pitr(name)
        if cached is not None:
            return cached
        try:
            enabled = self.pitr.pitr(name).enabled
        except AwsError as exc:
            log.info("PITR status of %s unknown: %s", name, exc.message)
            return None
        with self._lock:
            self._status[name] = (self.clock(), enabled)
        return enabled

    def pitr_many(self, names: Iterable[str], budget: float) -> dict[str, bool | None]:
        """Status of each name, looked up in parallel; None for what the budget can't wait for.

        Lookups still running when the budget is spent finish in the background and fill the
        cache for the next keystroke.
        """
        names = list(names)
        out: dict[str, bool | None] = {name: self.cached_pitr(name) for name in names}
        futures = {
            self._pool.submit(self.lookup_pitr, name): name
            for name, status in out.items()
            if status is None
        }
        if futures:
            done, _ = wait_futures(futures, timeout=budget)
            for future in done:
                out[futures[future]] = future.result()
        return out


def source_choices(
    services: Services, cache: TableCache, user: str, channel: str, query: str
) -> tuple[list[tuple[str, bool | None]], int]:
    """Tables this person may restore from this channel whose reference contains `query`,
    in every place the policy allows: (the first MAX_OPTIONS with their PITR, how many
    matched in all)."""
    policy, members = services.policy, services.workflow.members
    needle = query.strip().lower()
    where = [
        p
        for p in places(policy.accounts, services.pitr.client.meta.region_name)
        if policy.place_allowed(p.account, p.region).allowed
    ]
    refs: list[str] = []
    for place, names in cache.tables_in(where, LIST_BUDGET):
        if len(refs) >= MAX_MATCHES:
            break
        for name in names:
            ref = place.ref(name)
            if needle not in ref.lower() or len(ref) > MAX_OPTION_VALUE:
                continue  # (references over Slack's 150-character option limit: use the command)
            if not policy.table_allowed(ref):
                continue
            if not policy.may_request(user, channel, ref, members).allowed:
                continue
            refs.append(ref)
            if len(refs) == MAX_MATCHES:
                break
    shown = refs[:MAX_OPTIONS]
    status = cache.pitr_many(shown[:PITR_LOOKUPS], OPTIONS_BUDGET)
    return [(ref, status.get(ref)) for ref in shown], len(refs)


# -- checking a submission ----------------------------------------------------------------
@dataclass
class Form:
    """A submission that passed the pure checks, ready for the workflow."""

    source: str
    target: str
    target_block: str
    when: str
    when_block: str
    reason: str
    overrides: dict[str, Any] = field(default_factory=dict)
    exclude: list[str] = field(default_factory=list)


def check_input(inp: ModalInput, channel: str) -> Form | dict[str, str]:
    """Checks that need neither AWS nor Slack: a Form, or {block_id: message}."""
    errors: dict[str, str] = {}
    sources = picked_sources(inp.source)
    several = len(sources) > 1
    if not sources:
        errors[SOURCE_BLOCK] = "Pick the table to restore."
    elif problem := _sources_problem(sources):
        errors[SOURCE_BLOCK] = problem
    elif not channel:
        errors[SOURCE_BLOCK] = "Open this form with /pitr-restore in the channel for the card."
    if not inp.target:
        errors[inp.target_block] = (
            "Give the suffix added to each name." if several else "Name the new table."
        )
    elif problem := _target_problem(sources, inp.target):
        errors[inp.target_block] = problem
    exclude = [name.strip() for name in inp.exclude_indexes.split(",") if name.strip()]
    bad = [name for name in exclude if not INDEX_NAME.fullmatch(name)]
    if bad:
        errors[INDEXES_BLOCK] = (
            f"{bad[0]!r} is not an index name (3 to 255 letters, digits, _ - .). "
            "Separate names with commas."
        )
    elif len(exclude) > MAX_GSIS:
        errors[INDEXES_BLOCK] = f"A table has at most {MAX_GSIS} global secondary indexes."
    if inp.sse_key and not KMS_KEY.fullmatch(inp.sse_key):
        errors[SSE_BLOCK] = "Give a KMS key ID, key ARN, alias/name or alias ARN."
    if errors:
        return errors
    overrides: dict[str, Any] = {}
    if inp.billing == BILLING_ON_DEMAND:
        overrides["billing_mode"] = BILLING_ON_DEMAND
    if exclude:
        overrides["exclude_indexes"] = sorted(set(exclude))
    if inp.sse_key:
        overrides["sse_key"] = inp.sse_key
    # Precedence (the form's hint says so): typed text, else the picker, else latest.
    if inp.when_text:
        when, when_block = inp.when_text, WHEN_TEXT_BLOCK
    elif inp.when_epoch is not None:
        when, when_block = str(inp.when_epoch), WHEN_PICK_BLOCK
    else:
        when, when_block = "latest", WHEN_TEXT_BLOCK
    return Form(
        source=",".join(sources),
        target=inp.target,
        target_block=inp.target_block,
        when=when,
        when_block=when_block,
        reason=inp.reason,
        overrides=overrides,
        exclude=overrides.get("exclude_indexes", []),
    )


def _sources_problem(sources: list[str]) -> str | None:
    """The command's own parsing of the picks (a forged payload may send anything)."""
    if len(sources) == 1 and ":" not in sources[0] and "@" not in sources[0]:
        return table_name_problem(sources[0], "The source table name")
    try:
        parse_sources(",".join(sources))
    except RefError as exc:
        return str(exc)
    return None


def _target_problem(sources: list[str], target: str) -> str | None:
    if len(sources) == 1 and ":" not in target and "@" not in target:
        if problem := table_name_problem(target, "The new table name"):
            return problem
    if not sources or _sources_problem(sources):
        return None  # shown on the source
    try:
        refs = parse_sources(",".join(sources))
        targets = targets_for(refs, target)
    except RefError as exc:
        return str(exc)
    if any(t.name == s.name and t.region == s.region for s, t in zip(refs, targets, strict=True)):
        return "The new table can't be the source table itself."
    return None


def error_block(form: Form, outcome_field: str | None) -> str:
    """Which input a workflow refusal belongs on (AWS trouble is shown on the source)."""
    return {
        "target": form.target_block,
        "when": form.when_block,
        "kms_key": SSE_BLOCK,
        "overrides": INDEXES_BLOCK,  # the other override AWS can reject: indexes left out
    }.get(outcome_field or "", SOURCE_BLOCK)


def _plain(message: str) -> str:
    """Inline errors are plain text: drop mrkdwn backticks, keep it short."""
    text = message.replace("`", "")
    return text if len(text) <= MAX_ERROR else text[: MAX_ERROR - 1] + "…"


@dataclass
class Submitted:
    outcome: Outcome | None = None
    errors: dict[str, str] = field(default_factory=dict)


# -- the listeners ------------------------------------------------------------------------
def open_modal(client: WebClient, command: dict) -> bool:
    """views.open with the command's trigger_id; False if Slack refused (then use the text)."""
    try:
        client.views_open(
            trigger_id=command["trigger_id"], view=restore_modal(command["channel_id"])
        )
    except (SlackApiError, SlackClientError, OSError) as exc:
        log.warning("views.open failed: %s", exc)
        return False
    # Human times are parsed by dateparser, slow to import the first time: do it now, while
    # the person fills in the form, not inside the submit's time budget.
    threading.Thread(target=_warm_up, name="warm-dateparser", daemon=True).start()
    return True


def _warm_up() -> None:
    try:
        import dateparser  # noqa: F401
    except ImportError:  # pragma: no cover - a dependency
        pass


def register(app: App, services: Services) -> None:
    cache = TableCache(services.pitr)
    pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="modal-submit")

    def source_options(ack: Ack, body: dict) -> None:
        user = body["user"]["id"]
        channel = metadata_channel(body.get("view") or {})
        query = str(body.get("value") or "")[:255]
        try:
            choices, matched = source_choices(services, cache, user, channel, query)
        except AwsError as exc:
            log.warning("listing tables for the picker failed: %s", exc.message)
            choices, matched = [], 0
        ack(**options_response(choices, matched))

    def source_picked(ack: Ack, body: dict, action: dict, client: WebClient) -> None:
        ack()
        view = body.get("view") or {}
        options = action.get("selected_options")
        if not isinstance(options, list):
            options = [action.get("selected_option") or {}]
        sources = [str(o.get("value") or "") for o in options if isinstance(o, dict)]
        if not view.get("id") or not sources or _sources_problem(sources):
            return
        # The form then shows the tables' size and indexes: only for what the policy lets
        # this person request from the form's channel (the same rules as the options).
        user, channel = str(body.get("user", {}).get("id", "")), metadata_channel(view)
        members = services.workflow.members
        for source in sources:
            ref, _ = services.workflow.table_ref(source)
            if ref is None or not services.policy.may_request(user, channel, ref, members).allowed:
                return
        after_ack(services, None, lambda: prefill(view, sources, client))

    def prefill(view: dict, sources: list[str], client: WebClient) -> None:
        # After the ack: quick AWS reads, so the form can say what the tables have.
        now = services.clock()
        if len(sources) > 1:
            status = cache.pitr_many(sources, OPTIONS_BUDGET)
            picked = Picked(
                source=",".join(sources),
                target=default_suffix(now),
                described=True,
                pitrs=tuple((s, status.get(s)) for s in sources),
            )
        else:
            (source,) = sources
            pitr = cache.lookup_pitr(source)
            try:
                info = services.pitr.table(source)
            except AwsError as exc:
                log.info("describing %s for the form failed: %s", source, exc.message)
                info = None
            name = table_name_of(source)  # the target stays in the source's account and region
            picked = Picked(
                source=source,
                target=services.policy.suggest_target(default_target(name, now)),
                pitr=pitr,
                table=info,
                described=True,
                exports=exports_set_up(
                    source, services.settings.export_s3, services.policy.accounts
                ),
            )
        source = picked.source
        try:
            client.views_update(
                view_id=view["id"],
                hash=view.get("hash"),
                view=restore_modal(metadata_channel(view), picked),
            )
        except SlackApiError as exc:  # hash_conflict: a newer pick already re-rendered it
            log.info("views.update after picking %s: %s", source, exc.response.get("error"))

    def preflight(form: Form, user: str, channel: str, client: WebClient) -> Submitted:
        """In the submit pool: the workflow's checks, and the request if they pass."""
        new = NewRequest(
            source=form.source,
            target=form.target,
            when=form.when,
            requester=user,
            channel=channel,
            requester_tz=user_tz(client, user),
            reason=form.reason,
            overrides=form.overrides or None,
        )
        if form.exclude and "," not in form.source:  # (several: the batch checks each)
            try:
                info = services.pitr.table(form.source)
            except AwsError:
                info = None  # the workflow's own check reports it
            unknown = [n for n in form.exclude if info is not None and n not in info.indexes]
            if unknown:
                have = ", ".join(info.indexes) if info and info.indexes else "none"
                errors = {
                    INDEXES_BLOCK: f"{form.source} has no index {unknown[0]}. "
                    f"Its global secondary indexes: {have}."
                }
                # Refused anyway: the rest of the preflight (no request) shows every problem.
                checked = services.workflow.check(new)
                if isinstance(checked, Outcome) and not checked.ok:
                    errors.setdefault(error_block(form, checked.field), _plain(checked.message))
                return Submitted(errors=errors)
        outcome = services.workflow.request(new)
        if not outcome.ok:
            return Submitted(outcome, {error_block(form, outcome.field): _plain(outcome.message)})
        return Submitted(outcome)

    def submitted(ack: Ack, body: dict, view: dict, client: WebClient) -> None:
        user = body["user"]["id"]
        channel = metadata_channel(view)
        form = check_input(read_state((view.get("state") or {}).get("values") or {}), channel)
        if isinstance(form, dict):
            ack(response_action="errors", errors=form)
            return
        # The one exception to "ack first, AWS after": Slack accepts inline errors only in
        # the ack of a view_submission, within 3 s. So the preflight (and, when it passes,
        # the request itself: no second preflight) runs before the ack, within a budget;
        # if AWS is slower than that, the form closes and the answer comes ephemerally.
        # (Its own pool, not services.work: the budget must not be spent queueing behind
        # other listeners' slow work.)
        future = pool.submit(preflight, form, user, channel, client)
        try:
            result = future.result(timeout=SUBMIT_BUDGET)
        except FutureTimeout:
            ack()
            log.info("restore form of %s: preflight over budget, answering ephemerally", user)

            def late() -> None:
                try:
                    outcome = future.result()
                except Exception:
                    _ephemeral(client, channel, user, ":warning: " + SORRY)
                    raise
                _finish(outcome, form, user, channel, client)

            after_ack(services, None, late)
            return
        except Exception:
            ack(
                response_action="errors",
                errors={SOURCE_BLOCK: SORRY},
            )
            raise
        if result.errors:
            ack(response_action="errors", errors=result.errors)
            return
        ack()
        after_ack(services, None, lambda: _finish(result, form, user, channel, client))

    def _finish(result: Submitted, form: Form, user: str, channel: str, client: WebClient) -> None:
        """After the form closed: post the card now, and tell the requester how it went."""
        if result.errors:
            text = " ".join(result.errors.values())
            _ephemeral(client, channel, user, f":warning: {esc(text)}")
            return
        if result.outcome is None or result.outcome.request is None:
            return
        services.announcer.flush()  # post the card now, so a failure can be told right here
        req = services.store.get(result.outcome.request.id)
        if req is not None and req.state == State.CANCELLED:
            message = req.error or "The approval card could not be posted."
            _ephemeral(client, channel, user, f":warning: {esc(message)}")
            return
        _ephemeral(
            client,
            channel,
            user,
            f"Approval card posted for {pairs_text(form.source, form.target)}. "
            "Someone else has to click *Approve*.",
        )

    app.options(SOURCE_ACTION)(reports_errors(source_options))
    app.action(SOURCE_ACTION)(reports_errors(source_picked))
    app.view(CALLBACK_ID)(reports_errors(submitted))


def _ephemeral(client: WebClient, channel: str, user: str, text: str) -> None:
    try:
        client.chat_postEphemeral(channel=channel, user=user, text=text)
    except (SlackApiError, SlackClientError, OSError) as exc:
        log.warning("could not tell %s about their restore form: %s", user, exc)
