"""`pitr-bot serve | check-config | audit | iam-policy` (also `python -m bot`)."""

from __future__ import annotations

import argparse
import faulthandler
import json
import logging
import signal
import sys
from collections.abc import Sequence
from datetime import UTC, datetime

from bot.policy import Policy, PolicyError, load_policy
from bot.settings import Settings, load_settings, work_dir_of
from bot.startup import (
    explain,
    honour_aws_region,
    region_problem,
    signing_secret_problem,
    work_dir_problem,
)

log = logging.getLogger("bot")
# IAM quota: a customer managed policy holds at most 6,144 characters (whitespace not counted).
IAM_MANAGED_POLICY_LIMIT = 6144


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="pitr-bot",
        description="Restore DynamoDB tables to a point in time from Slack, with approval.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser(
        "serve",
        help="run the bot (Socket Mode if SLACK_APP_TOKEN is set, else HTTP)",
        description="Run the bot: Socket Mode if SLACK_APP_TOKEN is set, else HTTP.",
        epilog=settings_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    check = sub.add_parser(
        "check-config", help="validate settings and policy; non-zero exit on problems"
    )
    check.add_argument(
        "--online",
        action="store_true",
        help="also ask AWS (region, credentials, policy tables), the store and Slack",
    )
    console = sub.add_parser("console", help="try the bot in a terminal (simulated Slack and AWS)")
    console.add_argument(
        "--script", metavar="FILE", help="run the lines of FILE, print the transcript"
    )
    console.add_argument("--aws", action="store_true", help="use your real AWS account, not moto")
    audit = sub.add_parser(
        "audit", help="export the audit trail (JSON Lines, or CSV for spreadsheets), streaming"
    )
    audit.add_argument("--format", choices=("jsonl", "csv"), default="jsonl")
    audit.add_argument("--since", help="ISO 8601 date or time (UTC unless it has an offset)")
    audit.add_argument("--until", help="entries before this ISO 8601 date or time")
    audit.add_argument("--table", help="only events for this source table")
    iam = sub.add_parser(
        "iam-policy", help="print the least-privilege IAM policy for the bot's role (JSON)"
    )
    iam.add_argument("--account", metavar="ID", help="pin ARNs to this AWS account (12 digits)")
    iam.add_argument("--region", metavar="R", help="pin ARNs to this region (e.g. eu-west-1)")
    iam.add_argument(
        "--member",
        metavar="ALIAS",
        help="instead: the trust and permission policies of the role in account ALIAS "
        "(policy `accounts`), as JSON {trust_policy, permission_policy}",
    )
    iam.add_argument(
        "--bot-role", metavar="ARN", help="with --member: the role ARN the bot runs as"
    )
    args = parser.parse_args(argv)
    if args.command == "iam-policy" and args.member:
        return print_member_policies(args.member, args.bot_role or "")
    if args.command == "iam-policy":
        return print_iam_policy(args.account, args.region)
    honour_aws_region()  # before any boto3 client exists
    if args.command == "serve":
        return serve()
    if args.command == "check-config":
        return check_config(args.online)
    if args.command == "console":
        from bot.console.session import main as console_main

        if args.aws and (problem := region_problem()):
            print(f"pitr-bot: {problem}", file=sys.stderr)
            return 2
        return console_main(args.script, args.aws)
    return print_audit(args.since, args.table, args.until, args.format)


def settings_help() -> str:
    """`serve --help`: every setting with its default, from the settings model itself."""
    lines = ["settings (environment variables, or a .env file in the working directory):"]
    for field in Settings.model_fields.values():
        default = "unset" if field.default in (None, "") else repr(field.default)
        if field.alias and field.alias.startswith("SLACK_") and "TOKEN" in field.alias:
            default = "required" if field.alias == "SLACK_BOT_TOKEN" else "unset"
        lines.append(f"  {field.alias:<32} default: {default}")
    lines += [
        "  AWS_REGION, AWS_PROFILE, ...     the standard AWS settings",
        "",
        "What each one means: docs/operator-guide.md, section Settings.",
        "`pitr-bot check-config` validates them (and the policy file) without starting.",
    ]
    return "\n".join(lines)


