"""The shared store's documents: requests and the sibling flows' share one insert and one
compare-and-set path here. The sibling flows: drills (`D#id`/`D`) and item jobs
(`J#id`/`J`), each a versioned JSON document written with compare-and-set, in one transaction
with its outbox items and audit entries. Their `state` and `source` attributes are prefixed so
the table's two indexes serve them without mixing them with restores. Also the small codec
helpers bot/store/dynamodb.py shares.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from bot.drills.model import Drill, DrillState
from bot.items.jobs import FINAL as JOB_FINAL
from bot.items.jobs import ItemJob, JobState
from bot.restores import utcnow
from bot.store.records import AuditEvent

KEEP_FINISHED = timedelta(days=90)  # finished records are removed by TTL after this
DRILL = "DRILL#"  # prefix of a drill's indexed attributes
JOB = "JOB#"  # prefix of an item job's indexed attributes
_ser, _de = TypeSerializer(), TypeDeserializer()


def _item(data: dict[str, Any]) -> dict[str, Any]:
    return {k: _ser.serialize(v) for k, v in data.items() if v is not None}


def _plain(item: dict[str, Any]) -> dict[str, Any]:
    return {k: _de.deserialize(v) for k, v in item.items()}


def _conflict(exc: ClientError) -> bool:
    code = exc.response.get("Error", {}).get("Code")
    if code == "ConditionalCheckFailedException":
        return True
    if code == "TransactionCanceledException":
        reasons = exc.response.get("CancellationReasons", [])
        return any(r.get("Code") == "ConditionalCheckFailed" for r in reasons) or not reasons
    return False


def _doc_item(
    sk: str,
    doc_id: str,
    state: str,
    source: str,
    created_at: datetime,
    version: int,
    record: dict[str, Any],
    final: bool,
) -> dict[str, Any]:
    """A sibling flow's document (`D#id`/`D`, `J#id`/`J`); finished ones expire like requests."""
    data: dict[str, Any] = {
        "pk": f"{sk}#{doc_id}",
        "sk": sk,
        "state": state,
        "source": source,
        "created_at": created_at.isoformat(),
        "version": version,
        "doc": json.dumps(record),
    }
    if final:
        data["expires_ttl"] = int(time.time() + KEEP_FINISHED.total_seconds())
    return _item(data)


