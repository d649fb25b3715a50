"""bot.startup: the region operators set is the one boto3 uses; failures read as one line."""

from __future__ import annotations

import sqlite3

import boto3
from botocore.exceptions import ClientError, NoCredentialsError, NoRegionError

from bot.startup import explain, honour_aws_region


def test_aws_region_alone_reaches_boto3(monkeypatch) -> None:
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    monkeypatch.setenv("AWS_REGION", "eu-west-3")
    honour_aws_region()
    assert boto3.session.Session().region_name == "eu-west-3"


def test_aws_region_wins_over_aws_default_region_as_in_the_aws_cli() -> None:
    env = {"AWS_REGION": "eu-west-3", "AWS_DEFAULT_REGION": "us-east-1"}
    honour_aws_region(env)
    assert env["AWS_DEFAULT_REGION"] == "eu-west-3"


def test_aws_default_region_alone_is_left_alone() -> None:
    env = {"AWS_DEFAULT_REGION": "us-east-1"}
    honour_aws_region(env)
    assert env == {"AWS_DEFAULT_REGION": "us-east-1"}


def test_start_up_failures_read_as_one_line_saying_what_to_set() -> None:
    state = "dynamodb://pitr-bot-state"
    assert "AWS_REGION" in explain(NoRegionError(), state)
    creds = explain(NoCredentialsError(), state)
    assert "AWS_ACCESS_KEY_ID" in creds and state in creds
    denied = ClientError(
        {"Error": {"Code": "AccessDeniedException", "Message": "no"}}, "DescribeTable"
    )
    assert "iam-policy.json" in explain(denied, state)
    db = explain(sqlite3.OperationalError("unable to open database file"), "sqlite:///x/y.db")
    assert "PITR_BOT_STATE" in db
    for text in (creds, db):
        assert "\n" not in text
