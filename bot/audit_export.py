"""`pitr-bot audit --format csv|jsonl`: every entry of the audit trail, for auditors.

Streams: entries come from the store a page at a time (Store.audit_pages) and each row is
written as soon as it is read, so exporting years of entries holds one page, plus a small
bounded cache of the requests they belong to, never the whole trail.

A row joins the entry with its restore request (when it has one): the target table, the
account and region, the instant, the requester, the approvers and the reason, so an auditor
does not have to read the bot's state to know what was decided.
"""

from __future__ import annotations

import csv
import json
from collections import OrderedDict
from collections.abc import Iterator
from datetime import datetime
from typing import TextIO

from bot.restores import RestoreRequest
from bot.store import AuditEvent, Store
from bot.tableref import RefError, parse_ref

COLUMNS = (
    "at",
    "event",
    "restore_id",
    "actor",
    "channel",
    "table",
    "account",
    "region",
    "target_table",
    "instant",
    "requester",
    "approvers",
    "decided_by",
    "state",
    "break_glass",
    "reason",
    "detail",
)
# The prefix in an audit entry's detail that marks a break-glass self-approval.
BREAK_GLASS = "break-glass"
# A spreadsheet treats a cell starting with one of these as a formula (CSV injection, OWASP).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
CACHE_REQUESTS = 512


def safe_cell(value: str) -> str:
    """A cell a spreadsheet shows as text: a leading `'` where it would start a formula."""
    return "'" + value if value.startswith(FORMULA_STARTS) else value


class _Requests:
    """The requests entries belong to, a bounded number remembered (entries of one request
    are written close together, so a small cache saves nearly every read)."""

    def __init__(self, store: Store, size: int = CACHE_REQUESTS):
        self.store = store
        self.size = size
        self.cache: OrderedDict[str, RestoreRequest | None] = OrderedDict()

    def get(self, restore_id: str | None) -> RestoreRequest | None:
        if not restore_id:
            return None
        if restore_id in self.cache:
            self.cache.move_to_end(restore_id)
            return self.cache[restore_id]
        try:
            found = self.store.get(restore_id)
        except Exception:  # noqa: BLE001 - a drill's or job's id, or an unreadable record
            found = None
        self.cache[restore_id] = found
        if len(self.cache) > self.size:
            self.cache.popitem(last=False)
        return found


def _place(table: str) -> tuple[str, str]:
    """(account alias, region) of a stored table reference; "" is the bot's own."""
    try:
        ref = parse_ref(table)
    except RefError:
        return "", ""
    return ref.account or "", ref.region or ""


def row_of(event: AuditEvent, req: RestoreRequest | None) -> dict[str, str]:
    table = event.table or (req.source if req else "") or ""
    account, region = _place(table)
    detail = event.detail or ""
    return {
        "at": event.at.isoformat(),
        "event": event.event,
        "restore_id": event.restore_id or "",
        "actor": event.actor or "",
        "channel": event.channel or "",
        "table": table,
        "account": account,
        "region": region,
        "target_table": req.target if req else "",
        "instant": (req.restore_at.isoformat() if req.restore_at else "latest") if req else "",
        "requester": req.requester if req else "",
        "approvers": " ".join(req.approvals) if req else "",
        "decided_by": (req.decided_by or "") if req else "",
        "state": req.state.value if req else "",
        "break_glass": "yes" if detail.startswith(BREAK_GLASS) else "",
        "reason": req.reason if req else "",
        "detail": detail,
    }


def rows(
    store: Store,
    since: datetime | None = None,
    until: datetime | None = None,
    table: str | None = None,
    page_size: int = 1000,
) -> Iterator[dict[str, str]]:
    requests = _Requests(store)
    for page in store.audit_pages(since=since, until=until, page_size=page_size):
        for event in page:
            if table is None or event.table == table:
                yield row_of(event, requests.get(event.restore_id))


def write(out: TextIO, fmt: str, records: Iterator[dict[str, str]]) -> int:
    """Write `records` as CSV (a header, then one escaped row each) or JSON Lines."""
    count = 0
    if fmt == "csv":
        writer = csv.writer(out, quoting=csv.QUOTE_MINIMAL, lineterminator="\r\n")
        writer.writerow(COLUMNS)
        for record in records:
            writer.writerow([safe_cell(record[c]) for c in COLUMNS])
            count += 1
        return count
    for record in records:
        # JSON is data, not a spreadsheet: values as they are.
        out.write(json.dumps(record, ensure_ascii=False) + "\n")
        count += 1
    return count