class SiblingDocs:
    """Mixed into DynamoStore, which provides `table`, `client`, `_transact`, `_outbox_puts`
    and `_audit_puts`."""

    table: str
    client: Any

    # -- sibling flows: drills (D#) and item jobs (J#), each a versioned document ----------
    # Their `state` and `source` are prefixed so the two indexes serve them without mixing
    # them with restores.
    def drill_add(
        self, drill: Drill, announce: Sequence[str] = (), audit: Sequence[AuditEvent] = ()
    ) -> bool:
        return self._doc_add(self._drill_item(drill), drill.id, announce, audit)

    def drill_get(self, drill_id: str) -> Drill | None:
        doc = self._doc_get(f"D#{drill_id}", "D")
        return Drill.from_record(json.loads(doc)) if doc else None

    def drill_save(
        self,
        old: Drill,
        new: Drill,
        announce: Sequence[str] = (),
        audit: Sequence[AuditEvent] = (),
    ) -> Drill | None:
        stored = replace(new, version=old.version + 1, updated_at=new.updated_at or utcnow())
        ok = self._doc_save(self._drill_item(stored), old.id, old.version, announce, audit)
        return stored if ok else None

    def drill_find(
        self,
        states: Iterable[DrillState] | None = None,
        source: str | None = None,
        limit: int = 100,
    ) -> list[Drill]:
        docs: list[str] = []
        if states is not None:
            for state in states:
                docs += self._query_docs("by_state", "state", f"{DRILL}{state.value}", limit)
        elif source is not None:
            docs += self._query_docs("by_source", "source", f"{DRILL}{source}", limit)
        else:
            docs += self._scan_docs("D", limit)
        found = [Drill.from_record(json.loads(doc)) for doc in docs]
        if source is not None:
            found = [d for d in found if d.source == source]
        found.sort(key=lambda d: d.created_at, reverse=True)
        return found[:limit]

    def job_add(
        self, job: ItemJob, announce: Sequence[str] = (), audit: Sequence[AuditEvent] = ()
    ) -> bool:
        return self._doc_add(self._job_item(job), job.id, announce, audit)

    def job_get(self, job_id: str) -> ItemJob | None:
        doc = self._doc_get(f"J#{job_id}", "J")
        return ItemJob.from_record(json.loads(doc)) if doc else None

    def job_save(
        self,
        old: ItemJob,
        new: ItemJob,
        announce: Sequence[str] = (),
        audit: Sequence[AuditEvent] = (),
    ) -> ItemJob | None:
        stored = replace(new, version=old.version + 1, updated_at=new.updated_at or utcnow())
        ok = self._doc_save(self._job_item(stored), old.id, old.version, announce, audit)
        return stored if ok else None

    def job_find(self, states: Iterable[JobState] | None = None, limit: int = 100) -> list[ItemJob]:
        docs: list[str] = []
        if states is not None:
            for state in states:
                docs += self._query_docs("by_state", "state", f"{JOB}{state.value}", limit)
        else:
            docs += self._scan_docs("J", limit)
        found = [ItemJob.from_record(json.loads(doc)) for doc in docs]
        found.sort(key=lambda j: j.created_at, reverse=True)
        return found[:limit]

    def _drill_item(self, drill: Drill) -> dict[str, Any]:
        return _doc_item(
            "D",
            drill.id,
            f"{DRILL}{drill.state.value}",
            f"{DRILL}{drill.source}",
            drill.created_at,
            drill.version,
            drill.to_record(),
            drill.final,
        )

    def _job_item(self, job: ItemJob) -> dict[str, Any]:
        return _doc_item(
            "J",
            job.id,
            f"{JOB}{job.state.value}",
            f"{JOB}{job.live_table}",
            job.created_at,
            job.version,
            job.to_record(),
            job.state in JOB_FINAL,
        )

    def _doc_add(
        self,
        item: dict[str, Any],
        doc_id: str,
        announce: Sequence[str] = (),
        audit: Sequence[AuditEvent] = (),
    ) -> bool:
        """Insert a document unless its key exists; with its outbox items and audit entries."""
        put = {
            "Put": {
                "TableName": self.table,
                "Item": item,
                "ConditionExpression": "attribute_not_exists(pk)",
            }
        }
        return self._doc_write(put, doc_id, announce, audit)

    def _doc_save(
        self,
        item: dict[str, Any],
        doc_id: str,
        version: int,
        announce: Sequence[str] = (),
        audit: Sequence[AuditEvent] = (),
    ) -> bool:
        """Compare-and-set a document on its stored `version`."""
        return self._doc_write(self._cas_put(item, version), doc_id, announce, audit)

    def _cas_put(self, item: dict[str, Any], version: int) -> dict[str, Any]:
        """The one compare-and-set of every document (requests too): written only if the
        stored `version` is still `version`."""
        return {
            "Put": {
                "TableName": self.table,
                "Item": item,
                "ConditionExpression": "version = :v",
                "ExpressionAttributeValues": _item({":v": version}),
            }
        }

    def _doc_write(
        self,
        put: dict[str, Any],
        doc_id: str,
        announce: Sequence[str],
        audit: Sequence[AuditEvent],
    ) -> bool:
        try:
            self._transact([put, *self._outbox_puts(doc_id, announce), *self._audit_puts(audit)])
        except ClientError as exc:
            if _conflict(exc):
                return False
            raise
        return True

    def _doc_get(self, pk: str, sk: str) -> str | None:
        resp = self.client.get_item(
            TableName=self.table, Key=_item({"pk": pk, "sk": sk}), ConsistentRead=True
        )
        item = resp.get("Item")
        return _plain(item)["doc"] if item else None

    def _query_docs(self, index: str, key: str, value: str, limit: int) -> list[str]:
        out: list[str] = []
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "IndexName": index,
            "KeyConditionExpression": "#k = :v",
            "ExpressionAttributeNames": {"#k": key},
            "ExpressionAttributeValues": _item({":v": value}),
            "ScanIndexForward": False,
        }
        while len(out) < limit:
            resp = self.client.query(**kwargs)
            out += [_plain(i)["doc"] for i in resp.get("Items", [])]
            if "LastEvaluatedKey" not in resp:
                break
            kwargs["ExclusiveStartKey"] = resp["LastEvaluatedKey"]
        return out

    def _scan_docs(self, sk: str, limit: int) -> list[str]:
        out: list[str] = []
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "FilterExpression": "sk = :s",
            "ExpressionAttributeValues": _item({":s": sk}),
        }
        while True:
            resp = self.client.scan(**kwargs)
            out += [_plain(i)["doc"] for i in resp.get("Items", [])]
            if "LastEvaluatedKey" not in resp or len(out) >= limit:
                return out
            kwargs["ExclusiveStartKey"] = resp["LastEvaluatedKey"]
