"""The engine (bot.workflow) on a real SqliteStore, a fake DynamoDB gateway and a fake clock."""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from support.stores import NoLoneAudits

from bot.pitr import AwsError, PitrInfo, TableInfo
from bot.policy import Policy
from bot.restores import RestoreRequest, State, Window
from bot.store.sqlite import SqliteStore
from bot.workflow import NewRequest, Outcome, Workflow

START = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
ARN = "arn:aws:dynamodb:us-east-1:123456789012:table/"


class Clock:
    def __init__(self, now: datetime = START):
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kw: float) -> None:
        self.now += timedelta(**kw)


class FakeGateway:
    """Same methods as PitrService; tables live in a dict, restores are recorded."""

    region = "us-east-1"

    def __init__(self, clock: Clock):
        self.clock = clock
        self.tables: dict[str, TableInfo] = {}
        self.pitr_on: dict[str, bool] = {}
        self.restores: list[tuple[str, str, datetime | None]] = []
        self.attributions: list[dict[str, str | None]] = []
        self.restore_error: AwsError | None = None
        self.table_errors: list[AwsError] = []  # raised by table(), one per call
        self.restore_creates = True  # does restore() create the target?

    def add_table(
        self,
        name: str,
        pitr: bool = True,
        status: str = "ACTIVE",
        restored_from: str | None = None,
        restored_to: datetime | None = None,
    ) -> None:
        self.tables[name] = TableInfo(
            name=name,
            status=status,
            arn=ARN + name,
            item_count=10,
            size_bytes=2048,
            restored_from=restored_from and ARN + restored_from,
            restored_at=restored_to,
            created_at=self.clock(),
        )
        self.pitr_on[name] = pitr

    def set_status(self, name: str, status: str, item_count: int | None = None) -> None:
        self.tables[name] = replace(self.tables[name], status=status, item_count=item_count)

    def window(self) -> Window:
        now = self.clock()
        return Window(now - timedelta(days=35), now - timedelta(minutes=5))

    # -- PitrService -------------------------------------------------------------------------
    def table(self, name: str) -> TableInfo | None:
        if self.table_errors:
            raise self.table_errors.pop(0)
        return self.tables.get(name)

    def pitr(self, name: str) -> PitrInfo:
        if name not in self.tables:
            raise AwsError("ResourceNotFoundException", f"Table `{name}` does not exist.")
        if self.pitr_on.get(name):
            return PitrInfo(name, "ENABLED", self.window(), 35)
        return PitrInfo(name, "DISABLED")

    def restore(
        self,
        source: str,
        target: str,
        at: datetime | None,
        overrides: dict | None = None,
        **attribution: str | None,  # restore_id, approver (for CloudTrail in other accounts)
    ) -> TableInfo:
        self.restores.append((source, target, at))
        self.attributions.append(attribution)
        if self.restore_error is not None:
            raise self.restore_error
        if target in self.tables:
            raise AwsError("TableAlreadyExistsException", "The target table already exists.")
        info = TableInfo(
            name=target,
            status="CREATING",
            arn=ARN + target,
            restored_from=ARN + source,
            # As AWS: the instant restored to (for latest, the latest restorable time).
            restored_at=at or self.window().latest,
            created_at=self.clock(),
        )
        if self.restore_creates:
            self.tables[target] = info
            self.pitr_on[target] = False
        return info

    def overrides_problem(self, source: str, overrides: dict | None) -> str | None:
        return None

    def enable_pitr(self, name: str, days: int | None = None) -> PitrInfo:
        self.pitr_on[name] = True
        return self.pitr(name)

    def list_tables(self, limit: int = 1000, account=None, region=None) -> list[str]:
        return sorted(self.tables)[:limit]


def throttled() -> AwsError:
    return AwsError("ThrottlingException", "AWS is throttling", retryable=True)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def aws(clock: Clock) -> FakeGateway:
    gw = FakeGateway(clock)
    gw.add_table("Orders", pitr=True)
    gw.add_table("NoPitr", pitr=False)
    gw.add_table("Taken", pitr=False)
    return gw


@pytest.fixture
def store(tmp_path: Path):
    s = SqliteStore(str(tmp_path / "pitr.db"))
    yield s
    s.close()


GROUPS: dict[str, set[str] | None] = {"SDBA": {"U7", "U8"}}


