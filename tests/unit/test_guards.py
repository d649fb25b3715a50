"""bot/guards.py and bot/workspace.py without a server: the workspace and Enterprise Grid binding
(issue 10, item 5) and which response_urls respond() may ever post to (item 1).

The HTTP attack table (tests/e2e/test_attacks_http.py) covers a non-Grid install; here also an
install inside an Enterprise Grid org: its own org is served, another org or none is refused.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import pytest
from slack_bolt.request import BoltRequest
from slack_bolt.response import BoltResponse

from bot.guards import ResponseSender, request_guard, response_url_allowed
from bot.workspace import Workspace

API_URL = "http://127.0.0.1:8765/api/"  # SLACK_API_URL in tests and the console
HOOK = "https://hooks.slack.com/commands/T1/1/abc"


class NoStore:
    """The guard reads the store only for clicks; a command must never reach it."""

    def get(self, _id: str) -> Any:
        raise AssertionError("the store was read")

    job_get = get


def workspace(team: str = "T1", enterprise: str | None = None) -> Workspace:
    ws = Workspace(lambda: {"ok": True, "team_id": team, "enterprise_id": enterprise})
    assert ws.learn()
    return ws


def command(team: str | None = "T1", enterprise: str | None = None) -> BoltRequest:
    fields = {"command": "/pitr-status", "text": "orders", "user_id": "U1", "channel_id": "C1"}
    fields["response_url"] = HOOK
    if team is not None:
        fields["team_id"] = team
    if enterprise is not None:
        fields["enterprise_id"] = enterprise
    return BoltRequest(body=urlencode(fields), mode="socket_mode")


def run(ws: Workspace, req: BoltRequest) -> int:
    """The guard's answer: 0 when it let the request through to the listeners."""
    guard = request_guard(ws, NoStore(), API_URL, ResponseSender(threads=1))  # type: ignore[arg-type]
    result = guard(req, BoltResponse(status=200), lambda: BoltResponse(status=0))
    return result.status


def test_a_grid_install_serves_its_own_org_and_workspace_only():
    grid = workspace("T1", "E1")
    assert run(grid, command("T1", "E1")) == 0
    assert run(grid, command("T1", "E2")) == 403  # another org
    assert run(grid, command("T1", None)) == 403  # no org named: not ours either
    assert run(grid, command("T2", "E1")) == 403  # another workspace of the same org


def test_an_install_outside_grid_refuses_any_enterprise_id():
    plain = workspace("T1", None)
    assert run(plain, command("T1")) == 0
    assert run(plain, command("T1", "E1")) == 403
    assert run(plain, command("T9")) == 403
    assert run(plain, command(None)) == 403  # names no workspace at all


def test_until_auth_test_answers_every_request_is_refused():
    down = Workspace(lambda: (_ for _ in ()).throw(ConnectionError("Slack down")))
    assert not down.learn()
    assert run(down, command("T1")) == 200  # "still connecting", and nothing runs
    assert run(down, command("T1", "E1")) == 200


@pytest.mark.parametrize(
    "url",
    [
        HOOK,
        "https://hooks.slack.com/actions/T1/2/def",
        API_URL + "respond/U1",  # the configured Slack API's host (tests, console)
    ],
)
def test_response_urls_on_slacks_hooks_host_are_allowed(url):
    assert response_url_allowed(url, API_URL)


@pytest.mark.parametrize(
    "url",
    [
        "http://hooks.slack.com/commands/T1/1/abc",  # not https
        "https://hooks.slack.com.evil.example/commands",  # look-alike host
        "https://evil.example/hooks.slack.com/commands",
        "https://hooks.slack.com@evil.example/commands",  # userinfo: the host is evil.example
        "https://user:pw@hooks.slack.com/commands",
        "https://hooks.slack.com:8443/commands",  # another port
        "https://hooks.slack.com/commands\r\nX-Evil: 1",
        "https://hooks.slack.com\\@evil.example/",
        "http://127.0.0.1:9999/respond/U1",  # the API host, another port
        "https://127.0.0.1:8765/respond/U1",  # the API host, another scheme
        "http://127.0.0.1:notaport/x",
        "",
        None,
        ["https://hooks.slack.com/commands"],
    ],
)
def test_any_other_response_url_is_refused(url):
    assert not response_url_allowed(url, API_URL)
