"""The bot under test: the real Bolt app served by the real server over HTTP, in-process.

Slack is a FakeSlack (SLACK_API_URL), DynamoDB is moto behind the AwsSimulator proxy
(AWS_ENDPOINT_URL), and "CREATING" comes from a botocore event hook on the bot's own client.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import boto3
from support.aws_sim import AwsSimulator
from support.botocore_hooks import CreatingSimulation, simulate_creating
from support.fake_slack import Call, FakeSlack
from support.signed import Response, SlackSender

from bot.blocks import APPROVE_ACTION, DENY_ACTION
from bot.pitr import PitrService
from bot.policy import Policy
from bot.restores import RestoreRequest, utcnow
from bot.server import BotServer
from bot.services import Services, build_services
from bot.settings import Settings
from bot.store import open_store
from commands.app import create_app


def button_labels(args: dict) -> list[str]:
    """The labels of a message's buttons, in order (`args` of a chat.postMessage/update)."""
    return [
        el["text"]["text"]
        for block in args.get("blocks", [])
        if block["type"] == "actions"
        for el in block["elements"]
    ]


SECRET = "e2e-signing-secret"  # noqa: S105 - a test secret
TOKEN = "xoxb-e2e-test-token"  # noqa: S105


@dataclass
class BotUnderTest:
    fake: FakeSlack
    sim: AwsSimulator
    services: Services
    server: BotServer
    sender: SlackSender
    creating: CreatingSimulation
    thread: threading.Thread
    responses: list[Response] = field(default_factory=list)

    # -- acting as people -------------------------------------------------------------------
    def command(self, command: str, text: str, user: str = "U1", channel: str = "C1") -> Response:
        url = self.fake.response_url(user)
        resp = self.sender.command(
            command, text, user_id=user, channel_id=channel, response_url=url
        )
        self.responses.append(resp)
        return resp

    def click(self, action_id: str, restore_id: str, user: str, channel: str = "C1") -> Response:
        req = self.services.store.get(restore_id)
        ts = (req.card_ts if req else None) or "1700000000.000001"
        return self.sender.click(
            action_id,
            restore_id,
            user_id=user,
            channel_id=channel,
            message_ts=ts,
            response_url=self.fake.response_url(f"click-{user}"),
        )

    def approve(self, restore_id: str, user: str) -> Response:
        return self.click(APPROVE_ACTION, restore_id, user)

    def deny(self, restore_id: str, user: str) -> Response:
        return self.click(DENY_ACTION, restore_id, user)

    # -- looking at what happened -----------------------------------------------------------
    def cards(self) -> list[Call]:
        return [
            c
            for c in self.fake.calls("chat.postMessage")
            if not c.failed and not c.args.get("thread_ts")
        ]

    def wait_card(self, timeout: float = 30) -> RestoreRequest:
        self.fake.wait_for(
            lambda c: c.method == "chat.postMessage" and not c.args.get("thread_ts"),
            timeout=timeout,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            reqs = self.services.store.find()
            if reqs and reqs[0].card_ts:
                return reqs[0]
            time.sleep(0.02)
        raise AssertionError("card posted but not recorded in the store")

    def replies_to(self, user: str) -> list[str]:
        """Texts sent to `user` through a response_url (ephemeral replies)."""
        return [
            str(c.args.get("text", ""))
            for c in self.fake.calls("response_url")
            if c.args.get("_path", "").endswith(f"/{user}")
            or c.args.get("_path", "").endswith(f"/click-{user}")
        ]

    def wait_reply(self, user: str, contains: str, timeout: float = 30) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for text in self.replies_to(user):
                if contains.lower() in text.lower():
                    return text
            time.sleep(0.02)
        raise AssertionError(f"no reply to {user} containing {contains!r}: {self.replies_to(user)}")

    def quiet(self, timeout: float = 30) -> None:
        """Until every Slack message the store owes is sent: what a test snapshots next is not
        changed under it by an edit still on its way (a wait on the cause, not a sleep)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.services.store.outbox_due(utcnow() + timedelta(days=1)):
                return
            time.sleep(0.02)
        raise AssertionError(f"outbox never emptied: {self.services.store.outbox_due(utcnow())}")

    def wait_state(self, restore_id: str, state: str, timeout: float = 30) -> RestoreRequest:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            req = self.services.store.get(restore_id)
            if req is not None and req.state.value == state:
                return req
            time.sleep(0.02)
        last = self.services.store.get(restore_id)
        raise AssertionError(f"{restore_id} never reached {state}: {last}")

    def restore_to_active(self, source: str, target: str, approver: str = "U2") -> RestoreRequest:
        """/pitr-restore SOURCE TARGET latest by U1, approved by `approver`, waited to ACTIVE."""
        self.command("/pitr-restore", f"{source} {target} latest")
        req = self.wait_card()
        self.approve(req.id, approver)
        self.wait_state(req.id, "ACTIVE", timeout=20)
        return req

    def stop(self) -> None:
        self.server.close()
        self.thread.join(timeout=30)


def start_bot(
    tmp_path: Path,
    fake: FakeSlack,
    sim: AwsSimulator,
    policy: Policy | None = None,
    creating_seconds: float = 0,
    poll_seconds: float = 0.1,
    **settings: Any,
) -> BotUnderTest:
    config = Settings(
        _env_file=None,
        SLACK_BOT_TOKEN=TOKEN,
        SLACK_SIGNING_SECRET=SECRET,
        SLACK_API_URL=fake.api_url,
        PITR_BOT_STATE=f"sqlite:///{tmp_path / 'state.db'}",
        PITR_BOT_POLL_SECONDS=poll_seconds,
        PITR_BOT_PORT=0,
        PITR_BOT_HOST="127.0.0.1",
        **settings,
    )
    client = boto3.client(
        "dynamodb",
        region_name="us-east-1",
        endpoint_url=sim.endpoint_url,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",  # noqa: S106
    )
    creating = simulate_creating(client, creating_seconds)
    store = open_store(config.state)
    services = build_services(config, policy or Policy(), store, pitr=PitrService(client))
    app = create_app(config, services)
    server = BotServer(app, services)
    thread = threading.Thread(target=server.run, name="bot-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 5
    while not server.http.ready.is_set() and time.monotonic() < deadline:
        time.sleep(0.01)
    for started in services.started:  # start-up AWS calls are not the test's
        started.wait(30)
    sender = SlackSender(f"http://127.0.0.1:{server.port}", SECRET)
    return BotUnderTest(fake, sim, services, server, sender, creating, thread)
