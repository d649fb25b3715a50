"""Drills in other accounts and regions, on moto (which keeps accounts and regions apart): the
drill restores, verifies and cleans up where its table reference says, attributed on the STS
call; scheduled globs list their own place; the start-up sweep covers every drilled place."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from moto import mock_aws
from support.drills import leftover_drill

from bot.aws import Aws
from bot.drills.aws import DrillService
from bot.drills.engine import DrillEngine
from bot.drills.model import DrillState
from bot.pitr import PitrService
from bot.policy import Policy
from bot.services import roles_of
from bot.store.sqlite import SqliteStore

pytestmark = pytest.mark.usefixtures("aws_env")  # tests/unit/conftest.py

PROD = "111111111111"
STAGING = "222222222222"
ACCOUNTS = {
    "prod": {
        "role_arn": f"arn:aws:iam::{PROD}:role/pitr-bot",
        "regions": ["us-east-1", "eu-west-1"],
    },
    "staging": {"role_arn": f"arn:aws:iam::{STAGING}:role/pitr-bot"},
}


def make_table(client: Any, name: str, items: int = 3) -> str:
    arn = client.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )["TableDescription"]["TableArn"]
    for i in range(items):
        client.put_item(TableName=name, Item={"pk": {"S": f"k{i}"}})
    return arn


class Env:
    def __init__(self, tmp_path: Path, drills: list[str], every: str = "0 0 1 1 *"):
        self.policy = Policy.model_validate(
            {
                "accounts": ACCOUNTS,
                "drills": [{"tables": drills, "every": every, "channel": "C9"}],
            }
        )
        self.member = Aws(roles=roles_of(self.policy))  # the test's own view of other accounts
        pitr = PitrService(aws=Aws())
        pitr.use_accounts(roles_of(self.policy))  # as build_services does
        self.store = SqliteStore(str(tmp_path / "state.db"))
        self.engine = DrillEngine(
            self.store, DrillService.from_pitr(pitr), self.policy, lambda group: set()
        )
        self.assume_calls: list[dict[str, Any]] = []
        for region in ("us-east-1", "eu-west-1"):  # the bot's STS clients, which assume roles
            pitr.places.client("sts", region=region).meta.events.register(
                "provide-client-params.sts.AssumeRole",
                lambda params, **_: self.assume_calls.append(dict(params)),
            )

    def ddb(self, account: str | None = None, region: str = "us-east-1") -> Any:
        if account is None:
            return self.member.client("dynamodb", region=region)
        return self.member.client("dynamodb", account, region)

    def names(self, account: str | None = None, region: str = "us-east-1") -> list[str]:
        return self.ddb(account, region).list_tables()["TableNames"]

    def finish(self, drill_id: str) -> Any:
        for _ in range(10):
            drill = self.store.drill_get(drill_id)
            if drill.final:
                return drill
            self.engine.step(drill_id)
        raise AssertionError(self.store.drill_get(drill_id))


@pytest.fixture
def moto() -> Iterator[None]:
    with mock_aws():
        yield


def test_a_drill_in_another_account_and_region_runs_and_cleans_up_there(moto, tmp_path):
    env = Env(tmp_path, ["prod:orders@eu-west-1"])
    make_table(env.ddb("prod", "eu-west-1"), "orders")
    make_table(env.ddb(), "orders")  # same name in the bot's own account: never touched

    outcome = env.engine.start_now("prod:orders@eu-west-1", "U1", "C1")
    assert outcome.ok, outcome.message
    drill = env.finish(outcome.drill.id)

    assert drill.state == DrillState.PASSED, drill.problem
    assert drill.target.startswith("prod:orders-drill-") and drill.target.endswith("@eu-west-1")
    # Restored in account 111111111111, eu-west-1 (the ARN says so), and deleted there.
    assert drill.table_arn.split(":")[3:5] == ["eu-west-1", PROD]
    assert (drill.items, drill.source_items, drill.sampled, drill.matched) == (3, 3, 3, 3)
    assert env.names("prod", "eu-west-1") == ["orders"]
    assert env.names() == ["orders"] and env.names("prod") == []
    # The restore call ran under a session named for the drill, with who asked for it.
    attributed = [c for c in env.assume_calls if "SourceIdentity" in c]
    assert [(c["RoleSessionName"], c["SourceIdentity"]) for c in attributed] == [
        (f"pitr-bot-{drill.id}", "U1")
    ]


def test_a_drill_is_only_run_for_the_place_its_entry_names(moto, tmp_path):
    env = Env(tmp_path, ["prod:orders"])  # no region: the bot's (us-east-1)
    make_table(env.ddb("prod", "eu-west-1"), "orders")
    refused = env.engine.start_now("prod:orders@eu-west-1", "U1", "C1")
    assert not refused.ok and "has no restore drill" in refused.message
    assert env.store.drill_find(limit=10) == []
    assert env.engine.policy.drill_for("prod:orders@us-east-1", "us-east-1") is not None


def test_scheduled_globs_list_the_tables_of_their_own_place(moto, tmp_path):
    env = Env(tmp_path, ["prod:ord*@eu-west-1", "ledger"], every="1s")
    for name in ("orders", "orders-archive", "payments"):
        make_table(env.ddb("prod", "eu-west-1"), name, items=1)
    make_table(env.ddb(), "orders", items=1)  # the bot's own account: not in the glob's place
    make_table(env.ddb(), "ledger", items=1)

    assert env.engine.schedule_due() == 3
    sources = sorted(d.source for d in env.store.drill_find(limit=10))
    assert sources == ["ledger", "prod:orders-archive@eu-west-1", "prod:orders@eu-west-1"]


def test_the_start_up_sweep_covers_every_place_with_drills_and_no_other(moto, tmp_path):
    env = Env(tmp_path, ["prod:orders@eu-west-1", "orders"])
    leftover = "orders-drill-202611010000"
    for account, region, ref in (
        ("prod", "eu-west-1", f"prod:{leftover}@eu-west-1"),
        (None, "us-east-1", leftover),
        ("staging", "us-east-1", f"staging:{leftover}"),
    ):
        client = env.ddb(account, region)
        make_table(client, leftover, items=0)
        leftover_drill(env.store, client, ref, leftover)  # a drill the store knows, left behind

    assert env.engine.sweep() == 2
    assert leftover not in env.names("prod", "eu-west-1")
    assert leftover not in env.names()
    assert leftover in env.names("staging")  # no drills there: not looked at
    swept = [e.table for e in env.store.audit_events() if e.event == "drill_table_swept"]
    assert sorted(swept) == [leftover, f"prod:{leftover}@eu-west-1"]


def test_a_drill_entry_in_an_unknown_account_is_a_policy_problem():
    policy = Policy.model_validate(
        {
            "accounts": ACCOUNTS,
            "drills": [
                {"tables": ["dev:orders", "prod:x-*@ap-south-1"], "every": "7d", "channel": "C9"}
            ],
        }
    )
    problems = " ".join(policy.problems())
    assert "dev:orders" in problems and "not an account the bot knows" in problems
    assert "prod:x-*@ap-south-1" in problems and "only reachable in" in problems
    with pytest.raises(ValueError, match="not an AWS region"):
        Policy.model_validate({"drills": [{"tables": ["a@mars"], "every": "7d", "channel": "C9"}]})