def make_flow(store, aws, clock, policy: Policy | None = None, owner: str = "me") -> Workflow:
    return Workflow(
        store,
        aws,  # type: ignore[arg-type]
        policy or Policy(),
        members=GROUPS.get,
        clock=clock,
        poll_seconds=10,
        owner=owner,
    )


@pytest.fixture
def flow(store, aws, clock) -> Workflow:
    return make_flow(store, aws, clock)


def ask(flow: Workflow, **kw: str) -> Outcome:
    fields = {
        "source": "Orders",
        "target": "Orders-restored",
        "when": "latest",
        "requester": "U1",
        "channel": "C1",
        "requester_tz": "Europe/Berlin",
        "reason": "bad deploy",
    }
    fields.update(kw)
    return flow.request(NewRequest(**fields))


def kinds(store: SqliteStore) -> list[str]:
    return [i.kind for i in store.outbox_due(START + timedelta(days=3650))]


def requested(flow: Workflow, **kw: str) -> RestoreRequest:
    outcome = ask(flow, **kw)
    assert outcome.ok, outcome.message
    assert outcome.request is not None
    return outcome.request


# -- request: preflight refusals ---------------------------------------------------------------
REFUSALS = [
    ({"source": "ab"}, "Source table must be 3 to 255"),
    ({"target": "bad name"}, "Target table may contain only"),
    ({"target": "<!channel>"}, "Target table may contain only"),
    ({"target": "x" * 256}, "Target table must be 3 to 255"),
    ({"target": "Orders"}, "can't be the source table"),
    ({"source": "Missing"}, "does not exist in us-east-1"),
    ({"source": "NoPitr", "target": "NoPitr-r"}, "/pitr-enable NoPitr"),
    ({"target": "Taken"}, "`Taken` already exists"),
    ({"when": "banana"}, "I can't read `banana`"),
    ({"when": "in 2 hours"}, "in the future"),
    ({"when": "2026-10-01T00:00Z"}, "before the restorable window"),
    ({"when": "1 minute ago"}, "after the latest restorable time"),
]


@pytest.mark.parametrize(("change", "expected"), REFUSALS)
def test_preflight_refusals_store_nothing(flow, store, change, expected) -> None:
    outcome = ask(flow, **change)
    assert not outcome.ok
    assert outcome.request is None
    assert expected in outcome.message
    assert store.find() == []
    assert kinds(store) == []


def test_refusal_before_window_shows_the_window(flow) -> None:
    outcome = ask(flow, when="2026-10-01T00:00Z")
    assert "2026-10-22 12:00:00 UTC → 2026-11-26 11:55:00 UTC" in outcome.message


def test_refusal_after_latest_suggests_latest(flow) -> None:
    outcome = ask(flow, when="1 minute ago")
    assert "`latest`" in outcome.message
    assert "2026-11-26 11:55:00 UTC" in outcome.message


def test_refusal_pitr_off_says_it_cannot_be_restored(flow) -> None:
    outcome = ask(flow, source="NoPitr", target="NoPitr-r")
    assert "DISABLED" in outcome.message
    assert "`/pitr-enable NoPitr`" in outcome.message


def test_duplicate_target_in_flight_is_refused(flow, store) -> None:
    first = requested(flow)
    outcome = ask(flow, requester="U3")
    assert not outcome.ok
    assert "already requested" in outcome.message
    assert [r.id for r in store.find()] == [first.id]


def test_policy_refusal_stores_nothing(store, aws, clock) -> None:
    flow = make_flow(store, aws, clock, Policy(channels=["COPS"]))
    outcome = ask(flow, channel="CRANDOM")
    assert not outcome.ok
    assert "channel" in outcome.message
    assert store.find() == []
    refused = store.audit_events()
    assert [e.event for e in refused] == ["request_refused"]


def test_aws_error_during_preflight_is_a_refusal(flow, store, aws) -> None:
    aws.table_errors = [AwsError("AccessDeniedException", "Grant the actions, please.")]
    outcome = ask(flow)
    assert not outcome.ok
    assert "Grant the actions" in outcome.message
    assert store.find() == []


# -- request: accepted -------------------------------------------------------------------------
def test_good_request_is_stored_with_a_card(flow, store, clock) -> None:
    req = requested(flow, when="25 minutes ago")
    got = store.get(req.id)
    assert got is not None
    assert got.state == State.REQUESTED
    assert got.source == "Orders" and got.target == "Orders-restored"
    assert got.restore_at == START - timedelta(minutes=25)
    assert got.window == Window(START - timedelta(days=35), START - timedelta(minutes=5))
    assert got.expires_at == START + timedelta(minutes=60)
    assert got.reason == "bad deploy"
    assert got.requester_tz == "Europe/Berlin"
    assert kinds(store) == ["card"]
    assert [e.event for e in store.audit_events()] == ["requested"]


