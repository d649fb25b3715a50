"""Asking: every preflight check a card promises, then the request and its card.

Also the request to lower a table's recovery period, which is approved like a restore.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bot import eta as etas
from bot.drills.model import drill_name_problem
from bot.engine.context import Context, Outcome
from bot.engine.history import estimate_for
from bot.logs import restore_context
from bot.overrides import key_region_problem
from bot.period_change import DEFAULT_DAYS, PERIOD_CHANGE
from bot.pitr import AwsError, PitrInfo, TableInfo
from bot.policy import Decision, Policy
from bot.restores import (
    IN_FLIGHT,
    RestoreRequest,
    State,
    Window,
    expiry,
    table_name_problem,
)
from bot.tableref import RefError, TableRef, canonical, parse_ref, targets_for
from bot.when import WhenError, format_instant, parse_when

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class NewRequest:
    source: str
    target: str
    when: str
    requester: str
    channel: str
    requester_tz: str = "UTC"
    reason: str = ""
    overrides: dict | None = None
    # A Workflow Builder step's run (commands/workflow_step.py): completed when it ends.
    function_execution_id: str | None = None


@dataclass(frozen=True)
class _Checked:
    instant: datetime | None
    window: Window
    source: TableInfo
    # The tables as stored: canonical references (`prod:orders@eu-west-1`; a plain name in
    # the bot's own account and region).
    source_ref: str
    target_ref: str


class Requests:
    def __init__(self, ctx: Context):
        self.ctx = ctx

    def request(self, new: NewRequest) -> Outcome:
        """Check everything a card promises, then create the request and queue its card."""
        checked = self.check(new)
        if isinstance(checked, Outcome):
            return checked
        rule = self.ctx.policy.for_table(checked.source_ref)
        req = self.build(
            new, checked, checked.instant, rule.request_ttl_minutes, rule.required_approvals
        )
        when = format_instant(checked.instant, "UTC") if checked.instant else "latest"
        entry = self.ctx.audit_entry(
            "requested", req, new.requester, detail=f"{req.target} at {when}"
        )
        self.ctx.store.add(req, announce=self.ctx.owed(None, req, ["card"]), audit=[entry])
        self.ctx.on_event(entry.event)
        with restore_context(req.id):
            log.info("restore %s requested: %s -> %s at %s", req.id, req.source, req.target, when)
        self.ctx.on_change()
        return Outcome(True, "", req)

    def build(
        self,
        new: NewRequest,
        checked: _Checked,
        instant: datetime | None,
        ttl_minutes: float,
        required_approvals: int,
        **batch: Any,
    ) -> RestoreRequest:
        """The request for one checked table: what its card shows about the source, fixed
        now. A batch (bot/batches/engine.py) builds each of its tables this way too."""
        now = self.ctx.clock()
        source = checked.source
        eta = self.eta(checked.source_ref, source.size_bytes, source.item_count)
        return RestoreRequest(
            source=checked.source_ref,
            target=checked.target_ref,
            requester=new.requester,
            channel=new.channel,
            restore_at=instant,
            created_at=now,
            updated_at=now,
            expires_at=expiry(now, ttl_minutes),
            requester_tz=new.requester_tz,
            reason=new.reason,
            function_execution_id=new.function_execution_id,
            window=checked.window,
            required_approvals=required_approvals,
            source_items=source.item_count,
            source_bytes=source.size_bytes,
            source_billing=source.billing_mode,
            source_indexes=source.indexes,
            source_encryption=source.encryption,
            estimate=etas.card_text(eta, checked.source_ref),
            eta=eta.to_dict() if eta else None,
            overrides=new.overrides or None,
            **batch,
        )

    def request_period_change(
        self, table: str, days: int, pitr: PitrInfo, requester: str, channel: str
    ) -> Outcome:
        """Lowering `table`'s recovery period: an approval card, like a restore's.

        The caller has checked the policy and that this is a shrink (bot/period_change.py).
        """
        waiting = [r for r in self.ctx.in_flight_from(table) if r.kind == PERIOD_CHANGE]
        if waiting:
            return Outcome(False, f"A change of `{table}`'s recovery period is already waiting.")
        now = self.ctx.clock()
        rule = self.ctx.policy.for_table(table)
        req = RestoreRequest(
            kind=PERIOD_CHANGE,
            source=table,
            target=table,
            requester=requester,
            channel=channel,
            restore_at=None,
            created_at=now,
            updated_at=now,
            expires_at=expiry(now, rule.request_ttl_minutes),
            window=pitr.window,
            required_approvals=rule.required_approvals,
            recovery_days=days,
            previous_days=pitr.recovery_days or DEFAULT_DAYS,
        )
        detail = f"recovery period {req.previous_days} -> {days} days"
        entry = self.ctx.audit_entry("pitr_period_requested", req, requester, detail=detail)
        self.ctx.store.add(req, announce=self.ctx.owed(None, req, ["card"]), audit=[entry])
        self.ctx.on_event(entry.event)
        self.ctx.on_change()
        return Outcome(True, "", req)

    def check(self, new: NewRequest) -> _Checked | Outcome:
        """Every preflight check; a refusal is audited and says which field it is about."""
        result = self._preflight(new)
        if isinstance(result, tuple):
            field, message = result
            self.ctx.audit("request_refused", None, new.requester, new.channel, new.source, message)
            return Outcome(False, message, field=field)
        return result

    def eta(
        self, source: str, size_bytes: int | None = None, items: int | None = None
    ) -> etas.Eta | None:
        """The expected duration of a restore of `source`, from the store's history."""
        return estimate_for(self.ctx, source, size_bytes, items)

    def _preflight(self, new: NewRequest) -> _Checked | tuple[str | None, str]:
        places = self._places(new)
        if isinstance(places[0], str):
            return places  # type: ignore[return-value]  # (field, why not)
        source_ref, target_ref = places
        src, tgt = str(source_ref), str(target_ref)
        if src == tgt:
            return "target", "The target must be a new table: it can't be the source table itself."
        problem = drill_name_problem(target_ref.name)
        if problem:
            return "target", problem
        for ref, field in ((source_ref, "source"), (target_ref, "target")):
            decision = self.ctx.policy.place_allowed(ref.account, ref.region)
            if not decision.allowed:
                return field, decision.reason
        decision = self.ctx.policy.may_request(new.requester, new.channel, src, self.ctx.members)
        if not decision.allowed:
            return "source", decision.reason
        problem = self._open_problem(new.requester)
        if problem:
            return None, problem
        for field, decision in _target_and_key(self.ctx.policy, tgt, new.overrides):
            if not decision.allowed:
                return field, decision.reason
        key = (new.overrides or {}).get("sse_key")
        where = target_ref.region or getattr(self.ctx.pitr, "region", None)
        problem = key and where and key_region_problem(str(key), where)
        if problem:
            return "kms_key", problem
        now = self.ctx.clock()
        try:
            instant = parse_when(new.when, new.requester_tz, now)
        except WhenError as exc:
            return "when", str(exc)
        try:
            source = self.ctx.pitr.table(src)
            if source is None:
                return "source", (
                    f"Table `{src}` does not exist in "
                    f"{source_ref.region or self.ctx.pitr.region}. "
                    "Check the name (it is case-sensitive)."
                    + self.ctx.did_you_mean(src, new.requester, new.channel)
                )
            pitr = self.ctx.pitr.pitr(src)
            if not pitr.enabled or pitr.window is None:
                return "source", (
                    f"Point-in-time recovery is {pitr.status} on `{src}`, so it can't be "
                    f"restored to a point in time. `/pitr-enable {src}` protects it from "
                    "now on."
                )
            if instant is not None and not pitr.window.contains(instant):
                return "when", _outside_window(instant, pitr.window)
            if self.ctx.pitr.table(tgt) is not None:
                return "target", f"Table `{tgt}` already exists. Choose a new name for the target."
            if new.overrides:
                problem = self.ctx.pitr.overrides_problem(src, new.overrides)
                if problem:
                    return "overrides", problem
        except AwsError as exc:
            return None, exc.message
        busy = [
            r for r in self.ctx.store.find(states=[State.REQUESTED, *IN_FLIGHT]) if r.target == tgt
        ]
        if busy:
            return "target", (
                f"A restore into `{tgt}` is already {busy[0].state.value.lower()}. "
                "Choose another target name."
            )
        return _Checked(instant, pitr.window, source, src, tgt)

    def _open_problem(self, requester: str) -> str | None:
        """A flood of approval cards is refused: caps on requests waiting for a decision."""
        per_user, total = self.ctx.open_caps
        waiting = self.ctx.store.find(states=[State.REQUESTED], limit=total + 1)
        mine = sum(1 for r in waiting if r.requester == requester)
        if mine >= per_user:
            return (
                f"You already have {mine} requests waiting for a decision (at most {per_user}, "
                "PITR_BOT_MAX_OPEN_REQUESTS_PER_USER); wait for a decision or let one expire."
            )
        if len(waiting) >= total:
            return (
                f"{len(waiting)} requests are waiting for a decision (at most {total}, "
                "PITR_BOT_MAX_OPEN_REQUESTS); try again when some are decided."
            )
        return None

    def _places(self, new: NewRequest) -> tuple[TableRef, TableRef] | tuple[str, str]:
        """The source and target as canonical references, or (field, why not)."""
        for text, field, label in (
            (new.source, "source", "Source table"),
            (new.target, "target", "Target table"),
        ):
            problem = plain(text) and table_name_problem(text, label)
            if problem:
                return field, problem
        try:
            source = parse_ref(new.source, self.ctx.known_accounts(new.source))
        except RefError as exc:
            return "source", str(exc)
        problem = table_name_problem(source.name, "Source table")
        if problem:
            return "source", problem
        try:
            (target,) = targets_for([source], new.target)
        except RefError as exc:
            return "target", str(exc)
        problem = table_name_problem(target.name, "Target table")
        if problem:
            return "target", problem
        home = getattr(self.ctx.pitr, "region", None)
        return canonical(source, home), canonical(target, home)

    def table_ref(self, text: str) -> tuple[str | None, str]:
        """A table a person typed (`orders`, `prod:orders@eu-west-1`, an ARN) as stored, or
        (None, why not): for reads such as /pitr-status."""
        if plain(text):
            problem = table_name_problem(text)
            return (None, problem) if problem else (text, "")
        try:
            ref = parse_ref(text, self.ctx.known_accounts(text))
        except RefError as exc:
            return None, str(exc)
        ref = canonical(ref, getattr(self.ctx.pitr, "region", None))
        decision = self.ctx.policy.place_allowed(ref.account, ref.region)
        return (str(ref), "") if decision.allowed else (None, decision.reason)


def plain(text: str) -> bool:
    """A bare table name (no account, region or ARN)."""
    return ":" not in text and "@" not in text


def _outside_window(instant: datetime, window: object) -> str:
    earliest = format_instant(window.earliest, "UTC")  # type: ignore[attr-defined]
    latest = format_instant(window.latest, "UTC")  # type: ignore[attr-defined]
    when = format_instant(instant, "UTC")
    if instant < window.earliest:  # type: ignore[attr-defined]
        return (
            f"{when} is before the restorable window ({earliest} → {latest}). "
            "PITR keeps only the recovery period; pick a later instant."
        )
    return (
        f"{when} is after the latest restorable time ({latest}); DynamoDB lags about 5 minutes. "
        "Use `latest` or an earlier instant."
    )


def _target_and_key(
    policy: Policy, target: str, overrides: dict | None
) -> Iterator[tuple[str, Decision]]:
    """The policy's limits on what a restore creates: its name and its encryption key."""
    yield "target", policy.target_allowed(target)
    key = (overrides or {}).get("sse_key")
    if key:
        yield "kms_key", policy.kms_key_allowed(str(key))
