"""Items changed since WHEN in a live table, through DynamoDB's incremental export: no restore.

`/pitr-diff LIVE_TABLE WHEN` makes an item job (bot/items/jobs.py) whose `export` holds the
instant, the periods (bot/items/export_plan.py) and each period's export ARN. The job then
goes the way of a restore's comparison: COMPARING -> COMPARED, the same compared reply,
copy back, approval, conflicts and undo (bot/items/recovery.py), since the export's images fill
the job file's two sides (bot/items/export_index.py).

The COMPARING step never waits on a thread: each run (at once, then at every tick of the
items engine, under the job's lease) does what can be done now and gives the lease back:
- waiting for the 15 minutes: read the PITR window; start when the period is long enough;
- start each period's export that has no ARN yet (ClientToken = job id + period, so a retry or
  a restart adopts the export AWS already started instead of starting a second), and record
  the ARN on the job (compare-and-set) before anything else. The period is marked `sent`
  before the request goes out: a restart that finds the mark without an ARN first looks the
  export up by its token (ListExports, DescribeExport), since a token lasts only 8 hours;
- describe the exports; FAILED ends the job with DynamoDB's FailureCode/FailureMessage and the
  restore path offered; IN_PROGRESS reports progress and returns;
- all COMPLETED: read every data file in period order, each in one transaction with its
  checkpoint, then the counts.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from typing import Any

from bot.items.engine import ItemsError, Progress, Stopped
from bot.items.export_index import ExportIndex
from bot.items.export_plan import hhmm, large_share, near_instant, plan
from bot.items.exports import NOT_SET_UP, Bucket, ExportGateway
from bot.items.jobs import ItemJob, JobState
from bot.items.recovery import CAS_ATTEMPTS, ItemRecovery, Outcome
from bot.items.report import write_jsonl
from bot.items.values import canonical

log = logging.getLogger(__name__)

RESTORE_PATH = (
    "You can take the restore path instead: `/pitr-restore TABLE NEW_TABLE WHEN`, then "
    "*Compare items* on the restored table."
)
# A table reference -> its export gateway (clients of its account and region), the bare name,
# and where its exports go (None: not set up), with the bucket's owner account if given.
ExportRoute = Callable[[str], tuple[ExportGateway, str, Bucket | None]]


class ExportRecovery(ItemRecovery):
    """ItemRecovery plus the export path (a job with `export` set)."""

    export_route: ExportRoute | None = None

    # -- asking ------------------------------------------------------------------------------
    def start_export(
        self,
        table: str,
        instant: datetime,
        user: str,
        channel: str,
        keys: list[str] | None = None,
        function_execution_id: str | None = None,
    ) -> Outcome:
        decision = self.policy.may_request(user, channel, table, self.members)
        if not decision.allowed:
            self._audit("compare_refused", None, user, channel, table, decision.reason)
            return Outcome(False, decision.reason)
        if self.export_route is None:
            return Outcome(False, NOT_SET_UP)
        gateway, name, bucket = self.export_route(table)
        if bucket is None:
            return Outcome(False, NOT_SET_UP)
        try:
            window = gateway.window(name)
            desc = gateway.table(name)
        except ItemsError as exc:
            return Outcome(False, str(exc))
        if window is None:
            return Outcome(
                False,
                f"Point-in-time recovery is off for `{table}`: there is no log to read. "
                f"Turn it on with `/pitr-enable {table}` (it protects from now on only).",
            )
        now = self.clock()
        planned = plan(instant, window.earliest, window.latest, now)
        if planned.refusal:
            return Outcome(False, planned.refusal)
        export = {
            "instant": instant.isoformat(),
            "periods": [_period(p.start, p.end) for p in planned.periods],
            "wait_until": planned.wait_until.isoformat() if planned.wait_until else None,
            "table_arn": desc.get("TableArn", ""),
            "item_count": int(desc.get("ItemCount") or 0),
            "bucket": bucket.name,
            "prefix": bucket.prefix,
            # Kept so a restart repeats the very same request (a ClientToken with any other
            # parameter is refused), whatever the settings say by then.
            "owner": bucket.owner,
            "kms_key": bucket.kms_key,
            "records": 0,
            "near": 0,
        }
        self.work_dir.mkdir(parents=True, exist_ok=True)
        job = ItemJob(
            restore_id="",
            live_table=table,
            restored_table=f"{name} at {instant:%Y-%m-%d %H:%M:%S} UTC",
            channel=channel,
            thread_ts=None,
            requested_by=user,
            created_at=now,
            job_path="",
            partition_keys=keys,
            updated_at=now,
            export=export,
            function_execution_id=function_execution_id,
        )
        job = replace(job, job_path=str(self.work_dir / f"{job.id}.sqlite"))
        detail = f"export of {table} since {instant.isoformat()}" + (
            f", keys: {len(keys)}" if keys else ""
        )
        entry = self._entry("compare_started", job, user, detail)
        self.store.job_add(job, announce=["items_progress"], audit=[entry])
        self.on_change()
        self._submit(self.run_compare, job.id)
        if planned.wait_until:
            when = hhmm(planned.wait_until, now)
            return Outcome(
                True,
                f"DynamoDB exports at least 15 minutes of changes: the export can start at "
                f"{when}; I'll start it then. {RESTORE_PATH}",
                job,
            )
        return Outcome(True, "", job)

    # -- running -----------------------------------------------------------------------------
    def run_compare(self, job_id: str) -> None:
        job = self.store.job_get(job_id)
        if job is None or not job.export:
            super().run_compare(job_id)
            return
        job = self._claim(job_id, JobState.COMPARING)
        if job is None:
            return
        try:
            done = self._step(job)
        except Stopped:
            self._release(job_id)
            return
        except ItemsError as exc:
            self._finish(job_id, JobState.FAILED, "compare_failed", str(exc), note=str(exc))
            return
        except Exception:  # noqa: BLE001 - say so in the thread rather than hang
            log.exception("item job %s: export comparison failed", job_id)
            note = "The export comparison failed unexpectedly (logged); try again."
            self._finish(job_id, JobState.FAILED, "compare_failed", "unexpected error", note=note)
            return
        if not done:
            self._release(job_id)  # the next tick goes on from here

    def _step(self, job: ItemJob) -> bool:
        """One step of the export path; True when the job has finished (COMPARED/FAILED)."""
        assert self.export_route is not None
        gateway, name, bucket = self.export_route(job.live_table)
        export = dict(job.export or {})
        if not export["periods"]:  # waiting for 15 minutes of log after the instant
            window = gateway.window(name)
            if window is None:
                raise ItemsError(f"Point-in-time recovery was turned off for `{job.live_table}`.")
            instant = datetime.fromisoformat(export["instant"])
            planned = plan(instant, window.earliest, window.latest, self.clock())
            if planned.refusal:
                raise ItemsError(planned.refusal)
            if not planned.periods:
                self._progress(job.id, Progress("wait", 0, None, 0.0, 0.0))
                return False
            export["periods"] = [_period(p.start, p.end) for p in planned.periods]
            job = self._save_export(job, export)
        # Start what is not started; the ARN is on the job before anything else happens. The
        # request is rebuilt from the job alone (a job stored before owner/kms_key were kept
        # takes them from the settings), so a repeat after a crash is the same request.
        target = Bucket(
            export["bucket"],
            export["prefix"],
            export["owner"] if "owner" in export else (bucket.owner if bucket else None),
            export["kms_key"] if "kms_key" in export else (bucket.kms_key if bucket else None),
        )
        for index, period in enumerate(export["periods"]):
            if period.get("arn"):
                continue
            token = f"pitr-bot-{job.id}-{index}"
            desc = None
            if period.get("sent"):
                # Asked before, and that process died before the answer was stored: DynamoDB may
                # have started it. The token adopts it for 8 hours; after that only a lookup does.
                desc = self._find(gateway, export["table_arn"], token, period["sent"])
            else:
                period["sent"] = self.clock().isoformat()
                job = self._save_export(job, export)
            if desc is None:
                desc = gateway.start(
                    export["table_arn"],
                    target,
                    datetime.fromisoformat(period["start"]),
                    datetime.fromisoformat(period["end"]),
                    token=token,
                )
            period["arn"] = desc["ExportArn"]
            job = self._save_export(job, export)
        # Where are they?
        finished = 0
        for period in export["periods"]:
            if period.get("manifest"):
                finished += 1
                continue
            desc = gateway.describe(period["arn"])
            status = desc.get("ExportStatus")
            if status == "FAILED":
                why = desc.get("FailureMessage") or "no reason given"
                code = desc.get("FailureCode") or "FAILED"
                raise ItemsError(
                    f"DynamoDB's export of `{job.live_table}` failed: {code}: {why}. Nothing was "
                    f"changed. {RESTORE_PATH}"
                )
            if status == "COMPLETED":
                period["manifest"] = desc.get("ExportManifest", "")
                period["billed"] = int(desc.get("BilledSizeBytes") or 0)
                finished += 1
        job = self._save_export(job, export)
        total = len(export["periods"])
        if finished < total:
            self._progress(job.id, Progress("export", finished, total, 0.0, 0.0))
            return False
        self._read(job, gateway, name, export)
        return True

    def _read(
        self, job: ItemJob, gateway: ExportGateway, name: str, export: dict[str, Any]
    ) -> None:
        files = ExportIndex(job.job_path)
        try:
            if not files.key_names:
                desc = gateway.table(name)
                schema = sorted(desc["KeySchema"], key=lambda k: k["KeyType"] != "HASH")
                files.set_meta(
                    key_names=[k["AttributeName"] for k in schema],
                    restored_table=job.restored_table,
                    live_table=job.live_table,
                )
            keep = _key_filter(job.partition_keys, files.key_names[0])
            instant = datetime.fromisoformat(export["instant"])

            def near(record: dict[str, Any]) -> bool:
                stamp = (record.get("Metadata") or {}).get("WriteTimestampMicros") or {}
                return near_instant(int(stamp["N"]) if stamp.get("N") else None, instant)

            for index, period in enumerate(export["periods"]):
                for key in gateway.data_files(export["bucket"], period["manifest"]):
                    if self.stopping.is_set():
                        raise Stopped  # resumed at this file by the next process
                    if files.file_done(key):
                        continue
                    files.add_file(key, gateway.records(export["bucket"], key), keep, near)
                    read = files.records_read()
                    self._progress(job.id, Progress("read", read, None, 0.0, float(index)))
            counts = files.diff_counts()
            export |= {"records": files.records_read(), "near": files.near_count()}
            write_jsonl(files, self.report_path(job))
        finally:
            files.close()
        live = self._identity(job.live_table)
        self._compared(job.id, counts, live, unchanged=False, export=export)

    @staticmethod
    def _find(gateway: ExportGateway, table_arn: str, token: str, sent: str) -> dict | None:
        """The export a lost start reply named, if DynamoDB lists it; None otherwise (also when
        the bot may not list exports: the token still adopts an export under 8 hours old)."""
        try:
            return gateway.find(table_arn, token, datetime.fromisoformat(sent))
        except ItemsError as exc:
            log.warning("could not look for the export started with %s: %s", token, exc)
            return None

    def _save_export(self, job: ItemJob, export: dict[str, Any]) -> ItemJob:
        """Record the export's state on the job (compare-and-set, under our lease)."""
        for _ in range(CAS_ATTEMPTS):
            fresh = self.store.job_get(job.id)
            if fresh is None or fresh.lease_owner != self.owner:
                raise Stopped  # another process holds it now: it goes on from the store
            saved = self.store.job_save(
                fresh, replace(fresh, export=dict(export), updated_at=self.clock())
            )
            if saved is not None:
                return saved
        raise ItemsError("Too many changes at once on this comparison; try again.")


def _period(start: datetime, end: datetime) -> dict[str, Any]:
    return {"start": start.isoformat(), "end": end.isoformat(), "arn": None}


def _key_filter(keys: list[str] | None, partition_key: str) -> Callable[[dict[str, Any]], bool]:
    """`keys: a,b`: keep the records of those partition-key values (text from Slack is
    compared as text with S and N values, never evaluated)."""
    if not keys:
        return lambda record: True
    wanted = {k.strip() for k in keys}

    def keep(record: dict[str, Any]) -> bool:
        value = canonical((record.get("Keys") or {}).get(partition_key) or {"NULL": True})
        ((kind, raw),) = value.items()
        return kind in ("S", "N") and str(raw) in wanted

    return keep


def large_share_note(job: ItemJob) -> str:
    """When the changed items are a large share of the table: say which path fits."""
    export = job.export or {}
    changed = job.missing + job.changed + job.added
    if not large_share(changed, export.get("item_count")):
        return ""
    return (
        f"{changed:,} of about {export['item_count']:,} items changed: a restore to a new "
        "table and a switch of tables may be the better choice than writing items back."
    )