def test_latest_request_has_no_instant(flow) -> None:
    assert requested(flow).restore_at is None


def test_request_takes_the_rule_of_its_table(store, aws, clock) -> None:
    policy = Policy(rules=[{"tables": ["Ord*"], "required_approvals": 2, "request_ttl_minutes": 5}])
    req = requested(make_flow(store, aws, clock, policy))
    assert req.required_approvals == 2
    assert req.expires_at == START + timedelta(minutes=5)


# -- decisions ---------------------------------------------------------------------------------
def test_requester_cannot_approve(flow, store, aws) -> None:
    req = requested(flow)
    outcome = flow.approve(req.id, "U1")
    assert not outcome.ok
    assert "someone else" in outcome.message
    assert store.get(req.id).state == State.REQUESTED
    assert aws.restores == []


def test_approval_starts_exactly_one_restore(flow, store, aws, clock) -> None:
    req = requested(flow, when="25 minutes ago")
    clock.advance(minutes=2)
    outcome = flow.approve(req.id, "U2")
    assert outcome.ok
    assert outcome.request.state == State.APPROVED
    assert aws.restores == [("Orders", "Orders-restored", START - timedelta(minutes=25))]
    got = store.get(req.id)
    assert got.state == State.RESTORING
    assert got.table_arn == ARN + "Orders-restored"
    assert got.decided_by == "U2"
    assert got.approvals == ("U2",)
    assert got.restore_called_at == clock.now
    assert "started" in kinds(store)
    # Clicking again, or another tick, never calls AWS a second time.
    again = flow.approve(req.id, "U3")
    assert not again.ok
    assert "already approved by <@U2>" in again.message
    flow.start(req.id)
    flow.track()
    assert len(aws.restores) == 1


