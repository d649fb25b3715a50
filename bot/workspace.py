"""The one Slack workspace (and Enterprise Grid org) this bot serves, learnt from auth.test.

Until auth.test has answered, the workspace is unknown and every Slack request is refused
(fail closed). If Slack is unreachable at boot the bot still starts; a background thread asks
again until Slack answers, and /readyz says 503 meanwhile.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any

log = logging.getLogger(__name__)

# Slack unreachable: ask again after 1, 2, 4 ... seconds, then every minute; one log line each.
FIRST_RETRY_SECONDS = 1.0
MAX_RETRY_SECONDS = 60.0
# Slack answered, and said no to the token itself: asking again will not help.
TOKEN_REJECTED = {
    "invalid_auth",
    "not_authed",
    "account_inactive",
    "token_revoked",
    "token_expired",
}


class Workspace:
    def __init__(self, auth_test: Callable[[], Mapping[str, Any]]):
        self._auth_test = auth_test
        self.team_id: str | None = None
        self.enterprise_id: str | None = None
        self.auth_test_result: Any = None
        self.rejected: str | None = None  # Slack's error when it refused the token
        self.failure = ""  # why the last auth.test did not answer
        self.on_known: list[Callable[[Any], None]] = []
        self._known = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def known(self) -> bool:
        return self._known.is_set()

    def wait(self, timeout: float) -> bool:
        return self._known.wait(timeout)

    def learn(self) -> bool:
        """Ask auth.test once; True once the workspace is known.

        A failure is not logged here: `serve` says in one line that Slack refused the token,
        and the background retry logs one line per attempt (`failure` says why)."""
        if self.known:
            return True
        try:
            result = self._auth_test()
            team_id = str(result.get("team_id") or "")
        except Exception as exc:  # noqa: BLE001 - any failure: ask again later
            error = str(getattr(getattr(exc, "response", None), "get", lambda _k: "")("error"))
            if error in TOKEN_REJECTED:
                self.rejected = error
                self._stop.set()
                return False
            self.failure = error or type(exc).__name__
            return False
        if not team_id:
            self.failure = "auth.test gave no team_id"
            return False
        self.team_id = team_id
        self.enterprise_id = str(result.get("enterprise_id") or "") or None
        self.auth_test_result = result
        self._known.set()
        log.info("serving workspace %s (enterprise %s)", self.team_id, self.enterprise_id)
        for hook in self.on_known:
            hook(result)
        return True

    def start(self) -> None:
        """Learn the workspace in the background, retrying until Slack answers."""
        if self.known or self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="pitr-workspace", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def _run(self) -> None:
        delay = FIRST_RETRY_SECONDS
        while not self._stop.is_set() and not self.learn():
            if self.rejected:
                log.error("Slack refused the bot token (%s): check SLACK_BOT_TOKEN", self.rejected)
                return
            log.warning("Slack unreachable (auth.test: %s); retrying in %g s", self.failure, delay)
            self._stop.wait(delay)
            delay = min(delay * 2, MAX_RETRY_SECONDS)

    def refusal(self, teams: set[str], enterprises: set[str]) -> str | None:
        """Why a request naming these team and enterprise ids is not ours; None if it is."""
        if not self.known:
            return "workspace not known yet (Slack has not answered auth.test)"
        if teams != {self.team_id}:
            return f"request from team(s) {sorted(teams)}"
        expected = {self.enterprise_id} if self.enterprise_id else set()
        if enterprises != expected:
            return f"request from enterprise(s) {sorted(enterprises)}"
        return None
