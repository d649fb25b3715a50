"""Shared helpers for the pitr-bot benchmarks (not a benchmark itself).

Everything here runs the *shipped* bot: `python -m bot serve` in a child process, configured
only through its environment, talking to FakeSlack (SLACK_API_URL) and to moto behind the
AwsSimulator proxy (AWS_ENDPOINT_URL). Nothing in bot/ is patched. The process handling is the
tests' own (tests/e2e/process.py), so the benchmarks and the tests start the bot the same way.
"""

from __future__ import annotations

import json
import math
import os
import platform
import re
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
for _p in (str(REPO), str(REPO / "tests")):
    if _p not in sys.path:
        sys.path.insert(0, _p)

from e2e.process import BotProcess, base_env, free_port, start_bot_process  # noqa: E402
from support.aws_sim import AwsSimulator, _table_name  # noqa: E402
from support.fake_slack import Call, FakeSlack  # noqa: E402
from support.signed import SlackSender, block_action_body, slash_command_body  # noqa: E402

SECRET = "bench-signing-secret"  # noqa: S105 - a benchmark secret
TOKEN = "xoxb-bench-token"  # noqa: S105
APPROVE = "pitr_approve"
DENY = "pitr_deny"
CLK_TCK = os.sysconf("SC_CLK_TCK")

__all__ = [
    "APPROVE",
    "DENY",
    "REPO",
    "SECRET",
    "TOKEN",
    "BotProc",
    "Call",
    "FakeSlack",
    "ProcSampler",
    "SlackSender",
    "TimedSim",
    "account_id",
    "accounts_for",
    "accounts_policy",
    "approve_cards",
    "ask_for_cards",
    "broadcast_times",
    "is_broadcast",
    "request_cards",
    "wait_broadcasts",
    "card_of",
    "cpu_seconds",
    "median",
    "print_machine",
    "start_fake_slack",
    "status_kb",
    "free_port",
    "wait_cards",
    "machine",
    "pct",
    "print_table",
    "start_bot",
]


