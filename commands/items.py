"""Getting the data back in Slack: **Compare items** / `/pitr-diff`, **Copy back …** with its
Approve / Deny card, **Undo copy back**. The engine is bot/items/recovery.py.

Listeners ack first and hand the work to the bot's work pool; the long jobs run on the
engine's own threads. What a step owes Slack is an outbox kind (`items_*`, keyed by the job
id), sent and retried by the Announcer; only the progress message is edited directly, best
effort, as the job reports progress.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from prometheus_client import Counter
from slack_bolt import Ack, App, Respond
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.models.blocks import ActionsBlock, Block, ButtonElement, ContextBlock, SectionBlock

from bot.aftercare.aws import AftercareService
from bot.blocks import code, esc, fit, md, to_dicts, user
from bot.delivery import (
    Destination,
    UploadRefused,
    deliver,
    destinations,
    readers_text,
    unshare,
)
from bot.items.diff import Kind
from bot.items.engine import ItemsError, Progress
from bot.items.export_flow import ExportRecovery
from bot.items.jobfile import COPY_BACK, UNDO, JobFile
from bot.items.jobs import ItemJob, JobState
from bot.items.limits import ItemLimits, JobGate
from bot.items.recovery import ItemRecovery
from bot.items.report import examples
from bot.pitr import AwsError, PitrService
from bot.restore_events import job_metadata
from bot.restores import human_duration
from bot.services import Services
from bot.settings import work_dir_of
from bot.store import AuditEvent
from bot.tableref import RefError, parse_ref
from commands import compare_step, export_diff, items_plan
from commands.common import InputError, after_ack, reports_errors, split_args, warn
from commands.export_diff import KEYS, parse_keys
from commands.items_plan import plan_actions, plan_lines

log = logging.getLogger(__name__)

COMPARE_ACTION = "pitr_compare_items"
COPY_MISSING_ACTION = "pitr_copy_back_missing"
COPY_ALL_ACTION = "pitr_copy_back_all"
APPROVE_ACTION = "pitr_items_approve"
DENY_ACTION = "pitr_items_deny"


def decision_value(job_id: str, undo: bool) -> str:
    """What a decision card's buttons carry: the job, and whether it asks about an undo, so a
    click on an older copy-back card can never decide the undo asked for since."""
    return f"{job_id}:undo" if undo else job_id


UNDO_ACTION = "pitr_undo_copy_back"
KINDS = ((Kind.MISSING, "Missing"), (Kind.CHANGED, "Changed"), (Kind.ADDED, "Added"))
CONFLICTS_SHOWN = 10


def compare_button(restore_id: str) -> ActionsBlock:
    """The **Compare items** button, for the after-ACTIVE reply (commands/aftercare.py)."""
    return ActionsBlock(
        block_id="items",
        elements=[ButtonElement(text="Compare items", action_id=COMPARE_ACTION, value=restore_id)],
    )


def parse_diff(text: str) -> tuple[str, list[str] | None]:
    """'orders-copy keys: a,b' -> ('orders-copy', ['a', 'b'])."""
    parts = KEYS.split(text, maxsplit=1)
    args = split_args(parts[0])
    if len(args) != 1:
        raise InputError(
            "Usage: `/pitr-diff RESTORED_TABLE [keys: K1,K2,…]` or "
            "`/pitr-diff LIVE_TABLE WHEN [keys: …]`"
        )
    return args[0], parse_keys(parts)


# -- rendering (pure) --------------------------------------------------------------------------
def progress_text(job: ItemJob, progress: Progress | None) -> str:
    if job.export and job.state == JobState.COMPARING:  # the export path's own words
        return export_diff.progress_text(job, progress, datetime.now(UTC))
    verb = {
        JobState.COPYING: "Copying back into",
        JobState.UNDOING: "Undoing the copy back into",
    }.get(job.state, "Comparing items of")
    what = (
        code(job.live_table)
        if job.state != JobState.COMPARING
        else (f"{code(job.restored_table)} with {code(job.live_table)}")
    )
    head = f":hourglass_flowing_sand: {verb} {what}…"
    if progress is None:
        return head
    unit = "items read" if progress.phase == "compare" else "items done"
    total = f" of ~{progress.total:,}" if progress.total else ""
    line = f"{progress.done:,}{total} {unit} · {progress.rate:,.0f} items/s"
    eta = progress.eta_seconds
    if eta is not None:
        line += f" · about {human_duration(timedelta(seconds=eta))} to go"
    return f"{head}\n{line}"


def nothing_found(job: ItemJob) -> bool:
    """A comparison by `keys:` that found no item with those keys in either table."""
    found = job.missing + job.changed + job.added + job.unchanged
    return bool(job.partition_keys) and found == 0


def compared_blocks(
    job: ItemJob, shown: dict[Kind, list[str]], where: str = ""
) -> tuple[str, list[Block]]:
    """The thread's reply: counts. `shown`: example *keys*, only when the policy says keys are
    not secret (`item_keys_visible`); `where`: where the item data went (never here)."""
    live, copy = code(job.live_table), code(job.restored_table)
    keys = f" ({len(job.partition_keys)} keys asked)" if job.partition_keys else ""
    if nothing_found(job):
        text = f"{job.restored_table} vs {job.live_table}: no item with those keys"
        line = (
            f":mag: *Items of {copy} compared with the live table {live}*{keys}: no item with "
            "those keys in either table. Check the partition-key values (they are exact and "
            "case-sensitive)."
        )
        return text, [SectionBlock(text=md(fit(line)))]
    lines = [
        f":mag: *Items of {copy} compared with the live table {live}*{keys}",
        f"• *{job.missing}* missing from {live} (in the restored copy, gone from live)",
        f"• *{job.changed}* changed since (same key, different attributes)",
        f"• *{job.added}* added since (only in live)",
        f"• {job.unchanged} unchanged",
    ]
    if job.export:  # the export path: what changed since the instant
        lines = [export_diff.head(job, datetime.now(UTC)), *export_diff.compared_lines(job)]
    for kind, label in (
        (Kind.MISSING, "Missing"),
        (Kind.CHANGED, "Changed"),
        (Kind.ADDED, "Added"),
    ):
        if shown.get(kind):
            lines.append(f"{label}, e.g.: " + "; ".join(code(s) for s in shown[kind]))
    if where:
        lines.append(where)
    blocks: list[Block] = [SectionBlock(text=md(fit("\n".join(lines))))]
    buttons = []
    if job.missing:
        buttons.append(
            ButtonElement(
                text=f"Copy back {job.missing} missing items",
                action_id=COPY_MISSING_ACTION,
                value=job.id,
            )
        )
    if job.changed:
        buttons.append(
            ButtonElement(
                text=f"Copy back {job.missing} missing + {job.changed} changed",
                action_id=COPY_ALL_ACTION,
                value=job.id,
            )
        )
    if buttons:
        blocks.append(ActionsBlock(block_id="copy_back", elements=buttons))
        blocks.append(
            ContextBlock(
                elements=[
                    md(
                        f"A copy back writes to the live table {live} after a second person "
                        "approves; it never overwrites a write made after this comparison."
                    )
                ]
            )
        )
    text = (
        f"{job.restored_table} vs {job.live_table}: {job.missing} missing, "
        f"{job.changed} changed, {job.added} added, {job.unchanged} unchanged"
    )
    if job.export:
        text = export_diff.compared_text(job)
    return text, blocks


def approval_blocks(job: ItemJob) -> tuple[str, list[Block]]:
    live, copy = code(job.live_table), code(job.restored_table)
    if job.state == JobState.UNDO_REQUESTED:
        n = job.copy_counts.get("written", 0)
        asked = user(job.undo_requested_by or "")
        body = (
            f":warning: *Undo the copy back into {live}? This writes to production.*\n"
            f"Puts back the {n} items' earlier versions: items the copy back inserted are "
            f"deleted, overwritten attributes get their earlier values, each only if the live "
            f"item is still exactly what the copy back wrote.\nAsked by {asked}."
        )
        text = f"Undo copy back into {job.live_table}? Waiting for approval"
    else:
        # The plan's counts (what is left out is said below), else the comparison's.
        missing, changed = (
            (job.plan.get(k, 0) for k in ("missing", "changed"))
            if job.plan
            else (job.missing, job.changed)
        )
        what = f"{missing} missing items (put only where the key is still absent)"
        if job.include_changed:
            what += (
                f" and {changed} changed items (overwritten only if unchanged since the comparison)"
            )
        asked = user(job.copy_requested_by or "")
        body = (
            f":warning: *Copy back into {live}? This writes to production.*\n"
            f"Writes {job.to_copy} items from {copy} into the live table {live}: {what}. "
            f"Items changed since the comparison are skipped and listed.\nAsked by {asked}."
        )
        body += "".join(f"\n{line}" for line in plan_lines(job))
        text = f"Copy back {job.to_copy} items into {job.live_table}? Waiting for approval"
    if job.state in (JobState.COPY_REQUESTED, JobState.UNDO_REQUESTED):
        body += f" Someone else who may approve restores of {live} has to approve."
        body += export_diff.approval_note(job)
        if job.required_approvals > 1:
            who = ", ".join(user(u) for u in job.approvals) or "none yet"
            body += f"\nApprovals {len(job.approvals)} of {job.required_approvals}: {who}"
        value = decision_value(job.id, undo=job.state == JobState.UNDO_REQUESTED)
        return text, [
            SectionBlock(text=md(fit(body))),
            ActionsBlock(
                block_id="items_decision",
                elements=[
                    ButtonElement(
                        text="Approve", action_id=APPROVE_ACTION, value=value, style="primary"
                    ),
                    ButtonElement(text="Deny", action_id=DENY_ACTION, value=value, style="danger"),
                ],
            ),
            *plan_actions(job),
        ]
    # Decided: the card keeps its words and loses its buttons.
    by = (
        job.undo_decided_by
        if job.state in (JobState.UNDOING, JobState.UNDONE)
        else (job.copy_decided_by)
    )
    outcome = f"Approved by {user(by)}." if by else esc(job.note or "Decided.")
    return text.replace("Waiting for approval", "decided"), [
        SectionBlock(text=md(fit(body))),
        ContextBlock(elements=[md(outcome)]),
    ]


def result_blocks(job: ItemJob, conflicts: list[tuple[str, str]]) -> tuple[str, list[Block]]:
    undo = job.state == JobState.UNDONE
    counts = job.undo_counts if undo else job.copy_counts
    live = code(job.live_table)
    written, conflict, failed = (counts.get(k, 0) for k in ("written", "conflict", "failed"))
    head = (
        f":leftwards_arrow_with_hook: *Copy back into {live} undone*"
        if undo
        else f":white_check_mark: *Copy back into {live} done*"
    )
    lines = [
        head,
        f"{written} written · {conflict} skipped (conflict: changed since the comparison, "
        f"left as they are) · {failed} failed",
    ]
    if counts.get("already"):  # live held them before the copy back: never undone
        lines.append(f"{counts['already']} already there before (left as they are, not undone)")
    if conflicts:
        lines.append("Skipped:")
        lines += [f"• {code(key)} {esc(detail)}" for key, detail in conflicts[:CONFLICTS_SHOWN]]
        if conflict > CONFLICTS_SHOWN:
            lines.append(f"…and {conflict - CONFLICTS_SHOWN} more.")
    blocks: list[Block] = [SectionBlock(text=md(fit("\n".join(lines))))]
    if not undo and written:
        blocks.append(
            ActionsBlock(
                block_id="undo",
                elements=[
                    ButtonElement(text="Undo copy back", action_id=UNDO_ACTION, value=job.id)
                ],
            )
        )
    text = (
        f"{'Undo of copy back' if undo else 'Copy back'} into {job.live_table}: "
        f"{written} written, {conflict} skipped (conflict), {failed} failed"
    )
    return text, blocks


# -- wiring -------------------------------------------------------------------------------
class ItemsSlack:
    """The outbox senders for the `items_*` kinds, and the progress message."""

    def __init__(self, services: Services, engine: ItemRecovery):
        self.services = services
        self.engine = engine

    @property
    def client(self) -> Any:
        return self.services.client

    @property
    def store(self) -> Any:
        return self.services.store

    def senders(self) -> dict[str, Any]:
        return {
            "items_progress": self.send_progress,
            "items_compared": self.send_compared,
            "items_report": self.send_report,
            "items_approval": self.send_approval,
            "items_decided": self.send_decided,
            "items_card": self.send_card,
            "items_copied": self.send_result,
            "items_undone": self.send_result,
            "items_failed": self.send_failed,
            "items_unshare": self.send_unshare,
        }

    def _job(self, job_id: str) -> ItemJob | None:
        return self.store.job_get(job_id)

    def _reply(self, job: ItemJob, text: str, blocks: list[Block] | None = None, **kw: Any) -> Any:
        args: dict[str, Any] = {"channel": job.channel, "text": text, **kw}
        if job.thread_ts:
            args["thread_ts"] = job.thread_ts
        if blocks is not None:
            args["blocks"] = to_dicts(blocks)
        return self.client.chat_postMessage(**args)

    def send_progress(self, job_id: str) -> None:
        job = self._job(job_id)
        if job is None or job.progress_ts:
            return
        resp = self._reply(job, progress_text(job, None))
        # A /pitr-diff on a live table has no restore thread: this message starts its own.
        own = {} if job.thread_ts else {"thread_ts": resp["ts"]}
        self._remember(job_id, progress_ts=resp["ts"], **own)

    def on_progress(self, job: ItemJob, progress: Progress) -> None:
        if not job.progress_ts:
            return
        try:
            self.client.chat_update(
                channel=job.channel, ts=job.progress_ts, text=progress_text(job, progress)
            )
        except (SlackApiError, SlackClientError, OSError) as exc:  # best effort: the job goes on
            log.warning("item job %s: progress not shown (%s)", job.id, exc)

    def send_compared(self, job_id: str) -> None:
        job = self._job(job_id)
        if job is None:
            return
        policy, members = self.engine.policy, self.engine.members
        shown: dict[Kind, list[str]] = {}
        if job.files_removed_at is None and policy.item_keys_visible_for(job.live_table):
            files = JobFile(job.job_path)  # opening a removed file would create it again
            try:
                shown = examples(files, keys_only=True)
            finally:
                files.close()
        places = destinations(policy, job.live_table, job.requested_by, members)
        if places:
            where = ", ".join(d.label for d in places)
            note = f"The items themselves go only to their readers: {where}."
        else:  # (the readers are named to the asker only: naming them here would ping them)
            note = "Item values go only to the table's item readers (policy `item_readers`)."
        if job.progress_ts:
            done = export_diff.head(job, datetime.now(UTC)) + "\n" if job.export else ""
            self._finish_progress(job, done + ":white_check_mark: Comparison done.")
        text, blocks = compared_blocks(job, shown, note)
        self._reply(job, text, blocks)

    def send_report(self, job_id: str) -> None:
        """The full diff (JSON Lines) and examples, to each allowed place once (bot/delivery.py):
        the asker's DM if they may read the items, the table's `item_channel`. Never the
        thread. Each delivery is recorded with an audit entry naming the reader."""
        job = self._job(job_id)
        if job is None or not self.engine.report_path(job).is_file():
            return  # its files were removed (retention): nothing left to deliver
        if nothing_found(job):
            return  # an empty file says nothing the reply does not
        places = destinations(
            self.engine.policy, job.live_table, job.requested_by, self.engine.members
        )
        if not places:
            return
        files = JobFile(job.job_path)
        try:
            shown = examples(files)
        finally:
            files.close()
        lines = [
            f":mag: Items of {code(job.restored_table)} compared with the live table "
            f"{code(job.live_table)}: {job.missing} missing, {job.changed} changed, "
            f"{job.added} added, {job.unchanged} unchanged. For the item readers only."
        ]
        for kind, label in KINDS:
            if shown.get(kind):
                lines.append(f"{label}, e.g.: " + "; ".join(code(e) for e in shown[kind]))

        def record(place: Destination, file_id: str | None, refused: UploadRefused | None) -> None:
            if refused is None:
                self._delivered(job_id, place, file_id, "diff file and examples")
                return
            log.warning("item job %s: not delivered to %s (%s)", job_id, place.key, refused.error)
            self._delivered(job_id, place, None, f"refused: {refused.error}")
            self._reply(
                job,
                f":warning: The item data could not go to {place.label} "
                f"(`{esc(refused.error)}`): {refused.advice}. The counts above stay.",
            )

        deliver(
            self.client,
            places,
            self.engine.report_path(job),
            filename=export_diff.report_name(job)
            if job.export
            else f"{job.restored_table}-vs-{job.live_table}.jsonl",
            title=f"Differences: {job.restored_table} vs {job.live_table} (JSON Lines)",
            comment=fit("\n".join(lines), 3900),
            done=job.delivered,
            record=record,
        )

    def _delivered(
        self, job_id: str, place: Destination, file_id: str | None, detail: str
    ) -> ItemJob | None:
        """Record a delivery (or a refusal for good) with its audit entry, in one write."""
        for _ in range(20):
            fresh = self.store.job_get(job_id)
            if fresh is None:
                return None
            files = (*fresh.slack_files, file_id) if file_id else fresh.slack_files
            new = replace(fresh, delivered=(*fresh.delivered, place.key), slack_files=files)
            reader = place.id if place.kind == "dm" else None
            event = "items_read" if file_id else "items_delivery_refused"
            entry = AuditEvent(
                self.services.clock(),
                event,
                fresh.id,
                reader,
                place.id if place.kind == "channel" else fresh.channel,
                fresh.live_table,
                f"{detail} ({place.kind} {place.id}; file {file_id or '-'})",
            )
            saved = self.store.job_save(fresh, new, (), [entry])
            if saved is not None:
                return saved
        log.error("item job %s: could not record the delivery to %s", job_id, place.key)
        return None

    def send_unshare(self, job_id: str) -> None:
        """The job's local files expired: the Slack files it shared are deleted too."""
        job = self._job(job_id)
        if job is None or not job.slack_files:
            return
        refused = unshare(self.client, job.slack_files)
        if refused:
            log.error("item job %s: Slack files not deleted: %s", job.id, ", ".join(refused))
        for _ in range(20):
            fresh = self.store.job_get(job_id)
            if fresh is None:
                return
            entry = AuditEvent(
                self.services.clock(),
                "slack_files_deleted",
                fresh.id,
                None,
                fresh.channel,
                fresh.live_table,
                f"{len(fresh.slack_files)} files (retention)",
            )
            if self.store.job_save(fresh, replace(fresh, slack_files=()), (), [entry]):
                return

    def send_approval(self, job_id: str) -> None:
        job = self._job(job_id)
        if job is None:
            return
        text, blocks = approval_blocks(job)
        resp = self._reply(job, text, blocks)
        self._remember(job_id, decision_ts=resp["ts"])

    def send_card(self, job_id: str) -> None:
        """The approval card again, with the approvals counted so far."""
        job = self._job(job_id)
        if job is None or not job.decision_ts:
            return
        text, blocks = approval_blocks(job)
        self.client.chat_update(
            channel=job.channel, ts=job.decision_ts, text=text, blocks=to_dicts(blocks)
        )

    def send_decided(self, job_id: str) -> None:
        job = self._job(job_id)
        if job is None:
            return
        if job.decision_ts:
            text, blocks = approval_blocks(job)
            self.client.chat_update(
                channel=job.channel, ts=job.decision_ts, text=text, blocks=to_dicts(blocks)
            )
        if job.state in (JobState.COMPARED, JobState.COPIED):  # denied
            self._reply(job, f":no_entry: {esc(job.note)}")
            return
        resp = self._reply(job, progress_text(job, None))
        self._remember(job_id, progress_ts=resp["ts"])

    def send_result(self, job_id: str) -> None:
        job = self._job(job_id)
        if job is None:
            return
        name = UNDO if job.state == JobState.UNDONE else COPY_BACK
        conflicts: list[tuple[str, str]] = []
        # The skipped items' keys are item data: listed only where keys are not secret.
        keys_visible = self.engine.policy.item_keys_visible_for(job.live_table)
        if job.files_removed_at is None and keys_visible:
            files = JobFile(job.job_path)
            try:
                conflicts = files.outcomes(name, "conflict")
            finally:
                files.close()
        if job.progress_ts:
            self._finish_progress(job, ":white_check_mark: Done.")
        text, blocks = result_blocks(job, conflicts)
        meta = job_metadata(job, undone=job.state == JobState.UNDONE)
        self._reply(job, text, blocks, reply_broadcast=True, metadata=meta)

    def send_failed(self, job_id: str) -> None:
        job = self._job(job_id)
        if job is not None:
            self._reply(job, f":x: {esc(job.note or 'The job failed.')}", reply_broadcast=True)

    def _finish_progress(self, job: ItemJob, text: str) -> None:
        try:
            self.client.chat_update(channel=job.channel, ts=job.progress_ts, text=text)
        except (SlackApiError, SlackClientError, OSError) as exc:
            log.warning("item job %s: progress message not closed (%s)", job.id, exc)

    def _remember(self, job_id: str, **changes: Any) -> None:
        for _ in range(20):
            fresh = self.store.job_get(job_id)
            if fresh is None or self.store.job_save(fresh, replace(fresh, **changes)):
                return
        log.error("item job %s: could not record %s", job_id, ", ".join(changes))


