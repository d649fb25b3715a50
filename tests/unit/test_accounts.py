"""Many accounts and regions on moto: a restore lands where its table reference says, and
the restore call in another account is attributed (session named for the restore, source
identity = the approver) on the STS AssumeRole call."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from botocore.stub import Stubber
from moto import mock_aws

from bot.aftercare.aws import AftercareService
from bot.aws import Aws
from bot.blocks import approval_card
from bot.pitr import PitrService
from bot.policy import Policy
from bot.restores import State
from bot.services import roles_of
from bot.store.sqlite import SqliteStore
from bot.workflow import NewRequest, Workflow

pytestmark = pytest.mark.usefixtures("aws_env")  # tests/unit/conftest.py

OWN_ACCOUNT = "123456789012"  # moto's default
PROD = "111111111111"
ROLE_ARN = f"arn:aws:iam::{PROD}:role/pitr-bot"


def policy(**extra: Any) -> Policy:
    accounts = {
        "prod": {"role_arn": ROLE_ARN, "external_id": "x-42", "regions": ["us-east-1", "eu-west-1"]}
    }
    return Policy.model_validate({"accounts": accounts, **extra})


def make_table(client: Any, name: str) -> str:
    desc = client.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )["TableDescription"]
    client.update_continuous_backups(
        TableName=name,
        PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True},
    )
    client.put_item(TableName=name, Item={"pk": {"S": "row-1"}})
    return desc["TableArn"]


class Env:
    def __init__(self, tmp_path: Path, pol: Policy):
        self.policy = pol
        self.member = Aws(roles=roles_of(pol))  # the test's own view of the other account
        self.pitr = PitrService(aws=Aws())
        self.pitr.use_accounts(roles_of(pol))
        self.store = SqliteStore(str(tmp_path / "state.db"))
        self.flow = Workflow(self.store, self.pitr, pol, members=lambda group: None)
        self.assume_calls: list[dict[str, Any]] = []
        sts = self.pitr.places.client("sts")  # the bot's own STS client, which assumes roles
        sts.meta.events.register(
            "provide-client-params.sts.AssumeRole",
            lambda params, **_: self.assume_calls.append(dict(params)),
        )

    def ask(self, source: str, target: str, requester: str = "U1") -> Any:
        return self.flow.request(NewRequest(source, target, "latest", requester, "C1"))

    def table_in(self, account: str | None, region: str, name: str) -> bool:
        client = (
            self.member.client("dynamodb", "prod", region)
            if account
            else self.member.client("dynamodb", region=region)
        )
        return name in client.list_tables()["TableNames"]


@pytest.fixture
def env(tmp_path: Path):
    with mock_aws():
        e = Env(tmp_path, policy())
        yield e
        e.store.close()


def test_a_restore_in_another_account_lands_there_attributed_to_the_approver(env: Env):
    make_table(env.member.client("dynamodb", "prod"), "orders")

    outcome = env.ask("prod:orders", "orders-copy")
    assert outcome.ok, outcome.message
    req = outcome.request
    assert (req.source, req.target) == ("prod:orders", "prod:orders-copy")
    assert req.source_items == 1  # read in the other account

    assert env.flow.approve(req.id, "U2").ok
    assert env.store.get(req.id).state == State.RESTORING

    # Moto keeps accounts apart: the new table exists in 111111111111 only.
    assert env.table_in("prod", "us-east-1", "orders-copy")
    assert not env.table_in(None, "us-east-1", "orders-copy")
    # CloudTrail attribution: the restore's own session, named for it, with the approver.
    attributed = [c for c in env.assume_calls if "SourceIdentity" in c]
    assert len(attributed) == 1
    assert attributed[0]["RoleArn"] == ROLE_ARN
    assert attributed[0]["ExternalId"] == "x-42"
    assert attributed[0]["RoleSessionName"] == f"pitr-bot-{req.id}"
    assert attributed[0]["SourceIdentity"] == "U2"

    # Tracking reads the other account too, through the shared (cached) session.
    env.flow.poll(req.id)
    done = env.store.get(req.id)
    assert done.state == State.ACTIVE, done.error
    assert done.table_arn.split(":")[4] == PROD


def test_reads_share_one_session_per_account_and_region(env: Env):
    make_table(env.member.client("dynamodb", "prod"), "orders")
    assert env.pitr.table("prod:orders") is not None
    assert env.pitr.pitr("prod:orders").enabled
    assert env.pitr.table("orders") is None  # not in the bot's own account
    reads = [c for c in env.assume_calls if "SourceIdentity" not in c]
    assert len(reads) == 1  # both reads, one AssumeRole (credentials refresh themselves)


@pytest.mark.parametrize(
    ("source", "target", "reason"),
    [
        ("staging:orders", "orders-copy", "`staging` is not an account the bot knows"),
        ("prod:orders@ap-south-1", "orders-copy", "only reachable in us-east-1, eu-west-1"),
        ("prod:orders", "other:orders-copy", "stays in the source's account"),
    ],
)
def test_unknown_accounts_and_regions_are_refused_without_side_effects(
    env: Env, source: str, target: str, reason: str
):
    outcome = env.ask(source, target)
    assert not outcome.ok
    assert reason in outcome.message
    assert env.assume_calls == []  # no AWS call at all
    assert env.store.find(limit=10) == []


def test_policy_rules_match_account_globs(tmp_path: Path):
    strict = policy(
        rules=[{"tables": ["prod:*"], "required_approvals": 2, "approvers": ["U2", "U3"]}]
    )
    with mock_aws():
        env = Env(tmp_path, strict)
        make_table(env.member.client("dynamodb", "prod"), "orders")
        make_table(env.member.client("dynamodb"), "orders")
        prod = env.ask("prod:orders", "orders-copy").request
        own = env.ask("orders", "orders-copy").request
        assert (prod.required_approvals, own.required_approvals) == (2, 1)
        assert not env.flow.approve(prod.id, "U4").ok  # not an approver of prod:*
        env.store.close()


def test_a_source_in_another_region_is_restored_there_by_name_and_by_arn(env: Env):
    arn = make_table(env.member.client("dynamodb", region="eu-west-1"), "orders")
    by_region = env.ask("orders@eu-west-1", "copy-a").request
    by_arn = env.ask(arn, "copy-b").request
    assert (by_region.source, by_region.target) == ("orders@eu-west-1", "copy-a@eu-west-1")
    assert (by_arn.source, by_arn.target) == ("orders@eu-west-1", "copy-b@eu-west-1")
    for req in (by_region, by_arn):
        assert env.flow.approve(req.id, "U2").ok
        env.flow.poll(req.id)
    for name, req in (("copy-a", by_region), ("copy-b", by_arn)):
        assert env.table_in(None, "eu-west-1", name)
        assert not env.table_in(None, "us-east-1", name)
        assert env.store.get(req.id).state == State.ACTIVE


def test_an_arn_of_a_listed_account_means_that_account(env: Env):
    make_table(env.member.client("dynamodb", "prod"), "orders")
    arn = f"arn:aws:dynamodb:us-east-1:{PROD}:table/orders"
    req = env.ask(arn, "orders-copy").request
    assert (req.source, req.target) == ("prod:orders", "prod:orders-copy")


# -- cross-region: moto cannot restore across regions, so the request shape is stubbed -------
AT = datetime(2026, 11, 29, 10, 42, tzinfo=UTC)
EU_ARN = f"arn:aws:dynamodb:eu-west-1:{OWN_ACCOUNT}:table/orders"


def describe(sse: dict[str, Any] | None = None) -> dict[str, Any]:
    table: dict[str, Any] = {"TableName": "orders", "TableArn": EU_ARN, "TableStatus": "ACTIVE"}
    if sse:
        table["SSEDescription"] = sse
    return {"Table": table}


CREATING = {"TableDescription": {"TableName": "orders-copy", "TableStatus": "CREATING"}}


def test_a_cross_region_restore_runs_in_the_target_region_naming_the_source_by_arn():
    aws = Aws(region="us-east-1")
    pitr = PitrService(aws=aws)
    eu = aws.client("dynamodb", region="eu-west-1")
    with Stubber(eu) as eu_stub, Stubber(pitr.client) as us_stub:
        eu_stub.add_response("describe_table", describe(), {"TableName": "orders"})
        us_stub.add_response(
            "restore_table_to_point_in_time",
            CREATING,
            {"SourceTableArn": EU_ARN, "TargetTableName": "orders-copy", "RestoreDateTime": AT},
        )
        info = pitr.restore("orders@eu-west-1", "orders-copy", AT)
        us_stub.assert_no_pending_responses()
    assert info.status == "CREATING"


US_KEY = f"arn:aws:kms:us-east-1:{OWN_ACCOUNT}:key/11111111-2222-3333-4444-555555555555"
EU_KEY = f"arn:aws:kms:eu-west-1:{OWN_ACCOUNT}:key/11111111-2222-3333-4444-555555555555"


@pytest.mark.parametrize(
    ("overrides", "key"),
    [(None, "alias/aws/dynamodb"), ({"sse_key": US_KEY}, US_KEY)],
    ids=["managed key by default", "the chosen key"],
)
def test_a_cross_region_restore_of_a_kms_table_uses_a_key_of_the_target_region(overrides, key):
    aws = Aws(region="us-east-1")
    pitr = PitrService(aws=aws)
    eu = aws.client("dynamodb", region="eu-west-1")
    kms = {"Status": "ENABLED", "SSEType": "KMS", "KMSMasterKeyArn": EU_KEY}
    with Stubber(eu) as eu_stub, Stubber(pitr.client) as us_stub:
        eu_stub.add_response("describe_table", describe(kms), {"TableName": "orders"})
        us_stub.add_response(
            "restore_table_to_point_in_time",
            CREATING,
            {
                "SourceTableArn": EU_ARN,
                "TargetTableName": "orders-copy",
                "UseLatestRestorableTime": True,
                "SSESpecificationOverride": {
                    "Enabled": True,
                    "SSEType": "KMS",
                    "KMSMasterKeyId": key,
                },
            },
        )
        pitr.restore("orders@eu-west-1", "orders-copy", None, overrides)
        us_stub.assert_no_pending_responses()


def test_a_key_of_the_source_region_is_refused_for_a_cross_region_restore(tmp_path: Path):
    with mock_aws():
        e = Env(tmp_path, policy(kms_keys=[US_KEY, EU_KEY]))
        make_table(e.member.client("dynamodb", region="eu-west-1"), "orders")

        def ask(key: str) -> Any:
            new = NewRequest("orders@eu-west-1", "orders-copy@us-east-1", "latest", "U1", "C1")
            return e.flow.request(replace(new, overrides={"sse_key": key}))

        refused = ask(EU_KEY)
        assert not refused.ok and refused.field == "kms_key"
        assert "in eu-west-1, but the new table is created in us-east-1" in refused.message
        assert e.store.find(limit=10) == []  # no request, no card
        assert ask(US_KEY).ok
        e.store.close()


def test_a_request_across_regions_is_stored_absolute_and_the_card_says_so(env: Env):
    make_table(env.member.client("dynamodb", region="eu-west-1"), "orders")
    req = env.ask("orders@eu-west-1", "orders-copy@us-east-1").request
    assert (req.source, req.target) == ("orders@eu-west-1", "orders-copy")
    _, blocks = approval_card(req, req.created_at)
    text = str([b.to_dict() for b in blocks])
    assert "Data crosses regions: eu-west-1" in text and "data transfer" in text
    same = env.ask("orders@eu-west-1", "other-copy").request
    _, blocks = approval_card(same, same.created_at)
    assert "crosses regions" not in str([b.to_dict() for b in blocks])


def test_aftercare_reads_and_marks_the_restored_table_in_its_own_account(env: Env):
    prod = env.member.client("dynamodb", "prod")
    make_table(prod, "orders")
    prod.update_time_to_live(
        TableName="orders", TimeToLiveSpecification={"Enabled": True, "AttributeName": "ttl"}
    )
    req = env.ask("prod:orders", "orders-copy").request
    env.flow.approve(req.id, "U2")
    care = AftercareService.from_pitr(env.pitr)
    care.mark(req.target, req.id)
    aspects = {a.name: a for a in care.compare(req.source, req.target)}
    assert aspects["ttl"].source != aspects["ttl"].target  # read from both tables in prod
    arn = prod.describe_table(TableName="orders-copy")["Table"]["TableArn"]
    tags = prod.list_tags_of_resource(ResourceArn=arn)["Tags"]
    assert {"Key": "pitr-bot:restore-id", "Value": req.id} in tags


@pytest.mark.parametrize(
    ("typed", "stored"),
    [
        ("orders", "orders"),
        ("prod:orders@eu-west-1", "prod:orders@eu-west-1"),
        ("prod:orders@us-east-1", "prod:orders"),
        (f"arn:aws:dynamodb:eu-west-1:{PROD}:table/orders", "prod:orders@eu-west-1"),
    ],
)
def test_a_typed_table_is_read_as_its_stored_reference(env: Env, typed: str, stored: str):
    assert env.flow.table_ref(typed) == (stored, "")


def test_a_typed_table_in_an_unknown_account_is_refused(env: Env):
    ref, why = env.flow.table_ref("dev:orders")
    assert ref is None and "`dev` is not an account the bot knows" in why


def test_check_config_online_assumes_each_account_role_and_reads_its_tables():
    from bot.online_check import _aws

    pol = policy(tables=["prod:orders", "prod:missing"])
    with mock_aws():
        make_table(Aws(roles=roles_of(pol)).client("dynamodb", "prod"), "orders")
        lines = [f"{f.level} {f.text}" for f in _aws(pol)]
    assert any(line.startswith("OK account prod: role assumed") and PROD in line for line in lines)
    assert "OK table prod:orders: ACTIVE, PITR on" in lines
    assert any(line.startswith("FAIL table prod:missing") for line in lines)


def test_each_restore_gets_its_own_credentials_without_parsing_botocore_s_models_again(env: Env):
    """Each act's client carries its own role session's credentials; botocore's service
    models are parsed once, not per restore (a fresh session per act parsed them every time:
    40 % of the bot's CPU when 500 restores were approved at once)."""
    from botocore.loaders import JSONFileLoader

    from bot.aws import session_name_for, source_identity_for

    aws = env.pitr._places()  # the gateway's client factory
    aws.attributed_client("dynamodb", "prod", None, session_name_for("r0"), "U0")  # warm
    parsed: list[str] = []
    original = JSONFileLoader.load_file

    def counting(self, file_path, *args, **kwargs):
        parsed.append(file_path)  # a data file read and parsed from disk
        return original(self, file_path, *args, **kwargs)

    JSONFileLoader.load_file = counting
    try:
        clients = [
            aws.attributed_client(
                "dynamodb", "prod", None, session_name_for(f"r{n}"), source_identity_for("U2")
            )
            for n in range(1, 4)
        ]
    finally:
        JSONFileLoader.load_file = original
    assert parsed == []
    keys = {c._request_signer._credentials.access_key for c in clients}
    assert len(keys) == 3  # three role sessions, one per act, none shared
    names = [c["RoleSessionName"] for c in env.assume_calls if "SourceIdentity" in c]
    assert names[-3:] == ["pitr-bot-r1", "pitr-bot-r2", "pitr-bot-r3"]