def test_concurrent_approvals_start_one_restore(flow, store, aws) -> None:
    req = requested(flow)
    barrier = threading.Barrier(10)
    outcomes: list[Outcome] = []

    def click(user: str) -> None:
        barrier.wait()
        outcomes.append(flow.approve(req.id, user))

    threads = [threading.Thread(target=click, args=(f"U{i + 2}",)) for i in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(o.ok for o in outcomes) == 1
    assert len(aws.restores) == 1
    assert store.get(req.id).state == State.RESTORING


def test_deny_by_approver(flow, store, aws) -> None:
    req = requested(flow)
    outcome = flow.deny(req.id, "U2")
    assert outcome.ok
    got = store.get(req.id)
    assert got.state == State.DENIED
    assert got.decided_by == "U2"
    assert kinds(store) == ["card", "card_update", "notify_requester"]
    later = flow.approve(req.id, "U3")
    assert not later.ok
    assert "already denied by <@U2>" in later.message
    assert aws.restores == []


def test_requester_may_withdraw(flow, store) -> None:
    req = requested(flow)
    assert flow.deny(req.id, "U1").ok
    assert store.get(req.id).state == State.DENIED
    # Recorded as a withdrawal, not as someone refusing them.
    denied = [e for e in store.audit_events() if e.event == "denied"]
    assert [(e.actor, e.detail) for e in denied] == [("U1", "withdrawn by the requester")]
    later = flow.approve(req.id, "U2")
    assert not later.ok and "withdrawn" in later.message and "denied" not in later.message


def test_unknown_request(flow) -> None:
    outcome = flow.approve("doesnotexist", "U2")
    assert not outcome.ok
    assert "no longer exists" in outcome.message


def test_approver_list_and_group(store, aws, clock) -> None:
    flow = make_flow(store, aws, clock, Policy(approvers=["U2", "SDBA"]))
    req = requested(flow)
    refused = flow.approve(req.id, "U3")
    assert not refused.ok
    assert "not one of the approvers" in refused.message
    assert flow.approve(req.id, "U7").ok
    assert store.get(req.id).state == State.RESTORING


def test_two_approvals_same_person_counts_once(store, aws, clock) -> None:
    flow = make_flow(store, aws, clock, Policy(required_approvals=2))
    req = requested(flow)
    first = flow.approve(req.id, "U2")
    assert first.ok
    assert first.request.state == State.REQUESTED
    assert first.request.approvals_missing == 1
    again = flow.approve(req.id, "U2")
    assert not again.ok
    assert "already approved" in again.message
    got = store.get(req.id)
    assert got.approvals == ("U2",)
    assert got.state == State.REQUESTED
    assert aws.restores == []
    second = flow.approve(req.id, "U3")
    assert second.ok
    assert second.request.state == State.APPROVED
    assert len(aws.restores) == 1
    got = store.get(req.id)
    assert got.state == State.RESTORING
    assert got.approvals == ("U2", "U3")


# -- expiry ------------------------------------------------------------------------------------
def test_expiry_after_fractional_ttl(store, aws, clock) -> None:
    flow = make_flow(store, aws, clock, Policy(request_ttl_minutes=0.5))
    req = requested(flow)
    clock.advance(seconds=29)
    assert flow.expire_due() == 0
    assert store.get(req.id).state == State.REQUESTED
    clock.advance(seconds=1)
    assert flow.expire_due() == 1
    assert store.get(req.id).state == State.EXPIRED
    assert kinds(store) == ["card", "card_update", "notify_requester"]
    late = flow.approve(req.id, "U2")
    assert not late.ok
    assert "expired" in late.message
    assert aws.restores == []
    assert flow.expire_due() == 0


def test_expiry_does_not_read_every_open_request_at_every_tick(store, aws, clock) -> None:
    # With hundreds of restores in flight the tracker ticks many times a second; each tick read
    # (and decoded) every open request to find the expired ones (py-spy: 3-4 % of the bot's
    # samples at 500 restores). Now: at the soonest expiry seen, and every poll interval.
    flow = make_flow(store, aws, clock, Policy(request_ttl_minutes=0.5))
    req = requested(flow)
    reads = []
    find = store.find

    def counting_find(*args, **kw):
        if kw.get("states") == [State.REQUESTED]:
            reads.append(clock())
        return find(*args, **kw)

    store.find = counting_find
    for _ in range(100):  # 100 ticks over 5 s
        assert flow.expire_due() == 0
        clock.advance(seconds=0.05)
    assert len(reads) == 1
    # Exactly at its expiry, not a poll interval later.
    clock.advance(seconds=30 - 5)
    assert flow.expire_due() == 1
    assert store.get(req.id).state == State.EXPIRED


def test_a_request_made_after_the_last_read_expires_within_a_poll_interval(
    store, aws, clock
) -> None:
    flow = make_flow(store, aws, clock, Policy(request_ttl_minutes=0.1))  # 6 s
    assert flow.expire_due() == 0  # read: nothing open, next read in 10 s (the poll interval)
    req = requested(flow)
    clock.advance(seconds=6)
    assert flow.expire_due() == 0  # not read again yet
    clock.advance(seconds=4)
    assert flow.expire_due() == 1
    assert store.get(req.id).state == State.EXPIRED


def test_approve_after_ttl_without_a_tick_expires(store, aws, clock) -> None:
    flow = make_flow(store, aws, clock, Policy(request_ttl_minutes=0.5))
    req = requested(flow)
    clock.advance(minutes=1)
    late = flow.approve(req.id, "U2")
    assert not late.ok
    assert "expired" in late.message
    assert store.get(req.id).state == State.EXPIRED
    assert aws.restores == []


def test_track_expires_due_requests(store, aws, clock) -> None:
    flow = make_flow(store, aws, clock, Policy(request_ttl_minutes=1))
    req = requested(flow)
    clock.advance(minutes=2)
    flow.track()
    assert store.get(req.id).state == State.EXPIRED


# -- tracking ----------------------------------------------------------------------------------
def restoring(flow: Workflow, store: SqliteStore) -> RestoreRequest:
    req = requested(flow)
    assert flow.approve(req.id, "U2").ok
    got = store.get(req.id)
    assert got.state == State.RESTORING
    return got


def test_creating_stays_restoring_then_active(flow, store, aws, clock) -> None:
    req = restoring(flow, store)
    clock.advance(seconds=10)
    assert flow.track() == 1
    got = store.get(req.id)
    assert got.state == State.RESTORING
    assert got.target_status == "CREATING"
    assert got.polls == 1
    clock.advance(seconds=10)
    aws.set_status("Orders-restored", "ACTIVE", item_count=10)
    flow.track()
    got = store.get(req.id)
    assert got.state == State.ACTIVE
    assert got.finished_at == clock.now
    assert got.item_count == 10
    assert got.target_status == "ACTIVE"
    assert "done" in kinds(store)
    assert [e.event for e in store.audit_events()][-1] == "restore_finished"
    assert flow.track() == 0
    assert len(aws.restores) == 1


def test_retryable_error_while_polling_keeps_restoring(flow, store, aws, clock) -> None:
    req = restoring(flow, store)
    aws.table_errors = [throttled(), throttled()]
    clock.advance(seconds=10)  # the first check is one poll after the start
    flow.track()
    clock.advance(seconds=10)
    flow.track()
    got = store.get(req.id)
    assert got.state == State.RESTORING
    assert got.error_streak == 2
    clock.advance(seconds=10)
    aws.set_status("Orders-restored", "ACTIVE", item_count=10)
    flow.track()
    assert store.get(req.id).state == State.ACTIVE


def test_non_retryable_error_while_polling_fails(flow, store, aws, clock) -> None:
    req = restoring(flow, store)
    aws.table_errors = [AwsError("AccessDeniedException", "Grant DescribeTable, please.")]
    clock.advance(seconds=10)
    flow.track()
    got = store.get(req.id)
    assert got.state == State.FAILED
    assert "Grant DescribeTable" in got.error
    assert "failed" in kinds(store)


def test_restore_that_takes_three_hours_ends_active(flow, store, aws, clock) -> None:
    req = restoring(flow, store)
    for _ in range(36):  # 3 hours in 5-minute steps
        clock.advance(minutes=5)
        flow.track()
        assert store.get(req.id).state == State.RESTORING
    aws.set_status("Orders-restored", "ACTIVE", item_count=10)
    clock.advance(minutes=5)
    flow.track()
    got = store.get(req.id)
    assert got.state == State.ACTIVE
    assert got.elapsed(clock.now) == timedelta(hours=3, minutes=5)
    assert len(aws.restores) == 1


def test_target_that_disappears_fails(flow, store, aws, clock) -> None:
    req = restoring(flow, store)
    del aws.tables["Orders-restored"]
    for _ in range(3):
        clock.advance(seconds=10)
        flow.track()
    got = store.get(req.id)
    assert got.state == State.FAILED
    assert "disappeared" in got.error


def test_failed_start_is_reported(flow, store, aws) -> None:
    aws.restore_error = AwsError(
        "PointInTimeRecoveryUnavailableException", "Turn it on with `/pitr-enable Orders`."
    )
    req = requested(flow)
    assert flow.approve(req.id, "U2").ok
    got = store.get(req.id)
    assert got.state == State.FAILED
    assert "/pitr-enable" in got.error
    assert kinds(store)[-2:] == ["failed", "card_update"]


def test_retryable_start_error_is_retried_on_the_next_tick(flow, store, aws, clock) -> None:
    aws.restore_error = throttled()  # (LimitExceeded queues instead: test_limits.py)
    req = requested(flow)
    assert flow.approve(req.id, "U2").ok
    got = store.get(req.id)
    assert got.state == State.RESTORING
    assert got.table_arn is None
    aws.restore_error = None
    clock.advance(seconds=10)
    flow.track()
    got = store.get(req.id)
    assert got.table_arn == ARN + "Orders-restored"
    assert len(aws.restores) == 2


# -- crash recovery ----------------------------------------------------------------------------
def crashed(store: SqliteStore, clock: Clock) -> RestoreRequest:
    """A request claimed by a process that died before recording its RestoreTable call."""
    req = RestoreRequest(
        source="Orders",
        target="Orders-restored",
        requester="U1",
        channel="C1",
        restore_at=None,
        created_at=clock.now - timedelta(minutes=5),
        expires_at=clock.now + timedelta(minutes=55),
        window=Window(clock.now - timedelta(days=35), clock.now - timedelta(minutes=5)),
        state=State.RESTORING,
        approvals=("U2",),
        decided_by="U2",
        decided_at=clock.now - timedelta(minutes=1),
        restore_called_at=clock.now - timedelta(minutes=1),
        lease_owner="dead-process",
        lease_until=clock.now - timedelta(seconds=1),
    )
    store.add(req)
    return req


def test_crash_before_the_call_restores_once(flow, store, aws, clock) -> None:
    req = crashed(store, clock)
    flow.track()
    assert aws.restores == [("Orders", "Orders-restored", None)]
    got = store.get(req.id)
    assert got.state == State.RESTORING
    assert got.table_arn == ARN + "Orders-restored"
    clock.advance(seconds=10)
    flow.track()
    assert len(aws.restores) == 1


def test_crash_after_the_call_adopts_the_target(flow, store, aws, clock) -> None:
    req = crashed(store, clock)
    aws.add_table("Orders-restored", pitr=False, status="CREATING", restored_from="Orders")
    flow.track()
    assert aws.restores == []
    got = store.get(req.id)
    assert got.state == State.RESTORING
    assert got.table_arn == ARN + "Orders-restored"
    aws.set_status("Orders-restored", "ACTIVE", item_count=10)
    clock.advance(seconds=10)
    flow.track()
    assert store.get(req.id).state == State.ACTIVE
    assert aws.restores == []


def test_crash_then_a_foreign_table_is_not_adopted(flow, store, aws, clock) -> None:
    req = crashed(store, clock)
    aws.add_table("Orders-restored", pitr=False)  # somebody else's table, not a restore
    flow.track()
    got = store.get(req.id)
    assert got.state == State.FAILED
    assert "not a restore of `Orders`" in got.error
    assert aws.restores == []


def test_crash_then_table_already_exists_adopts(flow, store, aws, clock) -> None:
    # DescribeTable does not see the target yet (eventual consistency), the call says it exists.
    req = crashed(store, clock)
    info = TableInfo(
        name="Orders-restored",
        status="CREATING",
        arn=ARN + "Orders-restored",
        restored_from=ARN + "Orders",
        created_at=clock.now,
    )
    real_table = aws.table
    misses = {"Orders-restored": 1}

    def table(name: str) -> TableInfo | None:
        if misses.get(name):
            misses[name] -= 1
            return None
        return real_table(name)

    aws.table = table  # type: ignore[method-assign]
    aws.tables["Orders-restored"] = info
    flow.track()
    assert len(aws.restores) == 1
    got = store.get(req.id)
    assert got.state == State.RESTORING
    assert got.table_arn == ARN + "Orders-restored"
    assert got.error is None


def test_live_lease_of_another_replica_is_respected(flow, store, aws, clock) -> None:
    req = crashed(store, clock)
    store.save(req, replace(req, lease_until=clock.now + timedelta(seconds=20)))
    assert flow.track() == 0
    assert aws.restores == []
    clock.advance(seconds=21)
    assert flow.track() == 1
    assert len(aws.restores) == 1


def test_restart_with_a_new_workflow_resumes_tracking(store, aws, clock) -> None:
    first = make_flow(store, aws, clock, owner="first")
    req = restoring(first, store)
    clock.advance(minutes=5)  # the first process is gone; its lease ran out
    second = make_flow(store, aws, clock, owner="second")
    aws.set_status("Orders-restored", "ACTIVE", item_count=10)
    second.track()
    assert store.get(req.id).state == State.ACTIVE
    assert len(aws.restores) == 1


def test_foreign_table_created_before_approval_is_not_adopted(flow, store, aws, clock) -> None:
    # Someone else creates a table with the target name between the request and the approval.
    # That table holds none of the source's data; the bot must not announce it as restored.
    req = requested(flow)
    aws.add_table("Orders-restored", pitr=False)
    clock.advance(minutes=1)
    flow.approve(req.id, "U2")
    got = store.get(req.id)
    assert got.state == State.FAILED, got
    assert "already exists" in (got.error or "")
    flow.track()
    assert store.get(req.id).state == State.FAILED


# -- a retried restore call that meets its own table (botocore retries after a 500) ------------
class LostReply(FakeGateway):
    """The first restore call creates the table but its reply is lost; botocore's retry then
    meets that table and AWS answers `code`."""

    def __init__(self, clock: Clock, code: str):
        super().__init__(clock)
        self.code = code

    def restore(self, source, target, at, overrides=None):
        super().restore(source, target, at, overrides)  # AWS accepted it...
        raise AwsError(self.code, "the retry met the table")  # ...the retry says so


@pytest.mark.parametrize("code", ["TableAlreadyExistsException", "TableInUseException"])
@pytest.mark.parametrize("when", ["latest", "25 minutes ago"])
def test_retry_that_meets_our_own_table_is_tracked_to_active(store, clock, code, when) -> None:
    aws = LostReply(clock, code)
    aws.add_table("Orders", pitr=True)
    flow = make_flow(store, aws, clock)
    req = requested(flow, when=when)
    clock.advance(minutes=1)
    assert flow.approve(req.id, "U2").ok
    got = store.get(req.id)
    assert got.state == State.RESTORING, got.error
    assert got.table_arn == ARN + "Orders-restored"
    assert "started" in kinds(store)
    aws.set_status("Orders-restored", "ACTIVE", item_count=10)
    clock.advance(seconds=10)
    flow.track()
    assert store.get(req.id).state == State.ACTIVE
    assert len(aws.restores) == 1


@pytest.mark.parametrize("code", ["TableAlreadyExistsException", "TableInUseException"])
def test_a_restore_of_the_same_source_to_another_instant_is_not_adopted(
    flow, store, aws, clock, code
) -> None:
    req = requested(flow, when="25 minutes ago")
    other = START - timedelta(hours=3)
    aws.add_table("Orders-restored", status="CREATING", restored_from="Orders", restored_to=other)
    aws.restore_error = AwsError(code, "Table `Orders-restored` is taken.")
    clock.advance(minutes=1)
    flow.approve(req.id, "U2")
    got = store.get(req.id)
    assert got.state == State.FAILED
    assert "`Orders-restored`" in got.error


def test_a_latest_restore_created_before_the_approval_is_not_adopted(
    flow, store, aws, clock
) -> None:
    req = requested(flow)  # latest
    aws.add_table("Orders-restored", status="CREATING", restored_from="Orders")
    clock.advance(minutes=10)  # created 10 minutes before this approval: somebody else's
    aws.restore_error = AwsError("TableAlreadyExistsException", "Table exists.")
    flow.approve(req.id, "U2")
    assert store.get(req.id).state == State.FAILED


def test_target_being_deleted_is_looked_at_again_not_failed(flow, store, aws, clock) -> None:
    # TableInUseException and no table to see: a table of that name is being deleted.
    req = requested(flow)
    aws.restore_error = AwsError("TableInUseException", "`Orders-restored` is being deleted.")
    clock.advance(minutes=1)
    flow.approve(req.id, "U2")
    got = store.get(req.id)
    assert got.state == State.RESTORING
    assert got.table_arn is None
    aws.restore_error = None  # deleted now
    clock.advance(seconds=31)
    flow.track()
    got = store.get(req.id)
    assert got.state == State.RESTORING and got.table_arn == ARN + "Orders-restored"


# -- overrides AWS would reject are refused before any card -------------------------------------
def test_overrides_aws_would_reject_are_refused_before_the_card(flow, store, aws) -> None:
    aws.overrides_problem = lambda source, overrides: (  # type: ignore[method-assign]
        "`by-date` is a local secondary index of `Orders`; only global secondary indexes "
        "can be left out of a restore."
    )
    outcome = ask(flow, overrides={"exclude_indexes": ["by-date"]})  # type: ignore[arg-type]
    assert not outcome.ok
    assert "local secondary index" in outcome.message
    assert store.find() == []
    assert kinds(store) == []
    assert aws.restores == []
    assert [e.event for e in store.audit_events()] == ["request_refused"]


# -- a transition and its audit entry are one write ---------------------------------------------
def test_every_transition_writes_its_audit_entry_with_it(store, aws, clock) -> None:
    spy = NoLoneAudits(store)
    flow = make_flow(spy, aws, clock, Policy(request_ttl_minutes=1))  # type: ignore[arg-type]
    done = requested(flow)
    flow.approve(done.id, "U1")  # a refusal: no transition, its own entry
    flow.approve(done.id, "U2")
    aws.set_status("Orders-restored", "ACTIVE", item_count=10)
    clock.advance(seconds=10)
    flow.track()
    denied = requested(flow, target="Orders-denied")
    flow.deny(denied.id, "U2")
    expired = requested(flow, target="Orders-expired")
    failed = requested(flow, target="Orders-failed")
    aws.restore_error = AwsError("InvalidRestoreTimeException", "outside the window")
    flow.approve(failed.id, "U2")
    clock.advance(minutes=2)
    flow.track()
    assert store.get(expired.id).state == State.EXPIRED
    assert store.get(failed.id).state == State.FAILED
    assert spy.lone == ["approval_refused"]
    events = [e.event for e in store.audit_events()]
    for event in (
        "requested",
        "approved",
        "restore_started",
        "restore_finished",
        "denied",
        "expired",
        "restore_failed",
    ):
        assert event in events
