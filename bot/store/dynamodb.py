"""The shared store: one DynamoDB table, for several replicas (PITR_BOT_STATE=dynamodb://TABLE).

Compare-and-set is a conditional write on `version`; a transition, the announcements it owes
and its audit entries go in one TransactWriteItems, so a crash can never keep one without the
other. The table is
created on first start (on-demand billing, TTL on old records).

Item layout (pk / sk):
  R#<id> / R           a request: its JSON document plus the attributes we query on, and
                       its scheduling fields (bot/store/due.py schedule_fields) for the due
                       scan and the start queue, read without the document
  O / <time>#<uuid>    an outbox item, deleted once sent
  A / <time>#<uuid>    an audit event
  N#<key> / N          a Slack request already seen (replay protection), TTL at its window's end
  D#<id> / D           a restore drill; its `state` and `source` attributes are prefixed
                       `DRILL#` so the same two indexes serve drills without mixing them up
  J#<id> / J           an item job (compare / copy back / undo); `state` prefixed `JOB#`
  L#<account> / L      an account's restore slots: the ids of its running restores (a set)
GSI `by_state` (state, created_at) finds requests to track; GSI `by_source` serves /pitr-status.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError

from bot.aws import default_aws
from bot.batches.model import MAX_RESTORES_PER_ACCOUNT, SlotMove
from bot.restores import FINAL, RestoreRequest, State, utcnow
from bot.store.codec import SavesThroughSaveAll, from_record, prepare, to_record
from bot.store.due import SCHEDULE_ATTRIBUTES, due_of, schedule_fields, split_due
from bot.store.dynamodb_docs import KEEP_FINISHED, SiblingDocs, _conflict, _item, _plain
from bot.store.records import AuditEvent, Change, OutboxItem, RequestExists, StoreMissing

log = logging.getLogger(__name__)

KEEP_AUDIT = timedelta(days=400)
IN_FLIGHT_ORDER = (State.APPROVED, State.RESTORING)
# TransactWriteItems takes up to 100 actions (raised from 25 in 2022; API reference).
MAX_TRANSACTION_ITEMS = 100


class DynamoStore(SiblingDocs, SavesThroughSaveAll):
    def __init__(self, table: str, client: Any | None = None, create: bool = True):
        self.table = table
        self.client = client or default_aws().client("dynamodb")
        self._ensure_table(create)

    # -- requests ---------------------------------------------------------------------------
    def add(
        self,
        req: RestoreRequest,
        announce: Sequence[str] = (),
        audit: Sequence[AuditEvent] = (),
    ) -> None:
        if not self._doc_add(self._request_item(req), req.id, announce, audit):
            raise RequestExists(req.id)

    def get(self, restore_id: str) -> RestoreRequest | None:
        resp = self.client.get_item(
            TableName=self.table,
            Key=_item({"pk": f"R#{restore_id}", "sk": "R"}),
            ConsistentRead=True,  # CAS decisions must see the latest version
        )
        item = resp.get("Item")
        return from_record(json.loads(_plain(item)["doc"])) if item else None

    def save_all(
        self, changes: Sequence[Change], audit: Sequence[AuditEvent] = ()
    ) -> list[RestoreRequest] | None:
        stored, move = prepare(changes)
        items: list[dict[str, Any]] = []
        for change, new in zip(changes, stored, strict=True):
            items.append(self._cas_put(self._request_item(new), change.old.version))
            items += self._outbox_puts(change.old.id, change.announce)
        if move is not None:
            items.append(self._slot_update(move))
        items += self._audit_puts(audit)
        if len(items) > MAX_TRANSACTION_ITEMS:
            raise ValueError(f"{len(items)} writes in one transaction; DynamoDB takes 100")
        try:
            self._transact(items)
        except ClientError as exc:
            if _conflict(exc):
                return None
            raise
        return stored

    def _slot_update(self, move: SlotMove) -> dict[str, Any]:
        """The account's slot record `L#<account>`/`L` holds the ids of its running restores
        (a string set): taking a slot adds one if fewer than 50 are held, freeing one removes
        it (a no-op for a restore that holds none)."""
        update: dict[str, Any] = {
            "TableName": self.table,
            "Key": _item({"pk": f"L#{move.account}", "sk": "L"}),
            "ExpressionAttributeNames": {"#h": "holders"},
        }
        ids = {"SS": [move.restore_id]}
        if move.delta < 0:
            update["UpdateExpression"] = "DELETE #h :id"
            update["ExpressionAttributeValues"] = {":id": ids}
        else:
            update["UpdateExpression"] = "ADD #h :id"
            update["ConditionExpression"] = (
                "attribute_not_exists(#h) OR size(#h) < :max OR contains(#h, :rid)"
            )
            update["ExpressionAttributeValues"] = {
                ":id": ids,
                ":rid": {"S": move.restore_id},
                ":max": {"N": str(MAX_RESTORES_PER_ACCOUNT)},
            }
        return {"Update": update}

    def find(
        self,
        states: Iterable[State] | None = None,
        source: str | None = None,
        limit: int = 100,
    ) -> list[RestoreRequest]:
        found: list[RestoreRequest] = []
        if states is not None:
            wanted = list(states)
            for state in wanted:
                found += self._query_index("by_state", "state", state.value, limit)
            if source is not None:
                found = [r for r in found if r.source == source]
        elif source is not None:
            found = self._query_index("by_source", "source", source, limit)
        else:
            found = self._scan_requests(limit)
        found.sort(key=lambda r: r.created_at, reverse=True)
        return found[:limit]

    def due(
        self, now: datetime, owner: str, limit: int = 1000
    ) -> tuple[list[RestoreRequest], datetime | None]:
        # Only the scheduling attributes are read (no document parsed); the due ones are
        # then read consistently, as the SQLite store does.
        rows = [(row[0], due_of(row[:4], owner)) for row in self._in_flight_rows()]
        ids, upcoming = split_due(rows, now, limit)
        found = [self.get(restore_id) for restore_id in ids]
        return [r for r in found if r is not None], upcoming

    def account_load(self, account: str) -> tuple[int, int]:
        resp = self.client.get_item(
            TableName=self.table,
            Key=_item({"pk": f"L#{account}", "sk": "L"}),
            ConsistentRead=True,
        )
        running = len(_plain(resp.get("Item", {})).get("holders", ()))
        approved = sum(1 for row in self._in_flight_rows([State.APPROVED]) if row[4] == account)
        return running, approved

    def _in_flight_rows(self, states: Sequence[State] = IN_FLIGHT_ORDER) -> Iterator[tuple]:
        """(id, check_at, lease_owner, lease_until, account) of each in-flight request from
        the by_state index, projected: no document is read. A request last written by an
        earlier version (without them) is read and its fields computed."""
        names = {f"#{n}": n for n in ("pk", "source", *SCHEDULE_ATTRIBUTES)}
        for state in states:
            kwargs: dict[str, Any] = {
                "TableName": self.table,
                "IndexName": "by_state",
                "KeyConditionExpression": "#state = :v",
                "ProjectionExpression": ", ".join(names),
                "ExpressionAttributeNames": {**names, "#state": "state"},
                "ExpressionAttributeValues": _item({":v": state.value}),
            }
            while True:
                resp = self.client.query(**kwargs)
                for raw in resp.get("Items", []):
                    row = _plain(raw)
                    rid = row["pk"].removeprefix("R#")
                    if "check_at" not in row:
                        req = self.get(rid)
                        if req is None:
                            continue
                        row = schedule_fields(req)
                    yield (
                        rid,
                        _int(row.get("check_at")),
                        row.get("lease_owner"),
                        _int(row.get("lease_until")),
                        row.get("account", ""),
                    )
                if "LastEvaluatedKey" not in resp:
                    break
                kwargs["ExclusiveStartKey"] = resp["LastEvaluatedKey"]

    def _query_index(self, index: str, key: str, value: str, limit: int) -> list[RestoreRequest]:
        # Index reads are eventually consistent: re-read what we will act on.
        return [from_record(json.loads(d)) for d in self._query_docs(index, key, value, limit)]

    def _scan_requests(self, limit: int) -> list[RestoreRequest]:
        return [from_record(json.loads(d)) for d in self._scan_docs("R", limit)]

    def _request_item(self, req: RestoreRequest) -> dict[str, Any]:
        data: dict[str, Any] = {
            "pk": f"R#{req.id}",
            "sk": "R",
            "state": req.state.value,
            "source": req.source,
            "created_at": req.created_at.isoformat(),
            "version": req.version,
            "doc": json.dumps(to_record(req)),
            **schedule_fields(req),
        }
        if req.state in FINAL:
            data["expires_ttl"] = int(time.time() + KEEP_FINISHED.total_seconds())
        return _item(data)

    # -- outbox -----------------------------------------------------------------------------
    def _outbox_puts(self, restore_id: str, kinds: Sequence[str]) -> list[dict[str, Any]]:
        now = utcnow().isoformat()
        return [
            {
                "Put": {
                    "TableName": self.table,
                    "Item": _item(
                        {
                            "pk": "O",
                            # Same-transaction items keep their order through the index suffix.
                            "sk": f"{now}#{index:02d}#{uuid.uuid4().hex[:8]}",
                            "restore_id": restore_id,
                            "kind": kind,
                            "created_at": now,
                            "attempts": 0,
                        }
                    ),
                }
            }
            for index, kind in enumerate(kinds)
        ]

    def outbox_due(self, now: datetime, limit: int = 50) -> list[OutboxItem]:
        resp = self.client.query(
            TableName=self.table,
            KeyConditionExpression="pk = :o",
            ExpressionAttributeValues=_item({":o": "O"}),
            ConsistentRead=True,
            Limit=max(limit, 1) * 4,
        )
        items = []
        for raw in resp.get("Items", []):
            data = _plain(raw)
            next_at = datetime.fromisoformat(data["next_at"]) if data.get("next_at") else None
            if next_at is not None and next_at > now:
                continue
            items.append(
                OutboxItem(
                    id=data["sk"],
                    restore_id=data["restore_id"],
                    kind=data["kind"],
                    created_at=datetime.fromisoformat(data["created_at"]),
                    attempts=int(data.get("attempts", 0)),
                    next_at=next_at,
                    last_error=data.get("last_error"),
                )
            )
        return items[:limit]

    def outbox_claim(self, item_id: int | str, owner: str, until: datetime) -> bool:
        try:
            self.client.update_item(
                TableName=self.table,
                Key=_item({"pk": "O", "sk": str(item_id)}),
                UpdateExpression="SET claimed_by = :me, claimed_until = :until",
                ConditionExpression="attribute_exists(pk) AND (attribute_not_exists(claimed_until)"
                " OR claimed_until < :now OR claimed_by = :me)",
                ExpressionAttributeValues=_item(
                    {":me": owner, ":until": until.isoformat(), ":now": utcnow().isoformat()}
                ),
            )
        except ClientError as exc:
            if _conflict(exc):
                return False
            raise
        return True

    def outbox_done(self, item_id: int | str) -> None:
        self.client.delete_item(TableName=self.table, Key=_item({"pk": "O", "sk": str(item_id)}))

    def outbox_retry(self, item_id: int | str, next_at: datetime, error: str) -> None:
        self.client.update_item(
            TableName=self.table,
            Key=_item({"pk": "O", "sk": str(item_id)}),
            UpdateExpression="SET next_at = :n, last_error = :e, attempts = attempts + :one "
            "REMOVE claimed_until",
            ExpressionAttributeValues=_item(
                {":n": next_at.isoformat(), ":e": error[:500], ":one": 1}
            ),
        )

    # -- audit ------------------------------------------------------------------------------
    def audit(self, event: AuditEvent) -> None:
        self.client.put_item(**self._audit_puts([event])[0]["Put"])

    def _audit_puts(self, events: Sequence[AuditEvent]) -> list[dict[str, Any]]:
        return [
            {"Put": {"TableName": self.table, "Item": self._audit_item(e, index)}}
            for index, e in enumerate(events)
        ]

    def _audit_item(self, event: AuditEvent, index: int = 0) -> dict[str, Any]:
        data = {
            "pk": "A",
            # Entries of one write share a time; the index suffix keeps their order.
            "sk": f"{event.at.isoformat()}#{index:02d}#{uuid.uuid4().hex[:8]}",
            "expires_ttl": int(time.time() + KEEP_AUDIT.total_seconds()),
            **{k: v for k, v in event.to_json().items()},
        }
        data["tbl"] = data.pop("table")
        return _item(data)

    def audit_events(
        self, since: datetime | None = None, table: str | None = None, limit: int | None = None
    ) -> list[AuditEvent]:
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "pk = :a",
            "ExpressionAttributeValues": _item({":a": "A"}),
            "ScanIndexForward": limit is None,  # newest first when only the last few are wanted
        }
        if since is not None:
            kwargs["KeyConditionExpression"] += " AND sk >= :since"
            kwargs["ExpressionAttributeValues"].update(_item({":since": since.isoformat()}))
        if table is not None:
            kwargs["FilterExpression"] = "tbl = :t"
            kwargs["ExpressionAttributeValues"].update(_item({":t": table}))
        events: list[AuditEvent] = []
        while limit is None or len(events) < limit:
            resp = self.client.query(**kwargs)
            events += [_audit_event(raw) for raw in resp.get("Items", [])]
            if "LastEvaluatedKey" not in resp:
                break
            kwargs["ExclusiveStartKey"] = resp["LastEvaluatedKey"]
        if limit is not None:
            events = sorted(events[:limit], key=lambda e: e.at)
        return events

    def audit_pages(
        self,
        since: datetime | None = None,
        until: datetime | None = None,
        page_size: int = 1000,
    ) -> Iterator[list[AuditEvent]]:
        # The sort key starts with the entry's ISO time, so a range on it is a time range:
        # `sk < until` excludes an entry at `until` itself (its key is longer, so greater).
        values: dict[str, str] = {":a": "A"}
        condition = "pk = :a"
        if since is not None and until is not None:
            condition += " AND sk BETWEEN :since AND :until"
        elif since is not None:
            condition += " AND sk >= :since"
        elif until is not None:
            condition += " AND sk < :until"
        if since is not None:
            values[":since"] = since.isoformat()
        if until is not None:
            values[":until"] = until.isoformat()
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": condition,
            "ExpressionAttributeValues": _item(values),
            "Limit": page_size,
        }
        while True:
            resp = self.client.query(**kwargs)
            page = [_audit_event(raw) for raw in resp.get("Items", [])]
            if page:
                yield page
            if "LastEvaluatedKey" not in resp:
                return
            kwargs["ExclusiveStartKey"] = resp["LastEvaluatedKey"]

    # -- lifecycle --------------------------------------------------------------------------
    def first_use(self, key: str, until: datetime) -> bool:
        # TTL deletes late (up to days), so an expired record counts as absent.
        try:
            self.client.put_item(
                TableName=self.table,
                Item=_item({"pk": f"N#{key}", "sk": "N", "expires_ttl": int(until.timestamp())}),
                ConditionExpression="attribute_not_exists(pk) OR expires_ttl < :now",
                ExpressionAttributeValues=_item({":now": int(time.time())}),
            )
        except ClientError as exc:
            if _conflict(exc):
                return False
            raise
        return True

    def ping(self) -> None:
        self.client.describe_table(TableName=self.table)

    def close(self) -> None:
        pass

    def _transact(self, items: list[dict[str, Any]]) -> None:
        if len(items) == 1 and "Put" in items[0]:
            self.client.put_item(**items[0]["Put"])  # cheaper than a transaction of one
            return
        self.client.transact_write_items(TransactItems=items)

    def _ensure_table(self, create: bool = True) -> None:
        try:
            status = self.client.describe_table(TableName=self.table)["Table"]["TableStatus"]
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ResourceNotFoundException":
                raise
            if not create:
                region = self.client.meta.region_name
                raise StoreMissing(
                    f"no state table {self.table!r} in {region} (PITR_BOT_STATE="
                    f"dynamodb://{self.table}); check AWS_REGION and the account"
                ) from None
            log.info("creating state table %s", self.table)
            self._create_table()
            status = self._wait_active()
            self._enable_ttl()
        if status != "ACTIVE":
            self._wait_active()

    def _wait_active(self) -> str:
        deadline = time.monotonic() + 300
        while True:
            status = self.client.describe_table(TableName=self.table)["Table"]["TableStatus"]
            if status == "ACTIVE" or time.monotonic() > deadline:
                return status
            time.sleep(1)

    def _enable_ttl(self) -> None:
        try:
            self.client.update_time_to_live(
                TableName=self.table,
                TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires_ttl"},
            )
        except ClientError as exc:
            log.warning("could not enable TTL on %s: %s", self.table, exc)

    def _create_table(self) -> None:
        attrs = ["pk", "sk", "state", "source", "created_at"]
        try:
            self.client.create_table(
                TableName=self.table,
                BillingMode="PAY_PER_REQUEST",
                AttributeDefinitions=[{"AttributeName": a, "AttributeType": "S"} for a in attrs],
                KeySchema=[
                    {"AttributeName": "pk", "KeyType": "HASH"},
                    {"AttributeName": "sk", "KeyType": "RANGE"},
                ],
                GlobalSecondaryIndexes=[
                    _index("by_state", "state"),
                    _index("by_source", "source"),
                ],
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ResourceInUseException":
                raise  # another replica creating it at the same moment is fine


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


def _audit_event(raw: dict[str, Any]) -> AuditEvent:
    data = _plain(raw)
    return AuditEvent(
        at=datetime.fromisoformat(data["at"]),
        event=data["event"],
        restore_id=data.get("restore_id"),
        actor=data.get("actor"),
        channel=data.get("channel"),
        table=data.get("tbl"),
        detail=data.get("detail", ""),
    )


def _index(name: str, key: str) -> dict[str, Any]:
    return {
        "IndexName": name,
        "KeySchema": [
            {"AttributeName": key, "KeyType": "HASH"},
            {"AttributeName": "created_at", "KeyType": "RANGE"},
        ],
        "Projection": {"ProjectionType": "ALL"},
    }
