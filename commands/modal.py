"""The restore form: `/pitr-restore` with no arguments opens it (see commands/restore.py).

Four listeners, all Slack-facing glue; the checks are the workflow's own:
- `open_modal` (called by the slash command right after ack): views.open, nothing before it,
  because a trigger_id is only good for 3 seconds.
- options for the source picker (block_suggestion): the tables the policy lets this person
  restore from this channel, matching what they typed, labelled with PITR on/off.
- picking a source (block_actions): re-render with the target pre-filled.
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

from bot.blocks import code, esc
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
    default_target,
    metadata_channel,
    read_state,
    restore_modal,
    source_option,
)
from bot.pitr import AwsError, PitrService
from bot.policy import KMS_KEY_REF
from bot.restores import State, table_name_problem
from bot.services import Services
from bot.workflow import NewRequest, Outcome
from commands.common import after_ack, reports_errors, user_tz

log = logging.getLogger(__name__)

CACHE_SECONDS = 60.0  # table list and PITR status for the picker
PITR_LOOKUPS = 25  # PITR status is looked up for the first N matches; "PITR ?" beyond
OPTIONS_BUDGET = 1.5  # seconds to spend on PITR lookups while Slack waits for options
SUBMIT_BUDGET = 2.0  # seconds to spend on the preflight while Slack waits for the ack
MAX_GSIS = 20  # DynamoDB's limit of global secondary indexes per table
MAX_ERROR = 300
SORRY = "Something went wrong on my side; it is logged. Try again."

INDEX_NAME = re.compile(r"^[A-Za-z0-9_.-]{3,255}$")
KMS_KEY = KMS_KEY_REF  # the policy's kms_keys take the same forms


# -- the picker's data --------------------------------------------------------------------
class TableCache:
    """ListTables and PITR status, kept for a minute: a picker asks on every keystroke."""

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
        self._names: tuple[float, list[str]] | None = None
        self._status: dict[str, tuple[float, bool]] = {}
        self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="pitr-lookup")

    def tables(self) -> list[str]:
        with self._lock:
            if self._names and self.clock() - self._names[0] < self.ttl:
                return self._names[1]
        names = self.pitr.list_tables()
        with self._lock:
            self._names = (self.clock(), names)
        return names

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
) -> list[tuple[str, bool | None]]:
    """Tables this person may restore from this channel whose name contains `query`."""
    policy, members = services.policy, services.workflow.members
    needle = query.strip().lower()
    names: list[str] = []
    for name in cache.tables():
        if needle not in name.lower() or len(name) > MAX_OPTION_VALUE:
            continue  # (names over Slack's 150-character option limit: use the command)
        if not policy.table_allowed(name):
            continue
        if not policy.may_request(user, channel, name, members).allowed:
            continue
        names.append(name)
        if len(names) == MAX_OPTIONS:
            break
    status = cache.pitr_many(names[:PITR_LOOKUPS], OPTIONS_BUDGET)
    return [(name, status.get(name)) for name in names]


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
    if not inp.source:
        errors[SOURCE_BLOCK] = "Pick the table to restore."
    elif problem := table_name_problem(inp.source, "The source table name"):
        errors[SOURCE_BLOCK] = problem
    elif not channel:
        errors[SOURCE_BLOCK] = "Open this form with /pitr-restore in the channel for the card."
    if not inp.target:
        errors[inp.target_block] = "Name the new table."
    elif problem := table_name_problem(inp.target, "The new table name"):
        errors[inp.target_block] = problem
    elif inp.target == inp.source:
        errors[inp.target_block] = "The new table can't be the source table itself."
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
        source=inp.source,
        target=inp.target,
        target_block=inp.target_block,
        when=when,
        when_block=when_block,
        reason=inp.reason,
        overrides=overrides,
        exclude=overrides.get("exclude_indexes", []),
    )


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
            choices = source_choices(services, cache, user, channel, query)
        except AwsError as exc:
            log.warning("listing tables for the picker failed: %s", exc.message)
            choices = []
        ack(options=[source_option(name, pitr).to_dict() for name, pitr in choices])

    def source_picked(ack: Ack, body: dict, action: dict, client: WebClient) -> None:
        ack()
        view = body.get("view") or {}
        source = str((action.get("selected_option") or {}).get("value") or "")
        if not view.get("id") or table_name_problem(source):
            return
        # The form then shows the table's size and indexes: only for what the policy lets
        # this person request from the form's channel (the same rule as the options).
        user, channel = str(body.get("user", {}).get("id", "")), metadata_channel(view)
        members = services.workflow.members
        if not services.policy.may_request(user, channel, source, members).allowed:
            return
        after_ack(services, None, lambda: prefill(view, source, client))

    def prefill(view: dict, source: str, client: WebClient) -> None:
        # After the ack: two quick AWS reads, so the form can say what the table has.
        pitr = cache.lookup_pitr(source)
        try:
            info = services.pitr.table(source)
        except AwsError as exc:
            log.info("describing %s for the form failed: %s", source, exc.message)
            info = None
        picked = Picked(
            source=source,
            target=services.policy.suggest_target(default_target(source, services.clock())),
            pitr=pitr,
            table=info,
            described=True,
        )
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
        if form.exclude:
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
            f"Approval card posted for {code(form.source)} → {code(form.target)}. "
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
