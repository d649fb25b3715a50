"""Hold a simulated call until the test lets it go: "slow" without a clock.

A test that asks "does the bot answer Slack while AWS is still busy?" must not depend on how
fast the machine is. Instead of sleeping for N seconds, a held call waits until the test calls
release(); the answer the test is waiting for either comes while the call is held, or not.
"""

from __future__ import annotations

import threading
from collections import Counter

# A forgotten release() must not hang the suite; a test that needs longer is wrong.
LONGEST_HOLD = 60.0


class Gates:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._closed: dict[str, threading.Event] = {}
        self._waiting: Counter[str] = Counter()
        self._arrived: Counter[str] = Counter()

    def hold(self, name: str) -> None:
        """From now on, calls named `name` wait until release(name)."""
        with self._lock:
            self._closed.setdefault(name, threading.Event())
            self._arrived[name] = 0

    def release(self, name: str | None = None) -> None:
        """Let held calls of `name` (or of every name) through, and stop holding."""
        with self._lock:
            names = list(self._closed) if name is None else [name]
            for n in names:
                event = self._closed.pop(n, None)
                if event is not None:
                    event.set()

    def waiting(self, name: str) -> int:
        """How many calls named `name` are held right now."""
        with self._lock:
            return self._waiting[name]

    def arrived(self, name: str) -> int:
        """How many calls named `name` arrived since hold(name)."""
        with self._lock:
            return self._arrived[name]

    def pass_through(self, name: str) -> None:
        """Called by the fake server for each call: returns at once unless `name` is held."""
        with self._lock:
            event = self._closed.get(name)
            if event is None:
                return
            self._waiting[name] += 1
            self._arrived[name] += 1
        try:
            event.wait(LONGEST_HOLD)
        finally:
            with self._lock:
                self._waiting[name] -= 1
