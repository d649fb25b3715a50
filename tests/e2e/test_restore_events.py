"""Restore events for other tools: Slack message metadata on every card and notice, and the
same events on EventBridge (PITR_BOT_EVENT_BUS), once per transition, in order."""

from __future__ import annotations

import json
from typing import Any

import boto3
from support.aws_sim import REGION

from bot.restore_events import SOURCE

TABLE = "MusicCollection"


def aws(sim, service: str) -> Any:
    return boto3.client(
        service,
        region_name=REGION,
        endpoint_url=sim.moto_url,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",  # noqa: S106
    )


def bus_with_queue(sim, bus: str) -> tuple[Any, str]:
    """An event bus whose rule sends every pitr-bot event to an SQS queue: (sqs, queue url)."""
    events, sqs = aws(sim, "events"), aws(sim, "sqs")
    events.create_event_bus(Name=bus)
    url = sqs.create_queue(QueueName=f"{bus}-queue")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    events.put_rule(
        Name="pitr-bot-events", EventBusName=bus, EventPattern=json.dumps({"source": [SOURCE]})
    )
    events.put_targets(
        Rule="pitr-bot-events", EventBusName=bus, Targets=[{"Id": "queue", "Arn": arn}]
    )
    return sqs, url


def drain(sqs: Any, url: str) -> list[dict]:
    """Every event in the queue, in the order it arrived."""
    got: list[dict] = []
    while True:
        resp = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
        messages = resp.get("Messages", [])
        if not messages:
            return got
        for message in messages:
            got.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])


def metadata_of(args: dict) -> dict:
    meta = args.get("metadata")
    return json.loads(meta) if isinstance(meta, str) else (meta or {})


def test_every_message_of_a_restore_carries_its_event_metadata(make_bot, fake):
    bot = make_bot()
    req = bot.restore_to_active(TABLE, "EventsMetadata")
    bot.fake.wait_for(lambda c: c.method == "chat.postMessage" and c.args.get("reply_broadcast"))
    bot.quiet()
    sent = [
        c
        for c in fake.calls("chat.postMessage") + fake.calls("chat.update")
        if not c.failed and "EventsMetadata" in json.dumps(c.args)
    ]
    assert sent, "no messages about the restore"
    types = []
    for call in sent:
        meta = metadata_of(call.args)
        assert meta, f"{call.method} without metadata: {call.args.get('text')}"
        payload = meta["event_payload"]
        assert payload["restore_id"] == req.id
        assert payload["source_table"] == TABLE and payload["target_table"] == "EventsMetadata"
        assert payload["requester"] == "U1" and payload["instant"] == "latest"
        assert None not in payload.values()
        types.append((call.method, bool(call.args.get("thread_ts")), meta["event_type"]))
    card = [t for m, thread, t in types if m == "chat.postMessage" and not thread]
    assert card == ["pitr_restore_requested"]
    broadcast = [
        metadata_of(c.args)
        for c in sent
        if c.method == "chat.postMessage" and c.args.get("reply_broadcast")
    ]
    assert [m["event_type"] for m in broadcast] == ["pitr_restore_active"]
    assert broadcast[0]["event_payload"]["approvers"] == ["U2"]
    updates = {t for m, _, t in types if m == "chat.update"}
    assert "pitr_restore_active" in updates, types


def test_a_denied_card_is_updated_with_the_denied_event(make_bot, fake):
    bot = make_bot()
    bot.command("/pitr-restore", f"{TABLE} EventsDenied latest")
    req = bot.wait_card()
    bot.deny(req.id, "U2")
    bot.wait_state(req.id, "DENIED")
    bot.quiet()
    updates = [metadata_of(c.args) for c in fake.calls("chat.update") if not c.failed]
    assert "pitr_restore_denied" in [m.get("event_type") for m in updates], updates


def test_eventbridge_gets_each_transition_once_in_order(make_bot, sim):
    sqs, url = bus_with_queue(sim, "incidents")
    bot = make_bot(PITR_BOT_EVENT_BUS="incidents")
    req = bot.restore_to_active(TABLE, "EventsOnBus")
    bot.quiet()  # every event owed is in the outbox until EventBridge took it
    events = drain(sqs, url)
    assert [e["detail-type"] for e in events] == [
        "pitr_restore_requested",
        "pitr_restore_approved",
        "pitr_restore_started",
        "pitr_restore_active",
    ]
    for event in events:
        assert event["source"] == SOURCE
        detail = event["detail"]
        assert detail["restore_id"] == req.id and detail["event_type"] == event["detail-type"]
        assert detail["source_table"] == TABLE and detail["target_table"] == "EventsOnBus"
        assert detail["requester"] == "U1"
    assert events[-1]["detail"]["approvers"] == ["U2"]
    assert events[-1]["detail"]["state"] == "ACTIVE"
    assert events[1]["detail"]["state"] == "APPROVED"


def test_without_an_event_bus_nothing_goes_to_eventbridge(make_bot, sim):
    sqs, url = bus_with_queue(sim, "default-off")
    bot = make_bot()
    bot.restore_to_active(TABLE, "EventsNoBus")
    bot.quiet()
    assert drain(sqs, url) == []
    assert not [i for i in bot.services.announcer.senders if i.startswith("bus:")]