# -- numbers & output ------------------------------------------------------------------------
def pct(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100); NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(-(-q * len(ordered) // 100))))
    return ordered[rank - 1]


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def print_table(title: str, rows: Iterable[Sequence[Any]], header: Sequence[str]) -> None:
    """A plain Markdown table (pastes straight into docs/performance.md)."""
    rows = [[str(c) for c in r] for r in rows]
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    print(f"\n### {title}\n")
    print("| " + " | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in rows:
        print("| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |")
    sys.stdout.flush()


def machine() -> dict[str, str]:
    cpu = platform.processor() or "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return {
        "cores (nproc)": str(os.cpu_count()),
        "cpu": cpu,
        "python": platform.python_version(),
        "date (UTC)": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
        "loadavg at start": load,
    }


def print_machine() -> None:
    print_table("machine", machine().items(), ["what", "value"])


# -- simulators --------------------------------------------------------------------------------
class TimedSim(AwsSimulator):
    """AwsSimulator that also remembers *when* things happened, in wall-clock seconds.

    - `restored_at_wall[target]`: when the proxy answered RestoreTableToPointInTime;
    - `active_at(target)`: the first instant the proxy reports the table ACTIVE;
    - `describes`: (wall time, table) of every DescribeTable request.
    """

    def __init__(self) -> None:
        super().__init__()
        self.restored_at_wall: dict[str, float] = {}
        self.describes: list[tuple[float, str]] = []
        self._bench_lock = threading.Lock()
        self._in_account = ""  # create_table_in: the moto account of the next direct client
        # The proxy keeps monotonic times; convert once, here.
        self._wall_minus_mono = time.time() - time.monotonic()

    def _on_request(self, op: str, body: dict[str, Any]) -> Any:
        if op == "DescribeTable":
            with self._bench_lock:
                self.describes.append((time.time(), _table_name(body.get("TableName"))))
        return super()._on_request(op, body)

    def _rewrite(self, op: str, req: dict[str, Any], resp: dict[str, Any]) -> bool:
        changed = super()._rewrite(op, req, resp)
        if op == "RestoreTableToPointInTime" and changed:
            desc = resp.get("TableDescription") or {}
            target = str(desc.get("TableName") or req.get("TargetTableName"))
            with self._lock:
                mono = self._restored_at[target]
            with self._bench_lock:
                self.restored_at_wall[target] = mono + self._wall_minus_mono
        return changed

    def client(self, direct: bool = False, max_attempts: int | None = None) -> Any:
        if direct and self._in_account:
            return self._account_client(self._in_account)
        return super().client(direct, max_attempts)

    def create_table_in(self, account: str, name: str, pitr: bool = True, items: int = 3) -> None:
        """create_table, in moto account `account` (12 digits) instead of the default one."""
        self._in_account = account
        try:
            self.create_table(name, pitr=pitr, items=items)
        finally:
            self._in_account = ""

    def _account_client(self, account: str) -> Any:
        """DynamoDB on moto with a role assumed in `account`: moto files the resources of
        assumed-role credentials under the role's account (how the bot reaches `accounts:`)."""
        import boto3

        creds = boto3.client(
            "sts",
            region_name="us-east-1",
            endpoint_url=self.moto_url,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",  # noqa: S106
        ).assume_role(RoleArn=role_arn(account), RoleSessionName="bench-setup")["Credentials"]
        return boto3.client(
            "dynamodb",
            region_name="us-east-1",
            endpoint_url=self.moto_url,
            aws_access_key_id=creds["AccessKeyId"],
            aws_secret_access_key=creds["SecretAccessKey"],
            aws_session_token=creds["SessionToken"],
        )

    def tables_per_account(self, accounts: int, pattern: re.Pattern[str]) -> str:
        """How many tables named by `pattern` each bench account holds, e.g. "50, 50"."""
        counts = []
        for n in range(accounts):
            pages = self._account_client(account_id(n)).get_paginator("list_tables").paginate()
            names = [t for page in pages for t in page["TableNames"]]
            counts.append(str(sum(1 for t in names if pattern.fullmatch(t))))
        return ", ".join(counts)

    def active_at(self, target: str) -> float | None:
        started = self.restored_at_wall.get(target)
        if started is None:
            return None
        return started + self.creating_for.get(target, self.creating_seconds)

    def first_describe_after(self, table: str, when: float) -> float | None:
        """The first DescribeTable on `table` at or after `when` (wall clock), if any."""
        with self._bench_lock:
            return next((at for at, t in self.describes if t == table and at >= when), None)

    def describe_count(
        self,
        tables: set[str],
        after: dict[str, float] | None = None,
        before: dict[str, float] | None = None,
    ) -> int:
        """DescribeTable calls on `tables`, optionally only after[table] <= at <= before[table]."""
        with self._bench_lock:
            rows = list(self.describes)
        return sum(
            1
            for at, table in rows
            if table in tables
            and (after is None or at >= after.get(table, float("inf")))
            and (before is None or at <= before.get(table, float("inf")))
        )


# -- several AWS accounts (policy `accounts:`) -------------------------------------------------
RESTORES_PER_ACCOUNT = 50  # AWS (and the bot) run at most 50 restores at once per account


def accounts_for(restores: int) -> int:
    """How many accounts hold `restores` restores running at once."""
    return max(1, math.ceil(restores / RESTORES_PER_ACCOUNT))


def account_id(n: int) -> str:
    """The 12-digit moto account id of bench account `acc<n>`."""
    return f"{200000000000 + n:012d}"


def role_arn(account: str) -> str:
    return f"arn:aws:iam::{account}:role/pitr-bot"


def accounts_policy(n: int) -> dict[str, Any]:
    """A policy with accounts acc0..acc<n-1>, each a role in its own moto account."""
    return {"accounts": {f"acc{i}": {"role_arn": role_arn(account_id(i))} for i in range(n)}}


class TsFakeSlack(FakeSlack):
    """FakeSlack that also records the ts it answered a chat.postMessage with (args["_ts"])."""

    def _answer(self, method: str, args: dict[str, Any]) -> dict[str, Any]:
        resp = super()._answer(method, args)
        if method == "chat.postMessage" and "ts" in resp:
            args["_ts"] = resp["ts"]  # the same dict the recorded Call holds
        return resp


def start_fake_slack() -> FakeSlack:
    fake = TsFakeSlack().start()
    fake.users = {
        "U1": {"name": "requester", "tz": "UTC"},
        "U2": {"name": "approver", "tz": "UTC"},
        "U3": {"name": "other", "tz": "UTC"},
    }
    return fake


def card_of(call: Call) -> tuple[str, str, str] | None:
    """(restore id, target table, card ts) from a card chat.postMessage, else None."""
    if call.failed or call.args.get("thread_ts"):
        return None
    restore_id = None
    for block in call.args.get("blocks") or []:
        if block.get("type") == "actions":
            for element in block.get("elements", []):
                if element.get("action_id") == APPROVE:
                    restore_id = element.get("value")
    if not restore_id:
        return None
    return restore_id, str(call.args.get("text", "")), str(call.args.get("_ts", ""))


# -- the bot process ---------------------------------------------------------------------------
@dataclass
class BotProc(BotProcess):
    """The tests' BotProcess (tests/e2e/process.py), plus what a benchmark measures from."""

    spawned_at: float = 0.0
    _tmp: Any = field(default=None, repr=False)

    @property
    def pid(self) -> int:
        return int(self.proc.pid)

    @property
    def workdir(self) -> Path:
        return self.stderr_path.parent

    def sender(self, timeout: float = 10) -> SlackSender:
        return SlackSender(self.url, SECRET, timeout=timeout)

    def wait_healthy(self, timeout: float = 30, interval: float = 0.01) -> float:  # type: ignore[override]
        """Seconds from spawn to the first /healthz 200."""
        try:
            super().wait_healthy(timeout, interval)
        except AssertionError as exc:
            raise RuntimeError(str(exc)) from None
        return time.monotonic() - self.spawned_at

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                self.terminate(timeout=15)
            except AssertionError:
                pass  # killed after the timeout
        if self._tmp is not None:
            self._tmp.cleanup()


def start_bot(
    fake: FakeSlack,
    sim: AwsSimulator | None,
    poll_seconds: float | None = None,
    extra_env: dict[str, str] | None = None,
    policy: dict[str, Any] | None = None,
) -> BotProc:
    """Spawn `python -m bot serve` in a fresh temp dir (Settings reads ./.env from the cwd);
    `policy`, if given, is its policy file (written as JSON, which is YAML)."""
    tmp = tempfile.TemporaryDirectory(prefix="pitr-bench-")
    workdir = Path(tmp.name)
    if policy is not None:
        (workdir / "policy.yml").write_text(json.dumps(policy), encoding="utf-8")
        extra_env = {**(extra_env or {}), "PITR_BOT_POLICY": str(workdir / "policy.yml")}
    port = free_port()
    env = base_env(
        SLACK_BOT_TOKEN=TOKEN,
        SLACK_SIGNING_SECRET=SECRET,
        SLACK_API_URL=fake.api_url,
        PITR_BOT_STATE=f"sqlite:///{workdir / 'state.db'}",
        PITR_BOT_PORT=str(port),
        PITR_BOT_HOST="127.0.0.1",
    )
    if poll_seconds is not None:
        env["PITR_BOT_POLL_SECONDS"] = str(poll_seconds)
    env.update(extra_env or {})
    if sim is not None:
        env.update(sim.env())
    else:  # no AWS calls expected; keep boto3 from looking for real credentials
        env.update(
            AWS_DEFAULT_REGION="us-east-1",
            AWS_ACCESS_KEY_ID="testing",
            AWS_SECRET_ACCESS_KEY="testing",  # noqa: S106
            AWS_EC2_METADATA_DISABLED="true",
        )
    spawned = time.monotonic()
    started = start_bot_process(env, workdir, port)
    return BotProc(
        started.proc, port, started.stdout_path, started.stderr_path, spawned_at=spawned, _tmp=tmp
    )


# -- asking for approval cards (the set-up of several benchmarks) -----------------------------
def ask_for_cards(
    bot: BotProc,
    fake: FakeSlack,
    source: str,
    targets: Sequence[str],
    pattern: re.Pattern[str],
    timeout: float,
) -> tuple[list[int], dict[str, tuple[str, str]]]:
    """/pitr-restore SOURCE TARGET latest for each target, four at a time, then wait for the
    cards: (the HTTP statuses, target -> (restore id, card ts))."""
    return request_cards(bot, fake, [(source, t) for t in targets], pattern, timeout)


def request_cards(
    bot: BotProc,
    fake: FakeSlack,
    jobs: Sequence[tuple[str, str]],
    pattern: re.Pattern[str],
    timeout: float,
) -> tuple[list[int], dict[str, tuple[str, str]]]:
    """ask_for_cards for (source, target) pairs from several sources."""
    respond_url = fake.response_url("bench")
    sender = bot.sender()

    def ask(job: tuple[str, str]) -> int:
        body = slash_command_body(
            "/pitr-restore", f"{job[0]} {job[1]} latest", "U1", "C1", respond_url
        )
        return sender.post(body).status

    with ThreadPoolExecutor(max_workers=4) as pool:
        statuses = list(pool.map(ask, jobs))
    return statuses, wait_cards(fake, {t for _, t in jobs}, pattern, timeout)


def approve_cards(
    bot: BotProc, fake: FakeSlack, cards: dict[str, tuple[str, str]], workers: int = 8
) -> list[int]:
    """A signed Approve click by U2 on every card, `workers` at a time: the HTTP statuses."""
    respond_url = fake.response_url("bench")
    sender = bot.sender()

    def approve(card: tuple[str, str]) -> int:
        restore_id, ts = card
        return sender.post(
            block_action_body(APPROVE, restore_id, "U2", "C1", ts, respond_url)
        ).status

    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(approve, cards.values()))


def is_broadcast(call: Call) -> bool:
    """The bot's ACTIVE (or FAILED) notice: a thread reply also sent to the channel."""
    return (
        call.method == "chat.postMessage"
        and not call.failed
        and call.args.get("reply_broadcast") in (True, "true", "1", "True")
    )


def broadcast_times(fake: FakeSlack, pattern: re.Pattern[str]) -> dict[str, float]:
    """target (found by `pattern`) -> when its ACTIVE broadcast reached FakeSlack."""
    out: dict[str, float] = {}
    for call in fake.calls("chat.postMessage"):
        if is_broadcast(call):
            text = str(call.args.get("text", "")) + str(call.args.get("blocks", ""))
            match = pattern.search(text)
            if match and "ACTIVE" in text:
                out.setdefault(match.group(0), call.at)
    return out


def wait_broadcasts(
    fake: FakeSlack, targets: set[str], pattern: re.Pattern[str], timeout: float
) -> dict[str, float]:
    """broadcast_times once every target in `targets` was announced; RuntimeError if not."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        told = broadcast_times(fake, pattern)
        if targets <= set(told):
            return told
        time.sleep(0.05)
    raise RuntimeError(f"{len(targets - set(broadcast_times(fake, pattern)))} never announced")


def wait_cards(
    fake: FakeSlack,
    targets: set[str],
    pattern: re.Pattern[str],
    timeout: float,
    quiet: bool = False,
) -> dict[str, tuple[str, str]]:
    """target -> (restore id, card ts) for every posted card among `targets` (`pattern` finds
    a target's name in a card's text); RuntimeError if some are missing, unless `quiet`."""
    deadline = time.monotonic() + timeout
    found: dict[str, tuple[str, str]] = {}
    while time.monotonic() < deadline:
        for call in fake.calls("chat.postMessage"):
            card = card_of(call)
            if card is None:
                continue
            match = pattern.search(card[1])
            if match and match.group(0) in targets and card[2]:
                found[match.group(0)] = (card[0], card[2])
        if len(found) >= len(targets):
            return found
        time.sleep(0.1)
    if not quiet:
        raise RuntimeError(f"only {len(found)}/{len(targets)} cards were posted")
    return found


# -- /proc sampling ----------------------------------------------------------------------------
def cpu_seconds(pid: int) -> float:
    """utime + stime of `pid` (its threads included), in seconds."""
    raw = Path(f"/proc/{pid}/stat").read_text()
    fields = raw[raw.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # fields 14 and 15 of stat(5)


def status_kb(pid: int, key: str) -> int:
    """A kB field of /proc/<pid>/status (VmRSS, VmHWM, ...)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


class ProcSampler:
    """CPU share over a window and the RSS peak, sampled every `interval` seconds."""

    def __init__(self, pid: int, interval: float = 0.2):
        self.pid = pid
        self.interval = interval
        self.rss_peak_kb = 0
        self.rss_samples: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="proc-sampler", daemon=True)
        self.cpu0 = self.cpu1 = 0.0
        self.t0 = self.t1 = 0.0

    def start(self) -> ProcSampler:
        self.cpu0, self.t0 = cpu_seconds(self.pid), time.monotonic()
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                rss = status_kb(self.pid, "VmRSS")
            except OSError:
                return
            self.rss_samples.append(rss)
            self.rss_peak_kb = max(self.rss_peak_kb, rss)

    def stop(self) -> ProcSampler:
        self.cpu1, self.t1 = cpu_seconds(self.pid), time.monotonic()
        self._stop.set()
        self._thread.join(timeout=2)
        return self

    @property
    def cpu_share(self) -> float:
        """Fraction of one core used over the window."""
        return (self.cpu1 - self.cpu0) / max(self.t1 - self.t0, 1e-9)

    @property
    def cpu_used(self) -> float:
        return self.cpu1 - self.cpu0

    @property
    def wall(self) -> float:
        return self.t1 - self.t0


def dump_json(path: str | None, data: dict[str, Any]) -> None:
    if path:
        Path(path).write_text(json.dumps(data, indent=2, default=str))
