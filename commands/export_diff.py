"""`/pitr-diff LIVE_TABLE WHEN [keys: …]`: items changed since WHEN, through an incremental
export, no restore (the engine: bot/items/export_flow.py). commands/items.py hands over the
command when WHEN is given; `/pitr-diff RESTORED_TABLE` keeps its meaning there.

Also the export path's words in the thread (progress, the compared reply's head), used by
commands/items.py's renderers when a job has `export` set.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from bot.blocks import code
from bot.items.engine import ItemsError, Progress
from bot.items.export_flow import ExportRecovery, ExportRoute, large_share_note
from bot.items.export_plan import Bucket, hhmm, parse_s3
from bot.items.exports import ExportGateway
from bot.items.jobs import ItemJob, JobState
from bot.pitr import AwsError
from bot.tableref import RefError, parse_ref
from bot.when import parse_when
from commands.common import InputError, split_args, user_tz, warn

MAX_KEYS = 100
KEYS = re.compile(r"\bkeys:\s*", re.IGNORECASE)


def parse_keys(parts: list[str]) -> list[str] | None:
    """The values after `keys:` (both forms of /pitr-diff), or None when there is none."""
    if len(parts) < 2:
        return None
    keys = [k.strip() for k in parts[1].split(",") if k.strip()]
    if not keys:
        raise InputError("`keys:` needs at least one partition-key value, e.g. `keys: a,b`.")
    if len(keys) > MAX_KEYS:
        raise InputError(f"At most {MAX_KEYS} keys; compare the whole table instead.")
    return keys


def parse_export_diff(text: str) -> tuple[str, str, list[str] | None] | None:
    """'orders "10:42" keys: a,b' -> ('orders', '10:42', ['a', 'b']); None without WHEN (the
    restored-table form)."""
    parts = KEYS.split(text, maxsplit=1)
    args = split_args(parts[0])
    if len(args) < 2:
        return None
    return args[0], " ".join(args[1:]), parse_keys(parts)


def export_router(services: Any) -> ExportRoute:
    """A table reference -> (its export gateway, bare name, where its exports go)."""
    pitr, settings, policy = services.pitr, services.settings, services.policy

    def route(table: str) -> tuple[ExportGateway, str, Bucket | None]:
        try:
            ref = parse_ref(table)
            ddb = pitr.client_at(ref.account, ref.region)
            if ref.account is None:
                s3 = pitr.sibling("s3")
                url, owner, kms = settings.export_s3, None, settings.export_s3_kms_key
            else:
                s3 = pitr._places().client("s3", ref.account, ref.region)  # noqa: SLF001
                account = policy.accounts.get(ref.account)
                url = account.export_s3 if account else None
                owner = account.export_s3_owner if account else None
                kms = account.export_s3_kms_key if account else None
        except RefError as exc:
            raise ItemsError(str(exc)) from exc
        except AwsError as exc:
            raise ItemsError(exc.message) from exc
        bucket = None
        if url:
            parsed = parse_s3(url)
            bucket = Bucket(parsed.name, parsed.prefix, owner, kms)
        return ExportGateway(ddb, s3), ref.name, bucket

    return route


def start_export_diff(
    services: Any,
    engine: ExportRecovery,
    respond: Any,
    user: str,
    channel: str,
    table: str,
    when: str,
    keys: list[str] | None,
) -> None:
    """After ack: parse WHEN in the person's zone, then ask the engine."""
    now = services.clock()
    try:
        instant = parse_when(when, user_tz(services.client, user), now)
    except ValueError as exc:
        warn(respond, f"I couldn't read the instant `{when[:60]}`: {exc}")
        return
    if instant is None:
        warn(respond, '`/pitr-diff LIVE_TABLE WHEN` needs an instant, e.g. `"25 minutes ago"`.')
        return
    try:
        outcome = engine.start_export(table, instant, user, channel, keys)
    except ItemsError as exc:
        warn(respond, str(exc))
        return
    if not outcome.ok:
        warn(respond, outcome.message)
        return
    text = outcome.message or (
        f"Reading what changed in {code(table)} since {instant:%Y-%m-%d %H:%M:%S} UTC from "
        "DynamoDB's point-in-time log (an incremental export, no restore); see the thread."
    )
    respond(response_type="ephemeral", replace_original=False, text=text)


# -- words (used by commands/items.py for jobs with `export`) ---------------------------------
def head(job: ItemJob, now: datetime) -> str:
    export = job.export or {}
    instant = datetime.fromisoformat(export["instant"])
    periods = export.get("periods") or []
    lines = [
        f":mag: *What changed in {code(job.live_table)} since "
        f"{instant:%Y-%m-%d %H:%M:%S} UTC* — read from DynamoDB's point-in-time log "
        "(an incremental export to S3), not from the table: no restore, no read capacity used.",
    ]
    if periods:
        spans = ", ".join(
            f"{datetime.fromisoformat(p['start']):%Y-%m-%d %H:%M} → "
            f"{datetime.fromisoformat(p['end']):%H:%M} UTC"
            for p in periods
        )
        lines.append(f"Period{'s' if len(periods) > 1 else ''}: {spans}.")
    lines.append(
        "Cost: DynamoDB bills an export by the size of the changed data it processes, not by "
        "the size of the table."
    )
    return "\n".join(lines)


def progress_text(job: ItemJob, progress: Progress | None, now: datetime) -> str:
    if job.state != JobState.COMPARING:
        return ""  # a copy back or undo: the usual words
    export = job.export or {}
    lines = [head(job, now)]
    if not export.get("periods") and export.get("wait_until"):
        due = datetime.fromisoformat(export["wait_until"])
        lines.append(
            f":hourglass_flowing_sand: An export covers at least 15 minutes: it can start at "
            f"{hhmm(due, now)}; I'll start it then."
        )
    elif progress is None or progress.phase == "export":
        done = progress.done if progress else 0
        total = len(export.get("periods") or []) or 1
        lines.append(
            f":hourglass_flowing_sand: Export running ({done} of {total} done). DynamoDB gives "
            "no percentage; typical exports take 10–20 minutes."
        )
    elif progress.phase == "read":
        lines.append(f":hourglass_flowing_sand: Reading the export: {progress.done:,} records.")
    return "\n".join(lines)


def compared_lines(job: ItemJob) -> list[str]:
    """The compared reply's count lines for an export job (same buttons as a restore's)."""
    lines = [
        f"• *{job.missing}* deleted since (to put back)",
        f"• *{job.changed}* changed since (to put back their version at the instant)",
        f"• *{job.added}* added since (listed, never touched by a copy back)",
    ]
    note = large_share_note(job)
    if note:
        lines.append(f":information_source: {note}")
    return lines


def compared_text(job: ItemJob) -> str:
    since = datetime.fromisoformat((job.export or {})["instant"])
    return (
        f"{job.live_table} since {since:%Y-%m-%d %H:%M:%S} UTC: {job.missing} deleted, "
        f"{job.changed} changed, {job.added} added"
    )


def report_name(job: ItemJob) -> str:
    since = datetime.fromisoformat((job.export or {})["instant"])
    return f"{job.live_table}-changed-since-{since:%Y%m%dT%H%M%SZ}.jsonl"


def approval_note(job: ItemJob) -> str:
    near = int((job.export or {}).get("near") or 0)
    if not near:
        return ""
    return (
        f"\n:warning: {near} item(s) changed within a minute of the instant: DynamoDB's period "
        "boundaries can be off by about a minute, so check those in the diff file."
    )