def item_lease(poll_seconds: float) -> timedelta:
    """How long a job's lease lasts: renewed every third of it (with the polling), so a job
    whose process died is taken over within about one lease."""
    return timedelta(seconds=min(300.0, max(6.0, 6 * poll_seconds)))


def router(pitr: PitrService) -> Any:
    """A stored table reference -> (the DynamoDB client of its account and region, its name)."""

    def route(table: str) -> tuple[Any, str]:
        try:
            ref = parse_ref(table)
            return pitr.client_at(ref.account, ref.region), ref.name
        except RefError as exc:
            raise ItemsError(str(exc)) from exc
        except AwsError as exc:
            raise ItemsError(exc.message) from exc

    return route


def identifier(aws: AftercareService) -> Any:
    """A table's identity now (bot/table_identity.py), None if it does not exist; ItemsError
    when AWS cannot say (every check then refuses)."""

    def identify(table: str) -> dict[str, Any] | None:
        try:
            return aws.identity(table)
        except AwsError as exc:
            raise ItemsError(exc.message) from exc

    return identify


def register(app: App, services: Services) -> None:
    settings = services.settings
    lease = item_lease(settings.poll_seconds)
    engine = ExportRecovery(
        services.store,
        services.pitr.client,
        services.policy,
        services.workflow.members,
        services.clock,
        work_dir_of(settings),
        services.workflow.owner,
        read_units_per_second=settings.items_read_units,
        write_units_per_second=settings.items_write_units,
        route=router(services.pitr),
        lease=lease,
        retention=timedelta(days=settings.items_retention_days),
        identify=identifier(AftercareService.from_pitr(services.pitr)),
    )
    limits = ItemLimits(
        settings.max_item_jobs_per_user,
        settings.max_item_jobs,
        settings.min_free_disk_mb * 1024 * 1024,
    )
    engine.admit = JobGate(services.store, work_dir_of(settings), limits).admit

    engine.export_route = export_diff.export_router(services)
    slack = ItemsSlack(services, engine)
    engine.on_change = services.announcer.kick
    engine.on_progress = slack.on_progress
    items = Counter(
        "pitr_bot_items",
        "Items read (comparisons), written, skipped (conflict), failed (copy back and undo)",
        ["what"],
        registry=services.metrics.registry,
    )
    engine.on_items = lambda what, n: items.labels(what).inc(max(0, n))
    services.announcer.item_senders.update(slack.senders())
    items_plan.register(app, services, engine)
    compare_step.register(app, services, engine)  # the Workflow Builder step

    def start() -> None:
        engine.sweep_orphans()
        engine.remove_expired()
        engine.resume()
        scheduler = services.tracker.scheduler
        every = {"replace_existing": True, "coalesce": True, "max_instances": 1}
        scheduler.add_job(
            engine.tick, "interval", seconds=lease.total_seconds() / 3, id="items-tick", **every
        )
        scheduler.add_job(engine.remove_expired, "interval", hours=1, id="items-files", **every)

    services.on_start.append(start)
    services.on_stop.append(engine.stop)

    def reading_note(user_id: str, table: str) -> str:
        """What the asker will get: the items by DM, or counts only and who can read them."""
        if engine.policy.may_read_items(user_id, table, engine.members).allowed:
            return "The diff file and examples come to you by direct message."
        readers = readers_text(engine.policy, table)
        return f"You get counts only: the items of {code(table)} are for {readers}."

    def tell(respond: Respond, text: str) -> None:
        respond(response_type="ephemeral", replace_original=False, text=text)

    @app.command("/pitr-diff")
    @reports_errors
    def on_diff(ack: Ack, command: dict, respond: Respond) -> None:
        ack()
        user_id, channel = command["user_id"], command["channel_id"]
        try:
            export = export_diff.parse_export_diff(str(command.get("text") or ""))
            table, keys = export[::2] if export else parse_diff(str(command.get("text") or ""))
        except InputError as exc:
            warn(respond, str(exc))
            return
        if export:  # `/pitr-diff LIVE_TABLE WHEN`: through an incremental export
            args = (services, engine, respond, user_id, channel, *export)
            after_ack(services, respond, lambda: export_diff.start_export_diff(*args))
            return

        def start() -> None:
            req = engine.restore_of(table)
            outcome = engine.start_compare(req, user_id, channel, keys, table=table)
            if not outcome.ok:
                warn(respond, outcome.message)
                return
            tell(
                respond,
                f"Comparing {code(table)} with {code(req.source)}; the counts go to the "
                f"restore's thread. {reading_note(user_id, req.source)}",
            )

        after_ack(services, respond, start)

    @app.action(COMPARE_ACTION)
    @reports_errors
    def on_compare(ack: Ack, body: dict, action: dict, respond: Respond) -> None:
        ack()
        restore_id, user_id = str(action.get("value", ""))[:64], body["user"]["id"]
        channel = str((body.get("channel") or {}).get("id") or "")

        def start() -> None:
            req = services.store.get(restore_id)
            outcome = engine.start_compare(req, user_id, channel or (req.channel if req else ""))
            if not outcome.ok:
                warn(respond, outcome.message)
                return
            tell(
                respond,
                f"Comparing; the counts go to the thread. {reading_note(user_id, req.source)}",
            )

        after_ack(services, respond, start)

    def copy_listener(include_changed: bool):  # noqa: ANN202 - a Bolt listener factory
        def on_click(ack: Ack, body: dict, action: dict, respond: Respond) -> None:
            ack()
            job_id, user_id = str(action.get("value", ""))[:64], body["user"]["id"]

            def ask() -> None:
                outcome = engine.request_copy(job_id, user_id, include_changed)
                if not outcome.ok:
                    warn(respond, outcome.message)
                    return
                tell(respond, "Copy back requested. Someone else has to click *Approve*.")

            after_ack(services, respond, ask)

        return on_click

    app.action(COPY_MISSING_ACTION)(reports_errors(copy_listener(False)))
    app.action(COPY_ALL_ACTION)(reports_errors(copy_listener(True)))

    @app.action(UNDO_ACTION)
    @reports_errors
    def on_undo(ack: Ack, body: dict, action: dict, respond: Respond) -> None:
        ack()
        job_id, user_id = str(action.get("value", ""))[:64], body["user"]["id"]

        def ask() -> None:
            outcome = engine.request_undo(job_id, user_id)
            if not outcome.ok:
                warn(respond, outcome.message)
                return
            tell(respond, "Undo requested. Someone else has to click *Approve*.")

        after_ack(services, respond, ask)

    def decision(approve: bool):  # noqa: ANN202 - a Bolt listener factory
        def on_click(ack: Ack, body: dict, action: dict, respond: Respond) -> None:
            ack()
            job_id, _, phase = str(action.get("value", ""))[:70].partition(":")
            user_id = body["user"]["id"]

            def decide() -> None:
                # The card says what it asked about; a stale copy-back card can't decide an undo.
                outcome = engine.decide(job_id[:64], user_id, approve, undo=phase == "undo")
                if not outcome.ok:
                    warn(respond, outcome.message)
                elif outcome.message:  # an approval counted, more needed
                    tell(respond, outcome.message)

            after_ack(services, respond, decide)

        return on_click

    app.action(APPROVE_ACTION)(reports_errors(decision(approve=True)))
    app.action(DENY_ACTION)(reports_errors(decision(approve=False)))
