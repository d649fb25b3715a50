"""What a copy back writes, decided before anyone approves (a mixin of ItemRecovery).

The approval card counts what will be written (missing, changed), what is left out and why:
items whose TTL attribute has passed (DynamoDB removed them on purpose; put back only if the
approver asks), keys the approver left out, items no safe condition fits DynamoDB's limits for,
and items that could be written but not undone. Asking to include the expired items or
leaving keys out changes the plan, so the approvals counted so far start again.
"""

from __future__ import annotations

from dataclasses import asdict, replace
from typing import Any

from bot.items.jobfile import JobFile
from bot.items.jobs import ItemJob, JobState, Outcome
from bot.items.values import key_text

CAS_ATTEMPTS = 20
MAX_LEAVE_OUT = 1000


class CopyPlanning:
    store: Any
    clock: Any

    def _may_write(self, job: ItemJob, user: str) -> str:
        raise NotImplementedError

    def _audit(self, *args: Any) -> None:
        raise NotImplementedError

    def _entry(self, event: str, job: ItemJob, actor: str | None, detail: str) -> Any:
        raise NotImplementedError

    on_change: Any

    def plan_args(self, job: ItemJob) -> dict[str, Any]:
        """The arguments of JobFile.plan_copy_back / copy_plan for this job, now."""
        return {
            "include_changed": job.include_changed,
            "leave_out": job.leave_out,
            "now": self.clock().timestamp(),
            "include_expired": job.include_expired,
        }

    def with_plan(self, job: ItemJob) -> ItemJob:
        """`job` with its plan counted from the job file (what the card shows)."""
        files = JobFile(job.job_path)
        try:
            plan = files.copy_plan(**self.plan_args(job))
        finally:
            files.close()
        counts = asdict(plan)
        ttl = counts.pop("ttl_attribute") or ""
        counts.pop("include_expired")
        return replace(job, plan=counts, ttl_attribute=ttl)

    def key_types(self, job: ItemJob) -> tuple[tuple[str, ...], dict[str, str]]:
        files = JobFile(job.job_path)
        try:
            return files.key_names, dict(files.meta("key_types") or {})  # type: ignore[arg-type]
        finally:
            files.close()

    def adjust_copy(
        self,
        job_id: str,
        user: str,
        include_expired: bool | None = None,
        leave_out: list[str] | None = None,
    ) -> Outcome:
        """Before approval: put back the expired items too, or leave keys out (canonical key
        texts). The plan changes, so the approvals so far are dropped and the card redrawn."""
        for _ in range(CAS_ATTEMPTS):
            job = self.store.job_get(job_id)
            if job is None:
                return Outcome(False, "This comparison no longer exists.")
            if job.state != JobState.COPY_REQUESTED:
                return Outcome(False, "No copy back is waiting for approval here.")
            refusal = self._may_write(job, user)
            if refusal:
                event = "copy_back_adjust_refused"
                self._audit(event, job.id, user, job.channel, job.live_table, refusal)
                return Outcome(False, refusal)
            changes: dict[str, Any] = {"approvals": (), "updated_at": self.clock()}
            if include_expired is not None:
                changes["include_expired"] = include_expired
            if leave_out is not None:
                both = set(job.leave_out) | set(leave_out)  # added to those left out before
                changes["leave_out"] = tuple(sorted(both))[:MAX_LEAVE_OUT]
            new = self.with_plan(replace(job, **changes))
            if new.to_copy == 0:
                return Outcome(False, "That would leave nothing to copy back.")
            plan = new.plan
            detail = (
                f"{plan.get('missing', 0)} missing + {plan.get('changed', 0)} changed; "
                f"{plan.get('expired', 0)} expired left out, {plan.get('left_out', 0)} keys "
                f"left out, expired included: {new.include_expired}"
            )
            entry = self._entry("copy_back_adjusted", job, user, detail)
            saved = self.store.job_save(job, new, ["items_card"], [entry])
            if saved is not None:
                self.on_change()
                return Outcome(True, "", saved)
        return Outcome(False, "Too many people clicked at once; please try again.")


class BadKey(ValueError):
    """A key a person typed that this table's key cannot hold."""


def parse_keys(text: str, key_names: tuple[str, ...], key_types: dict[str, str]) -> list[str]:
    """One key a line -> canonical key texts (the job file's keys). A table with a sort key:
    `partition value | sort value`. Text from Slack is typed by the table, never trusted."""
    keys = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        parts = [line] if len(key_names) == 1 else [p.strip() for p in line.split(" | ", 1)]
        if len(parts) != len(key_names):
            raise BadKey(f"`{line[:60]}`: give `{' | '.join(key_names)}`.")
        item = {}
        for name, part in zip(key_names, parts, strict=True):
            kind = key_types.get(name, "S")
            if kind == "B":
                raise BadKey(f"`{name}` is binary: keys cannot be typed here.")
            item[name] = {kind: part}
        try:
            keys.append(key_text(item, key_names))
        except ValueError:
            raise BadKey(f"`{line[:60]}`: a number is not a number.") from None
        if len(keys) > MAX_LEAVE_OUT:
            raise BadKey(f"At most {MAX_LEAVE_OUT} keys.")
    return keys
