"""Start-up as operators meet it: `pitr-bot serve | check-config | audit` as child processes.

Every start-up failure is one line saying what to set (exit 2), never a traceback; the region
is taken from AWS_REGION as well as AWS_DEFAULT_REGION; check-config reports every problem at
once and, with --online, asks AWS, the store and Slack.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from support.signed import SlackSender

from e2e.process import base_env, free_port, run_cli, start_bot_process

TOKEN = "xoxb-startup-e2e-token-5c1d0e"  # noqa: S105 - a test secret
SECRET = "5f0e2b8c9d1a4e6f7a3b2c1d0e9f8a7b"  # noqa: S105 - shaped like Slack's (32 hex)


def isolated(tmp_path: Path, **extra: str) -> dict[str, str]:
    """No AWS settings from whoever runs the tests: no ~/.aws files, no instance metadata."""
    return base_env(
        **{
            "AWS_CONFIG_FILE": str(tmp_path / "no-aws-config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-aws-credentials"),
            "AWS_EC2_METADATA_DISABLED": "true",
            **extra,
        }
    )


def only_aws_region(sim) -> dict[str, str]:
    env = sim.env()
    del env["AWS_DEFAULT_REGION"]
    return env


def slack_env(fake, tmp_path: Path) -> dict[str, str]:
    return {
        "SLACK_BOT_TOKEN": TOKEN,
        "SLACK_SIGNING_SECRET": SECRET,
        "SLACK_API_URL": fake.api_url,
        "PITR_BOT_STATE": f"sqlite:///{tmp_path / 'state.db'}",
    }


def one_clear_line(result, *words: str) -> None:
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr + result.stdout, result.stderr
    for word in words:
        assert word in result.stderr, result.stderr
    assert TOKEN not in result.stderr + result.stdout
    assert SECRET not in result.stderr + result.stdout


# -- item 5: AWS_REGION alone is enough ---------------------------------------------------------


def test_serve_with_only_aws_region_answers_pitr_status(tmp_path, fake, sim):
    port = free_port()
    run = tmp_path / "run"
    run.mkdir()
    env = isolated(
        tmp_path,
        **only_aws_region(sim),
        **slack_env(fake, tmp_path),
        PITR_BOT_PORT=str(port),
        PITR_BOT_HOST="127.0.0.1",
        PITR_BOT_POLL_SECONDS="0.2",
    )
    assert "AWS_DEFAULT_REGION" not in env
    bot = start_bot_process(env, run, port)
    try:
        bot.wait_healthy(timeout=30)
        resp = SlackSender(bot.url, SECRET).command(
            "/pitr-status",
            "MusicCollection",
            user_id="U1",
            channel_id="C1",
            response_url=fake.response_url("U1"),
        )
        assert resp.status == 200, resp.body
        answer = fake.wait_for(
            lambda c: c.method == "response_url" and "ENABLED" in str(c.args), timeout=60
        )[0]
        assert "MusicCollection" in str(answer.args)
    finally:
        bot.kill()
    assert "Traceback" not in bot.stderr()


def test_check_config_online_with_only_aws_region(tmp_path, fake, sim):
    env = isolated(tmp_path, **only_aws_region(sim), **slack_env(fake, tmp_path))
    result = run_cli("check-config", "--online", env=env, cwd=tmp_path, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "region us-east-1" in result.stdout


# -- item 7: start-up failures are one line, exit 2 ----------------------------------------------


def test_serve_without_a_region_says_what_to_set(tmp_path, fake):
    env = isolated(tmp_path, **slack_env(fake, tmp_path))
    result = run_cli("serve", env=env, cwd=tmp_path, timeout=60)
    one_clear_line(result, "AWS_REGION", "not starting")


def test_check_config_no_longer_says_ok_without_a_region(tmp_path, fake):
    env = isolated(tmp_path, **slack_env(fake, tmp_path))
    result = run_cli("check-config", env=env, cwd=tmp_path)
    assert result.returncode == 1
    assert "configuration OK" not in result.stdout
    assert "AWS_REGION" in result.stderr and "Traceback" not in result.stderr


def test_serve_with_a_dynamodb_store_and_no_credentials_says_what_to_set(tmp_path, fake, sim):
    aws = {k: v for k, v in sim.env().items() if not k.startswith(("AWS_ACCESS", "AWS_SECRET"))}
    del aws["AWS_SESSION_TOKEN"]
    env = isolated(
        tmp_path, **aws, **{**slack_env(fake, tmp_path), "PITR_BOT_STATE": "dynamodb://state"}
    )
    result = run_cli("serve", env=env, cwd=tmp_path, timeout=60)
    one_clear_line(result, "no AWS credentials", "AWS_ACCESS_KEY_ID", "dynamodb://state")
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_serve_with_an_unwritable_sqlite_path_says_what_to_set(tmp_path, fake, sim):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    env = isolated(
        tmp_path,
        **sim.env(),
        **{**slack_env(fake, tmp_path), "PITR_BOT_STATE": f"sqlite:///{blocker}/state.db"},
    )
    result = run_cli("serve", env=env, cwd=tmp_path, timeout=60)
    one_clear_line(result, "PITR_BOT_STATE")


# -- item 8: every problem at once; --online ----------------------------------------------


def test_check_config_reports_every_problem_despite_a_bad_poll_interval(tmp_path):
    env = isolated(
        tmp_path,
        AWS_REGION="eu-west-1",
        SLACK_BOT_TOKEN="xapp-not-a-bot-token",  # noqa: S106 - a test value
        SLACK_SIGNING_SECRET=SECRET,
        PITR_BOT_POLL_SECONDS="often",
        PITR_BOT_POLICY=str(tmp_path / "missing-policy.yml"),
    )
    result = run_cli("check-config", env=env, cwd=tmp_path)
    assert result.returncode == 1
    assert "PITR_BOT_POLL_SECONDS" in result.stderr, result.stderr
    assert "xoxb-" in result.stderr, result.stderr
    assert "missing-policy.yml" in result.stderr, result.stderr
    assert "3 problem(s)" in result.stderr, result.stderr


def write_policy(tmp_path: Path, tables: str) -> str:
    policy = tmp_path / "policy.yml"
    policy.write_text(f"tables: {tables}\n", encoding="utf-8")
    return str(policy)


def test_check_config_online_checks_aws_store_slack_and_policy_tables(tmp_path, fake, sim):
    policy = write_policy(tmp_path, '[MusicCollection, NoPitrTable, "prod-*"]')
    env = isolated(tmp_path, **sim.env(), **slack_env(fake, tmp_path), PITR_BOT_POLICY=policy)
    result = run_cli("check-config", "--online", env=env, cwd=tmp_path, timeout=60)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out  # PITR off is a warning, not a failure
    assert "identity arn:aws:" in result.stdout, out
    assert "OK   table MusicCollection: ACTIVE, PITR on" in result.stdout, out
    assert "WARN table NoPitrTable: PITR is DISABLED" in result.stderr, out
    checks = [line for line in out.splitlines() if line.startswith(("OK", "WARN", "FAIL"))]
    assert not any("prod-*" in line for line in checks), checks  # a glob is not looked up
    assert "WARN state store: no state database" in result.stderr, out  # not created by a check
    assert not (tmp_path / "state.db").exists()
    assert "OK   Slack: bot pitr-bot (UBOT) in Test" in result.stdout, out
    assert [c.method for c in fake.calls()] == ["auth.test"]
    assert sim.count("RestoreTableToPointInTime") == 0 and sim.count("CreateTable") == 0


def test_check_config_online_fails_on_a_missing_table_and_a_refused_token(tmp_path, fake, sim):
    fake.fail("auth.test", times=10, status=200, error="invalid_auth")
    policy = write_policy(tmp_path, "[MusicCollection, Nonexistent]")
    env = isolated(tmp_path, **sim.env(), **slack_env(fake, tmp_path), PITR_BOT_POLICY=policy)
    result = run_cli("check-config", "--online", env=env, cwd=tmp_path, timeout=60)
    assert result.returncode == 1
    assert "FAIL table Nonexistent: does not exist in us-east-1" in result.stderr, result.stderr
    assert "FAIL Slack: Slack said invalid_auth" in result.stderr, result.stderr
    assert "2 online check(s) failed" in result.stderr
    assert "Traceback" not in result.stderr


def test_check_config_online_without_credentials_fails_cleanly(tmp_path, fake, sim):
    env = isolated(
        tmp_path,
        AWS_REGION="us-east-1",
        AWS_ENDPOINT_URL=sim.endpoint_url,
        **slack_env(fake, tmp_path),
    )
    result = run_cli("check-config", "--online", env=env, cwd=tmp_path, timeout=60)
    assert result.returncode == 1
    assert "FAIL AWS credentials:" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


# -- item 10: read-only commands never create a store -------------------------------------------


def test_audit_in_the_wrong_folder_says_where_it_looked(tmp_path):
    result = run_cli("audit", env=isolated(tmp_path), cwd=tmp_path)
    assert result.returncode == 2
    assert result.stdout == ""
    assert f"no state database at {tmp_path.resolve() / 'pitr-bot.db'}" in result.stderr
    assert "PITR_BOT_STATE" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "pitr-bot.db").exists()


@pytest.mark.parametrize("state", ["dynamodb://no-such-state-table"])
def test_audit_with_a_missing_dynamodb_store_does_not_create_it(tmp_path, sim, state):
    env = isolated(tmp_path, **sim.env(), PITR_BOT_STATE=state)
    result = run_cli("audit", env=env, cwd=tmp_path, timeout=60)
    assert result.returncode == 2, result.stderr
    assert "no state table 'no-such-state-table' in us-east-1" in result.stderr
    assert sim.count("CreateTable") == 0


# -- item 5 again: `console --aws` ---------------------------------------------------------------


def test_console_aws_with_only_aws_region_reaches_aws(tmp_path, sim):
    script = tmp_path / "status.script"
    script.write_text("/pitr-status MusicCollection\n", encoding="utf-8")
    env = isolated(tmp_path, **only_aws_region(sim))
    result = run_cli("console", "--aws", "--script", str(script), env=env, cwd=tmp_path, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "MusicCollection" in result.stdout and "ENABLED" in result.stdout, result.stdout
    assert "us-east-1" in result.stdout
    assert "Traceback" not in result.stderr


def test_console_aws_without_a_region_says_what_to_set(tmp_path):
    script = tmp_path / "status.script"
    script.write_text("/pitr-status MusicCollection\n", encoding="utf-8")
    result = run_cli(
        "console", "--aws", "--script", str(script), env=isolated(tmp_path), cwd=tmp_path
    )
    one_clear_line(result, "AWS_REGION")


def test_check_config_online_with_a_dynamodb_store(tmp_path, fake, sim):
    from bot.store.dynamodb import DynamoStore

    env = isolated(
        tmp_path,
        **sim.env(),
        **{**slack_env(fake, tmp_path), "PITR_BOT_STATE": "dynamodb://pitr-online-state"},
    )
    missing = run_cli("check-config", "--online", env=env, cwd=tmp_path, timeout=60)
    assert missing.returncode == 0, missing.stderr
    assert "WARN state store: no state table 'pitr-online-state'" in missing.stderr
    assert sim.count("CreateTable") == 0  # a check never creates the store

    DynamoStore("pitr-online-state", client=sim.client())
    present = run_cli("check-config", "--online", env=env, cwd=tmp_path, timeout=60)
    assert present.returncode == 0, present.stderr
    assert "OK   state store: dynamodb://pitr-online-state reachable" in present.stdout


# -- the work directory, the signing secret's shape, the image's policy, serve --help ----------


def test_check_config_refuses_a_work_directory_it_cannot_write(tmp_path, fake):
    env = isolated(
        tmp_path, AWS_REGION="eu-west-1", PITR_BOT_WORK_DIR="/proc/x", **slack_env(fake, tmp_path)
    )
    result = run_cli("check-config", env=env, cwd=tmp_path)
    assert result.returncode == 1, result.stdout
    assert "configuration OK" not in result.stdout
    assert "/proc/x" in result.stderr and "PITR_BOT_WORK_DIR" in result.stderr, result.stderr


def test_check_config_refuses_a_work_directory_that_is_a_file(tmp_path, fake):
    (tmp_path / "jobs").write_text("not a folder")
    env = isolated(
        tmp_path,
        AWS_REGION="eu-west-1",
        PITR_BOT_WORK_DIR=str(tmp_path / "jobs"),
        **slack_env(fake, tmp_path),
    )
    result = run_cli("check-config", env=env, cwd=tmp_path)
    assert result.returncode == 1 and "not a directory" in result.stderr, result.stderr


def test_check_config_ok_names_the_work_directory_and_leaves_nothing_behind(tmp_path, fake):
    work = tmp_path / "new" / "jobs"
    env = isolated(
        tmp_path, AWS_REGION="eu-west-1", PITR_BOT_WORK_DIR=str(work), **slack_env(fake, tmp_path)
    )
    result = run_cli("check-config", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"work directory {work}" in result.stdout
    assert not (tmp_path / "new").exists()


def test_serve_with_an_unwritable_work_directory_says_what_to_set(tmp_path, fake, sim):
    env = isolated(
        tmp_path,
        **sim.env(),
        **{**slack_env(fake, tmp_path), "PITR_BOT_STATE": "dynamodb://state"},
        PITR_BOT_WORK_DIR="/proc/x",
    )
    result = run_cli("serve", env=env, cwd=tmp_path, timeout=60)
    one_clear_line(result, "PITR_BOT_WORK_DIR", "/proc/x", "not starting")
    assert sim.count("CreateTable") == 0  # refused before anything was done


@pytest.mark.parametrize("secret", ["x", "5F0E2B8C9D1A4E6F7A3B2C1D0E9F8A7B", "0" * 31, "g" * 32])
def test_check_config_refuses_a_signing_secret_not_shaped_like_slacks(tmp_path, fake, secret):
    env = isolated(
        tmp_path,
        AWS_REGION="eu-west-1",
        **{**slack_env(fake, tmp_path), "SLACK_SIGNING_SECRET": secret},
    )
    result = run_cli("check-config", env=env, cwd=tmp_path)
    assert result.returncode == 1, result.stdout
    assert "SLACK_SIGNING_SECRET" in result.stderr and "32 hex" in result.stderr, result.stderr
    if len(secret) > 1:  # the secret itself is never echoed ("x" is in any sentence)
        assert secret not in result.stderr


def test_serve_refuses_the_built_in_policy_when_a_policy_is_required(tmp_path, fake, sim):
    env = isolated(
        tmp_path, **sim.env(), **slack_env(fake, tmp_path), PITR_BOT_REQUIRE_POLICY="true"
    )
    result = run_cli("serve", env=env, cwd=tmp_path, timeout=60)
    one_clear_line(result, "PITR_BOT_POLICY", "PITR_BOT_REQUIRE_POLICY=false")
    env["PITR_BOT_POLICY"] = write_policy(tmp_path, '["MusicCollection"]')
    ok = run_cli("check-config", env=env, cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr


def test_serve_help_lists_every_setting(tmp_path):
    from bot.settings import Settings

    result = run_cli("serve", "--help", env=base_env(), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    for field in Settings.model_fields.values():
        assert field.alias in result.stdout, field.alias
    assert "docs/operator-guide.md" in result.stdout
