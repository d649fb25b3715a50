"""Block Kit for a batch (several tables, one instant, one approval): its card, its one
progress reply and its one summary. Pure functions over the batch's requests, leader first."""

from __future__ import annotations

from datetime import datetime

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ContextBlock,
    HeaderBlock,
    SectionBlock,
)

from bot.batch import common_window
from bot.blocks import (
    APPROVE_ACTION,
    DECISION_BLOCK,
    DENY_ACTION,
    STATUS_LINE,
    approvals_text,
    code,
    esc,
    fit,
    instant_text,
    limit_retry_text,
    md,
    slack_date,
    source_size,
    user,
    window_text,
)
from bot.restores import RestoreRequest, State, human_duration, human_size
from bot.tableref import region_crossing
from bot.when import format_instant

SECTION = 3000


def batch_card(members: list[RestoreRequest], now: datetime) -> tuple[str, list[Block]]:
    """The approval card of a batch: every source → target with its window and size, and the
    window all of them share. `members[0]` is the leader (its state, approvals, buttons)."""
    leader = members[0]
    windows = {m.source: m.window for m in members if m.window is not None}
    common = common_window(windows).window if len(windows) == len(members) else None
    title = f"Restore {len(members)} tables to one instant"
    fields = [
        md(f"*Restore to*\n{instant_text(leader, now)}"),
        md(f"*Common window*\n{window_text(common)}"),
        md(f"*Requested by*\n{user(leader.requester)}"),
        md(f"*Approvals*\n{approvals_text(leader)}"),
    ]
    lines = [
        f"• {code(m.source)} → {code(m.target)} · window {window_text(m.window)} · {source_size(m)}"
        for m in members
    ]
    blocks: list[Block] = [
        HeaderBlock(text=title),
        SectionBlock(fields=fields),
        SectionBlock(text=md(fit("*Tables*\n" + "\n".join(lines), SECTION))),
    ]
    crossings = {region_crossing(m.source, m.target) for m in members} - {None}
    if crossings:
        note = " ".join(sorted(c for c in crossings if c))
        blocks.append(SectionBlock(text=md(fit(f":globe_with_meridians: {esc(note)}", SECTION))))
    if leader.reason:
        blocks.append(SectionBlock(text=md(fit(f"*Reason*\n{esc(leader.reason)}", SECTION))))
    status = STATUS_LINE[leader.state]
    if leader.decided_by and leader.state in {State.DENIED, State.CANCELLED}:
        status += f" (by {user(leader.decided_by)})"
    if leader.state == State.REQUESTED:
        status += (
            f" · expires {slack_date(leader.expires_at, format_instant(leader.expires_at, 'UTC'))}"
        )
    blocks.append(ContextBlock(elements=[md(status)]))
    if leader.state == State.REQUESTED:
        blocks.append(
            ActionsBlock(
                block_id=DECISION_BLOCK,
                elements=[
                    ButtonElement(
                        text="Approve", action_id=APPROVE_ACTION, value=leader.id, style="primary"
                    ),
                    ButtonElement(
                        text="Deny", action_id=DENY_ACTION, value=leader.id, style="danger"
                    ),
                ],
            )
        )
    return f"{title}: {STATUS_LINE[leader.state]}", blocks


def batch_requester_notice(members: list[RestoreRequest]) -> str:
    """The requester's notice when a batch is denied, withdrawn or expires: every table, so
    nobody wonders whether some of them still run."""
    leader = members[0]
    tables = "\n".join(f"• {code(m.source)} → {code(m.target)}" for m in members)
    if leader.withdrawn:
        head = f"You withdrew your restore of {len(members)} tables; nothing was restored:"
    elif leader.state == State.DENIED:
        by = user(leader.decided_by) if leader.decided_by else "someone"
        head = f"Your restore of {len(members)} tables was denied by {by}; nothing was restored:"
    elif leader.state == State.EXPIRED:
        head = (
            f"Your restore of {len(members)} tables expired: nobody approved it in time; "
            "nothing was restored. Ask again with `/pitr-restore` if it is still needed:"
        )
    else:
        head = f"Your restore of {len(members)} tables is {leader.state.value}:"
    return fit(f"{head}\n{tables}", SECTION)


def batch_progress_text(members: list[RestoreRequest], now: datetime) -> str:
    """The batch's one progress reply: each table's state."""
    lines = [f":rocket: Restoring {len(members)} tables to the same instant:"]
    for m in members:
        if m.state == State.RESTORING:
            state = f"{esc(m.target_status or 'CREATING')}, {human_duration(m.elapsed(now))}"
        elif m.state == State.APPROVED and m.limit_retries and m.next_check_at is not None:
            state = limit_retry_text(m)
        elif m.state == State.APPROVED and m.queued_ahead is not None:
            state = (
                "queued: next in line" if not m.queued_ahead else f"queued: {m.queued_ahead} ahead"
            )
        else:
            state = m.state.value
        lines.append(f"• {code(m.target)}: {state}")
    return fit("\n".join(lines), SECTION)


def batch_done_blocks(members: list[RestoreRequest], now: datetime) -> tuple[str, list[Block]]:
    """The broadcast when the last table is final: per-table results, failures with why."""
    ok = [m for m in members if m.state == State.ACTIVE]
    failed = [m for m in members if m.state != State.ACTIVE]
    head = f"{len(ok)} of {len(members)} tables restored"
    lines = []
    for m in members:
        if m.state == State.ACTIVE:
            lines.append(
                f":white_check_mark: {code(m.target)} is *ACTIVE* — restored from "
                f"{code(m.source)} ({m.item_count if m.item_count is not None else 'unknown'} "
                f"items, {human_size(m.size_bytes)}, {human_duration(m.elapsed(now))})"
            )
        else:
            why = esc(m.error or m.state.value)
            lines.append(f":x: {code(m.source)} → {code(m.target)} {m.state.value}: {why}")
    if failed:
        head += f"; {len(failed)} failed: " + ", ".join(m.source for m in failed)
    text = fit(f"*{esc(head)}*\n" + "\n".join(lines), SECTION)
    names = ", ".join(f"{m.target} {m.state.value}" for m in members)
    return fit(f"{head} — {names}", 3000), [SectionBlock(text=md(text))]
