"""bot.startup: the region operators set is the one boto3 uses; failures read as one line."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import boto3
from botocore.exceptions import ClientError, NoCredentialsError, NoRegionError

from bot.startup import (
    explain,
    honour_aws_region,
    signing_secret_problem,
    work_dir_problem,
)


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


def test_a_work_directory_without_room_is_refused_with_how_much_is_free(tmp_path, monkeypatch):
    from collections import namedtuple

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr("bot.startup.shutil.disk_usage", lambda _p: usage(1 << 30, 0, 5 << 20))
    problem = work_dir_problem(tmp_path / "jobs", keep=False)
    assert problem is not None and "5 MiB free" in problem and "PITR_BOT_WORK_DIR" in problem
    assert not (tmp_path / "jobs").exists()  # check-config leaves nothing behind


def test_serve_keeps_the_work_directory_it_creates_private(tmp_path):
    work = tmp_path / "a" / "jobs"
    assert work_dir_problem(work, keep=True) is None
    assert work.is_dir() and (work.stat().st_mode & 0o777) == 0o700
    assert list(work.iterdir()) == []  # the probe file is gone


def test_a_derived_work_directory_names_the_state_setting_too():
    problem = work_dir_problem(Path("/proc/x/pitr-bot-jobs"), keep=False, derived=True)
    assert problem is not None and "PITR_BOT_STATE" in problem and "PITR_BOT_WORK_DIR" in problem
    assert "\n" not in problem


def test_signing_secrets_are_32_lowercase_hex_digits():
    assert signing_secret_problem("8f742231b10e8888abcd99yyyzzz85a5") is not None
    assert signing_secret_problem("x") is not None
    assert signing_secret_problem("0123456789abcdef0123456789abcdef") is None
    assert signing_secret_problem("") is None  # unset: problems_for_serving says so