def _configuration(for_serving: bool) -> tuple[Settings | None, Policy | None, list[str]]:
    """Settings and policy, or every problem with them at once."""
    settings, problems = load_settings()
    policy = None
    if settings is not None:
        if for_serving:
            problems += settings.problems_for_serving()
            if settings.require_policy and not settings.policy_path:
                problems.append(
                    "PITR_BOT_POLICY is not set and PITR_BOT_REQUIRE_POLICY is true: mount a "
                    "policy file and set PITR_BOT_POLICY to its path, or set "
                    "PITR_BOT_REQUIRE_POLICY=false to run the permissive built-in default "
                    "(any table; anyone but the requester approves)"
                )
        try:
            policy = load_policy(settings.policy_path)
        except PolicyError as exc:
            problems += [f"policy: {p}" for p in exc.problems]
    if for_serving and (region := region_problem()):
        problems.append(region)  # every restore needs it; boto3 would fail at the first call
    return settings, policy, problems


def check_config(online: bool = False) -> int:
    settings, policy, problems = _configuration(for_serving=True)
    if settings is not None:
        secret = settings.slack_signing_secret
        if problem := signing_secret_problem(secret.get_secret_value() if secret else ""):
            problems.append(problem)
        if problem := work_dir_problem(
            work_dir_of(settings), keep=False, derived=not settings.work_dir
        ):
            problems.append(problem)
    if problems:
        print(f"pitr-bot: {len(problems)} problem(s) in the configuration:", file=sys.stderr)
        for problem in problems:
            print(f"  - {problem}", file=sys.stderr)
        if online:
            print("pitr-bot: online checks skipped until these are fixed", file=sys.stderr)
        return 1
    assert settings is not None and policy is not None
    mode = "Socket Mode" if settings.socket_mode else f"HTTP on port {settings.port}"
    print(
        f"configuration OK: {mode}, state {settings.state}, poll {settings.poll_seconds}s, "
        f"work directory {work_dir_of(settings)}"
    )
    print(
        f"policy: {settings.policy_path or 'built-in default'}; approvers "
        f"{policy.approvers or 'anyone but the requester'}, {policy.required_approvals} "
        f"approval(s), tables {policy.tables}, {len(policy.rules)} rule(s), "
        f"new tables {policy.target_pattern!r}, {len(policy.kms_keys)} customer KMS key(s)"
        + (f", accounts {', '.join(sorted(policy.accounts))}" if policy.accounts else "")
    )
    if not online:
        print("offline checks only; `pitr-bot check-config --online` also asks AWS, store, Slack")
        return 0
    return check_online(settings, policy)


def check_online(settings: Settings, policy: Policy) -> int:
    from bot.online_check import online_findings

    failed = 0
    for finding in online_findings(settings, policy):
        out = sys.stdout if finding.level == "OK" else sys.stderr
        print(f"{finding.level:<4} {finding.text}", file=out, flush=True)
        failed += finding.level == "FAIL"
    if failed:
        print(f"pitr-bot: {failed} online check(s) failed", file=sys.stderr)
        return 1
    print("online checks OK")
    return 0


def serve() -> int:
    from bot.logs import configure_logging

    settings, policy, problems = _configuration(for_serving=True)
    if settings is not None and not problems:
        # serve keeps the directory it creates; check-config leaves nothing behind
        if problem := work_dir_problem(
            work_dir_of(settings), keep=True, derived=not settings.work_dir
        ):
            problems.append(problem)
    if problems or settings is None or policy is None:
        for problem in problems:
            print(f"pitr-bot: {problem}", file=sys.stderr)
        print("pitr-bot: not starting; `pitr-bot check-config` shows the same.", file=sys.stderr)
        return 2
    secrets = [
        s.get_secret_value()
        for s in (settings.slack_bot_token, settings.slack_signing_secret, settings.slack_app_token)
        if s is not None
    ]
    configure_logging(settings.log_level, secrets, settings.log_format)
    # `kill -USR1 <pid>` prints every thread's stack to stderr: a stalled tracker or request
    # can be looked at without stopping the process.
    faulthandler.register(signal.SIGUSR1, all_threads=True)

    from bot.server import BotServer
    from bot.server import serve as run_server
    from bot.services import build_services
    from bot.store import open_store
    from commands.app import create_app

    try:
        store = open_store(settings.state)
        services = build_services(settings, policy, store)
        app = create_app(settings, services)
    except Exception as exc:  # noqa: BLE001 - start-up: one clear line, never a traceback
        print(f"pitr-bot: cannot start: {explain(exc, settings.state)}", file=sys.stderr)
        return 2
    secret = settings.slack_signing_secret
    if warning := signing_secret_problem(secret.get_secret_value() if secret else ""):
        # Not fatal for serve (check-config fails on it): a wrong secret refuses every
        # request with 401, which is safe, and an odd-looking one may still be right.
        log.warning("%s", warning)
    # Once here; if Slack is unreachable the server starts anyway and asks in the background.
    workspace = services.workspace
    if workspace is not None and not workspace.learn() and workspace.rejected:
        print(
            f"pitr-bot: cannot start: Slack did not accept the bot token "
            f"({workspace.rejected}): set SLACK_BOT_TOKEN to the app's Bot User OAuth Token "
            "(xoxb-…, OAuth & Permissions), reinstall the app if it was revoked",
            file=sys.stderr,
        )
        services.store.close()
        return 2
    try:
        server = BotServer(app, services)  # binds the ports: a taken one fails here
    except OSError as exc:
        where = f"{settings.host}:{settings.port}"
        if settings.ops_bind:
            where += f" or {settings.ops_bind}"
        print(
            f"pitr-bot: cannot start: cannot listen on {where} ({exc.strerror or exc}): "
            "set PITR_BOT_PORT (or PITR_BOT_OPS_BIND) to a free port",
            file=sys.stderr,
        )
        services.store.close()
        return 2
    run_server(app, services, server)
    return 0


