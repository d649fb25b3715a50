"""A token bucket that paces reads or writes to a budget (capacity units or items per second).

Pure: the clock and the sleep are given, so unit tests drive it with a fake clock. Costs are
often known only after a call (ConsumedCapacity), so `spend` may run the bucket into debt; the
next `wait` then sleeps the debt off. Thread-safe: scan/write workers share one bucket.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class TokenBucket:
    def __init__(
        self,
        rate: float | None,
        burst: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ):
        """rate: units per second (None: unpaced); burst: bucket size (default one second)."""
        if rate is not None and rate <= 0:
            raise ValueError("rate must be positive (or None for unpaced)")
        self.rate = rate
        self.burst = burst if burst is not None else (rate or 0.0)
        self._clock = clock
        self._sleep = sleep
        self._tokens = self.burst
        self._at = clock()
        self._lock = threading.Lock()

    def _refill(self) -> None:
        now = self._clock()
        assert self.rate is not None
        self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
        self._at = now

    def delay(self, units: float = 0.0) -> float:
        """Seconds to wait before `units` may be spent (0 when they are there)."""
        if self.rate is None:
            return 0.0
        with self._lock:
            self._refill()
            missing = min(units, self.burst) - self._tokens
            # A rounding crumb is not worth a sleep (and a float clock may never pass it).
            return missing / self.rate if missing > 1e-9 else 0.0

    def wait(self, units: float = 0.0) -> None:
        """Block until `units` are available (or the debt is paid when units is 0)."""
        while (pause := self.delay(units)) > 0:
            self._sleep(pause)

    def spend(self, units: float) -> None:
        """Take `units` now; may leave the bucket in debt (cost known only after the call)."""
        if self.rate is None:
            return
        with self._lock:
            self._refill()
            self._tokens -= units

    def take(self, units: float) -> None:
        """Wait for `units`, then spend them."""
        self.wait(units)
        self.spend(units)
