"""`pitr-bot audit --format csv|jsonl`: what an auditor gets, safe to open, at flat memory."""

from __future__ import annotations

import csv
import io
import json
import tracemalloc
from datetime import UTC, datetime, timedelta

from bot.audit_export import COLUMNS, rows, safe_cell, write
from bot.cli import main
from bot.restores import RestoreRequest, State
from bot.store import AuditEvent
from bot.store.sqlite import SqliteStore

NOW = datetime(2026, 11, 27, 3, 0, tzinfo=UTC)
HOSTILE_REASON = 'bad deploy, "v2", rolled\nback =HYPERLINK("http://evil","x")'


def request(**kw) -> RestoreRequest:
    base = dict(
        source="prod:orders@eu-west-1",
        target="orders-before",
        requester="U1",
        channel="C1",
        restore_at=NOW - timedelta(minutes=25),
        created_at=NOW,
        expires_at=NOW + timedelta(hours=1),
        reason=HOSTILE_REASON,
    )
    base.update(kw)
    return RestoreRequest(**base)


def test_safe_cell_escapes_what_a_spreadsheet_would_run():
    for text in ("=1+1", "+1", "-2", "@SUM(A1)", "\tx", "\rx"):
        assert safe_cell(text) == "'" + text
    for text in ("orders", "", "1-2", "a=b", "'quoted"):
        assert safe_cell(text) == text


def test_csv_with_commas_quotes_newlines_and_formulas_reads_back_the_same(tmp_path):
    store = SqliteStore(str(tmp_path / "state.db"))
    req = request()
    store.add(req)
    approved = req.advance(State.APPROVED, NOW, approvals=("U2",), decided_by="U2")
    store.save(req, approved)
    store.audit(AuditEvent(NOW, "requested", req.id, "U1", "C1", req.source, "=cmd|' /C calc'!A0"))
    store.audit(AuditEvent(NOW, "approved", req.id, "@U2", "C1", req.source, '-2+3, "x"\r\ny'))
    store.audit(AuditEvent(NOW, "refused", None, "U3", "C1", "users", "plain"))

    out = io.StringIO(newline="")
    assert write(out, "csv", rows(store)) == 3
    parsed = list(csv.reader(io.StringIO(out.getvalue(), newline="")))
    assert parsed[0] == list(COLUMNS)
    got = [dict(zip(COLUMNS, line, strict=True)) for line in parsed[1:]]
    assert len(got) == 3
    first, second, third = got
    assert first["detail"] == "'=cmd|' /C calc'!A0"
    assert first["reason"] == HOSTILE_REASON  # starts with "b": kept as it is, newline and all
    assert first["account"] == "prod" and first["region"] == "eu-west-1"
    assert first["table"] == "prod:orders@eu-west-1" and first["target_table"] == "orders-before"
    assert first["instant"] == (NOW - timedelta(minutes=25)).isoformat()
    assert first["requester"] == "U1" and first["approvers"] == "U2"
    assert second["actor"] == "'@U2"
    assert second["detail"] == '\'-2+3, "x"\r\ny'
    assert third["restore_id"] == "" and third["table"] == "users" and third["account"] == ""
    # Every cell of every row is safe to open.
    for line in parsed[1:]:
        assert not any(cell.startswith(("=", "+", "-", "@", "\t", "\r")) for cell in line)
    store.close()


def test_jsonl_keeps_values_as_they_are(tmp_path):
    store = SqliteStore(str(tmp_path / "state.db"))
    req = request()
    store.add(req)
    store.audit(AuditEvent(NOW, "requested", req.id, "U1", "C1", req.source, "=1+1"))
    out = io.StringIO()
    write(out, "jsonl", rows(store))
    (line,) = out.getvalue().splitlines()
    record = json.loads(line)
    assert record["detail"] == "=1+1" and record["reason"] == HOSTILE_REASON
    assert set(record) == set(COLUMNS)
    store.close()


def test_cli_exports_csv_between_since_and_until(tmp_path, monkeypatch, capsys):
    state = tmp_path / "state.db"
    store = SqliteStore(str(state))
    for minute in range(4):
        at = NOW + timedelta(minutes=minute)
        store.audit(AuditEvent(at, f"e{minute}", None, "U1", "C1", "orders", "-x"))
    store.close()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PITR_BOT_STATE", f"sqlite:///{state}")
    since = (NOW + timedelta(minutes=1)).isoformat()
    until = (NOW + timedelta(minutes=3)).strftime("%Y-%m-%dT%H:%M:%S")  # no zone: UTC
    assert main(["audit", "--format", "csv", "--since", since, "--until", until]) == 0
    parsed = list(csv.reader(io.StringIO(capsys.readouterr().out, newline="")))
    assert [line[1] for line in parsed[1:]] == ["e1", "e2"]
    assert {line[COLUMNS.index("detail")] for line in parsed[1:]} == {"'-x"}

    assert main(["audit", "--until", "soon"]) == 2
    assert "--until" in capsys.readouterr().err


class Sink(io.TextIOBase):
    """Where the export goes: counts what is written, keeps nothing."""

    def __init__(self):
        self.chars = 0

    def write(self, text: str) -> int:
        self.chars += len(text)
        return len(text)


def fill(store: SqliteStore, count: int) -> None:
    """`count` entries, ten per request id (more ids than the request cache holds)."""
    rows_ = (
        (
            (NOW + timedelta(seconds=i)).isoformat(),
            "approved",
            f"r{i // 10:08d}",
            "U2",
            "C1",
            "prod:orders@eu-west-1",
            'reason, with a comma and a "quote" ' * 3,
        )
        for i in range(count)
    )
    with store._lock:
        store._db.execute("BEGIN")
        store._db.executemany(
            "INSERT INTO audit (at, event, restore_id, actor, channel, tbl, detail) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            rows_,
        )
        store._db.execute("COMMIT")


def peak_export_bytes(store: SqliteStore, fmt: str) -> tuple[int, int]:
    sink = Sink()
    tracemalloc.start()
    try:
        written = write(sink, fmt, rows(store))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return written, peak


def test_exporting_100k_entries_takes_no_more_memory_than_10k(tmp_path):
    fmt = "csv"  # JSON Lines goes through the same rows()
    small, large = SqliteStore(str(tmp_path / "small.db")), SqliteStore(str(tmp_path / "big.db"))
    fill(small, 10_000)
    fill(large, 100_000)
    small_count, small_peak = peak_export_bytes(small, fmt)
    large_count, large_peak = peak_export_bytes(large, fmt)
    assert (small_count, large_count) == (10_000, 100_000)
    # Ten times the entries, the same memory: one page and a bounded cache, never the trail.
    # (Holding the entries would take ten times the small peak, tens of megabytes.)
    assert large_peak < small_peak * 1.5, (small_peak, large_peak)
    assert large_peak < 8 * 1024 * 1024, large_peak
    small.close()
    large.close()