def print_iam_policy(account: str | None, region: str | None) -> int:
    """The policy file (PITR_BOT_POLICY) and state (PITR_BOT_STATE) decide what is granted."""
    from bot.iam import IamPolicyError, iam_policy, state_table_of

    settings, policy, problems = _configuration(for_serving=False)
    if problems or settings is None or policy is None:
        for problem in problems:
            print(f"pitr-bot: {problem}", file=sys.stderr)
        return 2
    try:
        document = iam_policy(
            policy,
            account,
            region,
            state_table_of(settings.state),
            settings.event_bus,
            export_s3=settings.export_s3,
            export_kms_key=settings.export_s3_kms_key,
        )
    except IamPolicyError as exc:
        print(f"pitr-bot: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(document, indent=2))
    size = len(json.dumps(document, separators=(",", ":")))
    if size > IAM_MANAGED_POLICY_LIMIT:
        print(
            f"pitr-bot: warning: this policy has {size} characters, more than IAM's "
            f"{IAM_MANAGED_POLICY_LIMIT} for a managed policy; use fewer, wider `tables` "
            "patterns in the policy file",
            file=sys.stderr,
        )
    return 0


def print_member_policies(alias: str, bot_role: str) -> int:
    """The member-account role of `alias`: trust policy and permission policy."""
    from bot.iam import IamPolicyError, member_policies

    _, policy, problems = _configuration(for_serving=False)
    if problems or policy is None:
        for problem in problems:
            print(f"pitr-bot: {problem}", file=sys.stderr)
        return 2
    try:
        documents = member_policies(policy, alias, bot_role)
    except IamPolicyError as exc:
        print(f"pitr-bot: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(documents, indent=2))
    return 0


def _instant(flag: str, text: str | None) -> datetime | None:
    """--since/--until: ISO 8601, UTC unless it has an offset; ValueError names the flag."""
    if not text:
        return None
    try:
        instant = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{flag} {text!r} is not an ISO 8601 date or time") from None
    return (instant if instant.tzinfo else instant.replace(tzinfo=UTC)).astimezone(UTC)


def print_audit(
    since: str | None, table: str | None, until: str | None = None, fmt: str = "jsonl"
) -> int:
    settings, problems = load_settings()
    if settings is None or problems:
        for problem in problems:
            print(f"pitr-bot: {problem}", file=sys.stderr)
        return 2
    try:
        start, end = _instant("--since", since), _instant("--until", until)
    except ValueError as exc:
        print(f"pitr-bot: {exc}", file=sys.stderr)
        return 2
    from bot.audit_export import rows, write
    from bot.store import StoreMissing, open_store

    try:  # read-only: never create a store, say where we looked
        store = open_store(settings.state, create=False)
        write(sys.stdout, fmt, rows(store, since=start, until=end, table=table))
    except StoreMissing as exc:
        print(f"pitr-bot: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `pitr-bot audit | head`: the reader has what it wanted
        return 0
    except Exception as exc:  # noqa: BLE001 - one clear line, never a traceback
        print(
            f"pitr-bot: cannot read the audit trail: {explain(exc, settings.state)}",
            file=sys.stderr,
        )
        return 2
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
