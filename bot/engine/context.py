"""What every part of the engine shares: the store, the AWS gateway, the policy, the clock,
the hooks, and the one way to write a transition with its audit entries.

The parts (requests.py, decisions.py, tracking.py) each hold this one context, so a new flow is
one more sibling module with the same shape, not more methods on one class.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from bot.pitr import AwsError, PitrService
from bot.policy import Members, Policy
from bot.polling import PollLimits
from bot.restore_events import bus_kind
from bot.restores import FINAL, IN_FLIGHT, RestoreRequest, State, utcnow
from bot.store import AuditEvent, Change, Store
from bot.suggest import did_you_mean
from bot.tableref import RefError, parse_ref

CAS_ATTEMPTS = 20
# Outbox kind: complete the Workflow Builder step of a request (commands/workflow_step.py).
STEP_DONE = "workflow_step_done"


@dataclass(frozen=True)
class Outcome:
    """What to tell the person who acted; `ok` False means a refusal with `message`.

    `field` names the input a refusal is about (source, target, when, overrides), so a form
    can show it next to that field.
    """

    ok: bool
    message: str = ""
    request: RestoreRequest | None = None
    field: str | None = None


class Context:
    def __init__(
        self,
        store: Store,
        pitr: PitrService,
        policy: Policy,
        members: Members,
        clock: Callable[[], datetime] = utcnow,
        poll_seconds: float = 10,
        owner: str | None = None,
        limits: PollLimits | None = None,
        min_restore_minutes: float = 0,
    ):
        self.store = store
        self.pitr = pitr
        self.policy = policy
        self.members = members
        self.clock = clock
        self.poll_seconds = poll_seconds
        self.limits = limits or PollLimits(poll_seconds=poll_seconds)
        self.min_restore_minutes = min_restore_minutes
        self.next_due: datetime | None = None  # when the next restore falls due (the tracker)
        self.owner = owner or uuid.uuid4().hex[:8]
        # Requests waiting for a decision: at most (per requester, in all); bot/settings.py.
        self.open_caps: tuple[int, int] = (10, 100)
        self.on_change: Callable[[], None] = lambda: None  # the announcer's kick
        self.on_event: Callable[[str], None] = lambda event: None  # metrics
        # PITR_BOT_EVENT_BUS set: each new state also owes an EventBridge event (outbox).
        self.bus_events = False

    def known_accounts(self, text: str = "arn:") -> dict[str, str]:
        """Account ID -> policy alias ("" for the bot's own): the accounts a table ARN in
        `text` may name. The bot's own is asked of AWS once (bot.pitr), and only when `text`
        holds an ARN; unknown, ARNs of it are refused."""
        known = dict(self.policy.account_aliases())
        if "arn:" not in text:
            return known
        own = getattr(self.pitr, "own_account_id", lambda: None)()
        if own:
            known[own] = ""
        return known

    def in_flight_from(self, source: str) -> list[RestoreRequest]:
        return self.store.find(states=[State.REQUESTED, *IN_FLIGHT], source=source)

    def did_you_mean(self, table: str, user: str, channel: str | None) -> str:
        """' Did you mean `X`?' for a table that does not exist: X among the tables in its
        account and region that `user` may see (never one outside the policy), or ''."""
        try:
            ref = parse_ref(table)
            if ref.account is None and ref.region is None:
                names = self.pitr.list_tables()
            else:
                names = self.pitr.list_tables(account=ref.account, region=ref.region)
        except (RefError, AwsError):
            return ""  # a hint is best effort: the refusal stands without it
        place = replace(ref, name="x")
        visible = [
            n
            for n in names
            if self.policy.may_see(user, channel, str(replace(place, name=n)), self.members).allowed
        ]
        return did_you_mean(table, visible)

    def owed(
        self, old: RestoreRequest | None, new: RestoreRequest, announce: Sequence[str] = ()
    ) -> list[str]:
        """The outbox kinds a write owes: its Slack messages and, with an event bus, the
        event of the state it enters (in the same write: sent once, never lost)."""
        kinds = list(announce)
        entered = old is None or old.state != new.state
        if self.bus_events and entered:
            kinds.append(bus_kind(new.state))
        if new.function_execution_id and entered and new.state in FINAL:
            kinds.append(STEP_DONE)  # the Workflow Builder step ends with the restore
        return kinds

    def save(
        self,
        old: RestoreRequest,
        new: RestoreRequest,
        announce: Sequence[str] = (),
        audit: Sequence[AuditEvent] = (),
    ) -> RestoreRequest | None:
        """A transition with its announcements and audit entries, in one write (all or none)."""
        saved = self.store.save(old, new, announce=self.owed(old, new, announce), audit=audit)
        if saved is not None:
            for entry in audit:
                self.on_event(entry.event)
        return saved

    def save_all(
        self, changes: Sequence[Change], audit: Sequence[AuditEvent] = ()
    ) -> list[RestoreRequest] | None:
        """Several transitions (a batch's leader and members) in one write: all or none."""
        changes = [Change(c.old, c.new, self.owed(c.old, c.new, c.announce)) for c in changes]
        saved = self.store.save_all(changes, audit)
        if saved is not None:
            for entry in audit:
                self.on_event(entry.event)
        return saved

    def audit(
        self,
        event: str,
        req: RestoreRequest | None,
        actor: str | None,
        channel: str | None = None,
        table: str | None = None,
        detail: str = "",
    ) -> None:
        """An audit entry on its own: for what changes no request (a refusal, a skip)."""
        self.on_event(event)
        self.store.audit(self.audit_entry(event, req, actor, channel, table, detail))

    def audit_entry(
        self,
        event: str,
        req: RestoreRequest | None,
        actor: str | None,
        channel: str | None = None,
        table: str | None = None,
        detail: str = "",
    ) -> AuditEvent:
        return AuditEvent(
            at=self.clock(),
            event=event,
            restore_id=req.id if req else None,
            actor=actor,
            channel=channel or (req.channel if req else None),
            table=table or (req.source if req else None),
            detail=detail[:1000],
        )
