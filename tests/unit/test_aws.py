"""The one door to AWS (bot/aws.py): one client per (account, region), assumed roles, regions."""

from __future__ import annotations

import pytest
from moto import mock_aws

from bot.aftercare.aws import AftercareService
from bot.aws import AssumedRole, Aws, UnknownAccount
from bot.pitr import PitrService

OTHER_ACCOUNT = "111111111111"
ROLE = AssumedRole(f"arn:aws:iam::{OTHER_ACCOUNT}:role/pitr-bot", external_id="x-42")


pytestmark = pytest.mark.usefixtures("aws_env")  # tests/unit/conftest.py


def test_one_client_per_account_region_and_service():
    aws = Aws()
    assert aws.client("dynamodb") is aws.client("dynamodb")
    assert aws.client("dynamodb", region="eu-west-1") is not aws.client("dynamodb")
    assert aws.client("dynamodb", region="eu-west-1").meta.region_name == "eu-west-1"


def test_aws_region_is_honoured_before_aws_default_region(monkeypatch):
    assert Aws().client("dynamodb").meta.region_name == "us-east-1"  # AWS_DEFAULT_REGION
    monkeypatch.setenv("AWS_REGION", "eu-central-1")
    assert Aws().client("dynamodb").meta.region_name == "eu-central-1"


@mock_aws
def test_an_account_alias_reaches_its_account_through_the_assumed_role():
    aws = Aws(roles={"prod": ROLE})
    default = aws.client("sts").get_caller_identity()["Account"]
    other = aws.client("sts", account="prod").get_caller_identity()["Account"]
    assert other == OTHER_ACCOUNT != default
    # Tables live in the account the alias names.
    aws.client("dynamodb", account="prod").create_table(
        TableName="orders",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    assert PitrService(aws=aws, account="prod").table("orders") is not None
    assert PitrService(aws=aws).table("orders") is None


@mock_aws
def test_aftercare_reaches_the_same_account_and_region_as_its_pitr_service():
    aws = Aws(roles={"prod": ROLE})
    pitr = PitrService(aws=aws, account="prod", region="eu-west-1")
    care = AftercareService.from_pitr(pitr)
    assert care.client is pitr.client
    assert care.autoscaling is aws.client("application-autoscaling", "prod", "eu-west-1")


def test_an_unknown_account_alias_is_refused():
    with pytest.raises(UnknownAccount):
        Aws().client("dynamodb", account="nowhere")
