"""EXPERIMENT ONLY, not how pitr-bot ships: `pitr-bot serve` with a bigger Bolt listener pool.

Bolt's App runs every listener on a ThreadPoolExecutor(max_workers=5) unless given another;
ack() can only happen once a worker picks the listener up. This wrapper swaps in a pool of
BENCH_LISTENER_THREADS threads (without editing bot/) so that ack_latency.py
--listener-threads N can show what that one setting changes. Used by benchlib.start_bot.
"""

from __future__ import annotations

import functools
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from slack_bolt import App  # noqa: E402

import bot.app  # noqa: E402
from bot.cli import main  # noqa: E402

threads = int(os.environ.get("BENCH_LISTENER_THREADS", "5"))
bot.app.App = functools.partial(  # type: ignore[misc]
    App, listener_executor=ThreadPoolExecutor(max_workers=threads, thread_name_prefix="listener")
)

if __name__ == "__main__":
    sys.exit(main(["serve"]))
