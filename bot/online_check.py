"""`pitr-bot check-config --online`: ask AWS, the store and Slack what only they can answer.

Each check gives one line: OK, WARN (works, but mind this) or FAIL (serve would not work).
Nothing here writes anything: the store is opened without creating it, Slack only gets
`auth.test`, AWS only describe calls and `sts:GetCallerIdentity`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Literal

from bot.policy import Policy
from bot.settings import Settings

Level = Literal["OK", "WARN", "FAIL"]
GLOB = set("*?[")


@dataclass(frozen=True)
class Finding:
    level: Level
    text: str


def named_tables(policy: Policy) -> list[str]:
    """Table names the policy spells out (globs cannot be checked one by one)."""
    names: list[str] = []
    for pattern in [*policy.tables, *(t for rule in policy.rules for t in rule.tables)]:
        if not GLOB & set(pattern) and pattern not in names:
            names.append(pattern)
    return names


def online_findings(settings: Settings, policy: Policy) -> Iterator[Finding]:
    yield from _aws(policy)
    yield _guarded("state store", lambda: _store(settings))
    yield _guarded("Slack", lambda: _slack(settings))


def _aws(policy: Policy) -> Iterator[Finding]:
    from bot.pitr import AwsError, PitrService
    from bot.startup import explain, region_problem

    problem = region_problem()
    if problem:
        yield Finding("FAIL", f"AWS: {problem}")
        return
    from bot.services import roles_of

    try:
        pitr = PitrService()
        if policy.accounts:
            pitr.use_accounts(roles_of(policy))
        who = pitr.caller_identity()
    except AwsError as exc:
        yield Finding("FAIL", f"AWS credentials: {exc.message}")
        return
    except Exception as exc:  # noqa: BLE001 - one line per problem, never a traceback
        yield Finding("FAIL", f"AWS credentials: {explain(exc, '')}")
        return
    yield Finding("OK", f"AWS: region {pitr.region}, identity {who}")
    for alias in policy.accounts:
        yield _guarded(f"account {alias}", lambda alias=alias: _account(pitr, alias))
    for name in named_tables(policy):
        yield _guarded(f"table {name}", lambda name=name: _table(pitr, name))


def _account(pitr, alias: str) -> Finding:  # noqa: ANN001 - PitrService, imported lazily
    """The role of policy `accounts` can be assumed (the bot reaches that account)."""
    return Finding("OK", f"account {alias}: role assumed, identity {pitr.identity_in(alias)}")


def _table(pitr, name: str) -> Finding:  # noqa: ANN001 - PitrService, imported lazily
    info = pitr.table(name)
    if info is None:
        return Finding("FAIL", f"table {name}: does not exist in {pitr.region}")
    status = pitr.pitr(name)
    if not status.enabled:
        return Finding(
            "WARN",
            f"table {name}: PITR is {status.status}, so it cannot be restored yet "
            f"(`/pitr-enable {name}` turns it on)",
        )
    return Finding("OK", f"table {name}: {info.status}, PITR on")


def _store(settings: Settings) -> Finding:
    from bot.store import StoreMissing, open_store

    try:
        store = open_store(settings.state, create=False)
    except StoreMissing as exc:
        return Finding("WARN", f"state store: {exc}; `serve` creates it on first start")
    try:
        store.ping()
    finally:
        store.close()
    return Finding("OK", f"state store: {settings.state} reachable")


def _slack(settings: Settings) -> Finding:
    from bot.services import slack_client

    if settings.slack_bot_token is None:
        return Finding("FAIL", "Slack: SLACK_BOT_TOKEN is not set")
    resp = slack_client(settings).auth_test()
    return Finding(
        "OK", f"Slack: bot {resp.get('user')} ({resp.get('user_id')}) in {resp.get('team')}"
    )


def _guarded(what: str, check: Callable[[], Finding]) -> Finding:
    from bot.pitr import AwsError
    from bot.startup import explain

    try:
        return check()
    except AwsError as exc:
        return Finding("FAIL", f"{what}: {exc.message}")
    except Exception as exc:  # noqa: BLE001 - one line per problem, never a traceback
        from slack_sdk.errors import SlackApiError

        if isinstance(exc, SlackApiError):
            return Finding("FAIL", f"{what}: Slack said {exc.response.get('error')}")
        return Finding("FAIL", f"{what}: {explain(exc, '')}")
