"""Restore events: their Slack metadata and EventBridge entries (pure), the bus gateway's
failures (kept for a retry), and PITR_BOT_EVENT_BUS's validation."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from botocore.stub import Stubber

from bot.cli import main
from bot.events_aws import EventBus, EventBusUnavailable
from bot.restore_events import BUS_KINDS, bus_entry, bus_kind, event_type, slack_metadata
from bot.restores import RestoreRequest, State

NOW = datetime(2026, 11, 27, 3, 0, tzinfo=UTC)


def request(**kw) -> RestoreRequest:
    base = dict(
        source="prod:orders@eu-west-1",
        target="orders-before",
        requester="U1",
        channel="C1",
        restore_at=NOW - timedelta(minutes=25),
        created_at=NOW,
        expires_at=NOW + timedelta(hours=1),
    )
    base.update(kw)
    return RestoreRequest(**base)


def test_metadata_names_the_event_and_the_restore_without_nulls():
    req = request(state=State.APPROVED, approvals=("U2",))
    meta = slack_metadata(req)
    assert meta["event_type"] == "pitr_restore_approved"
    payload = meta["event_payload"]
    assert payload["account"] == "prod" and payload["region"] == "eu-west-1"
    assert payload["source_table"] == "prod:orders@eu-west-1"
    assert payload["target_table"] == "orders-before"
    assert payload["instant"] == (NOW - timedelta(minutes=25)).isoformat()
    assert payload["approvers"] == ["U2"] and payload["requester"] == "U1"
    assert None not in payload.values()  # Slack refuses null metadata values
    assert slack_metadata(request(restore_at=None))["event_payload"]["instant"] == "latest"


def test_every_state_has_an_event_and_a_bus_kind():
    for state in State:
        assert event_type(request(), state).startswith("pitr_restore_")
        assert bus_kind(state) in BUS_KINDS
    period = request(kind="pitr_period", recovery_days=7)
    assert event_type(period, State.ACTIVE) == "pitr_period_changed"


def test_bus_entry_is_the_event_of_the_state_the_transition_entered():
    # Sent later, when the request has moved on: still the event of its own transition.
    req = request(state=State.ACTIVE, approvals=("U2",))
    entry = bus_entry(req, bus_kind(State.APPROVED), "incidents")
    assert entry["Source"] == "pitr-bot" and entry["EventBusName"] == "incidents"
    assert entry["DetailType"] == "pitr_restore_approved"
    detail = json.loads(entry["Detail"])
    assert detail["state"] == "APPROVED" and detail["event_type"] == "pitr_restore_approved"
    assert detail["restore_id"] == req.id
    assert len(entry["Detail"].encode()) < 256 * 1024  # PutEvents' entry size limit


def test_a_refused_or_failed_put_is_kept_for_a_retry():
    client = boto3.client("events", region_name="us-east-1")
    bus = EventBus(client, "incidents")
    entry = bus_entry(request(), bus_kind(State.REQUESTED), "incidents")
    with Stubber(client) as stub:
        stub.add_response(
            "put_events",
            {
                "FailedEntryCount": 1,
                "Entries": [{"ErrorCode": "InternalFailure", "ErrorMessage": "try again"}],
            },
        )
        stub.add_client_error("put_events", "ThrottlingException", http_status_code=400)
        stub.add_response("put_events", {"FailedEntryCount": 0, "Entries": [{"EventId": "1"}]})
        with pytest.raises(EventBusUnavailable, match="InternalFailure"):
            bus.put(entry)
        with pytest.raises(EventBusUnavailable, match="ThrottlingException"):
            bus.put(entry)
        bus.put(entry)
    assert isinstance(EventBusUnavailable("x"), OSError)  # the announcer's retry path


@pytest.mark.parametrize("bad", ["bus with spaces", "arn:aws:sqs:us-east-1:123456789012:q"])
def test_a_bad_event_bus_is_one_line_from_check_config(bad, monkeypatch, tmp_path, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-test")
    monkeypatch.setenv("SLACK_SIGNING_SECRET", "secret")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("PITR_BOT_EVENT_BUS", bad)
    assert main(["check-config"]) == 1
    err = capsys.readouterr().err
    assert "PITR_BOT_EVENT_BUS" in err and "EventBridge bus name" in err


def test_a_bus_name_or_arn_is_accepted(monkeypatch, tmp_path, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-test")
    monkeypatch.setenv("SLACK_SIGNING_SECRET", "0123456789abcdef0123456789abcdef")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    for good in ("incidents", "arn:aws:events:eu-west-1:123456789012:event-bus/incidents"):
        monkeypatch.setenv("PITR_BOT_EVENT_BUS", good)
        assert main(["check-config"]) == 0, capsys.readouterr().err
