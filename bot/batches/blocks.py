"""Block Kit for a batch (several tables, one instant, one approval): its card, its one
progress reply and its one summary. Pure functions over the batch's requests, leader first.

Nothing decision-relevant is ever cut (as on the single-table card): the options come before
the table list, the table list is spread over as many sections as a message holds, and what
still doesn't fit is counted ("…and 38 more tables"), failures always listed first.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime

from slack_sdk.models.blocks import (
    Block,
    HeaderBlock,
    SectionBlock,
)

from bot.batches.model import common_window
from bot.blocks import (
    STATUS_LINE,
    WITHDRAWN_LINE,
    approvals_text,
    clip,
    code,
    decision_blocks,
    esc,
    esc_clip,
    fit,
    instant_text,
    limit_retry_text,
    md,
    name_list,
    override_line,
    source_size,
    user,
    window_text,
)
from bot.restores import RestoreRequest, State, human_duration, human_size
from bot.tableref import region_crossing

SECTION = 3000  # Slack's limit on a section's text; the bot keeps plain replies within it too
MESSAGE_BLOCKS = 50  # Slack's most blocks in one message


def batch_card(members: list[RestoreRequest], now: datetime) -> tuple[str, list[Block]]:
    """The approval card of a batch: what the options change, then every source → target with
    its window and size, and the window all of them share. `members[0]` is the leader (its
    state, approvals, buttons)."""
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
    top: list[Block] = [
        HeaderBlock(text=title),
        SectionBlock(fields=fields),
        *(SectionBlock(text=md(text)) for text in batch_facts(members)),
    ]
    crossings = {region_crossing(m.source, m.target) for m in members} - {None}
    if crossings:
        note = " ".join(sorted(c for c in crossings if c))
        top.append(SectionBlock(text=md(fit(f":globe_with_meridians: {esc(note)}", SECTION))))
    if leader.reason:
        reason = esc_clip(leader.reason, SECTION - len("*Reason*\n"))
        top.append(SectionBlock(text=md(f"*Reason*\n{reason}")))
    status = batch_status(members)
    # The status and the buttons are reserved first: the table list never pushes them out.
    decision = decision_blocks(leader, status)
    lines = [f"*Tables ({len(members)})*"] + [
        f"• {code(m.source)} → {code(m.target)} · window {window_text(m.window)} · {source_size(m)}"
        for m in members
    ]
    room = MESSAGE_BLOCKS - len(top) - len(decision)
    tables = packed(lines, room, lambda rest: f"…and {rest} more tables")
    return f"{title}: {status}", [*top, *(SectionBlock(text=md(t)) for t in tables), *decision]


def batch_status(members: Sequence[RestoreRequest]) -> str:
    """The card's status line: once approved, it counts every table, not the leader's alone
    ("1 of 2 tables ACTIVE" while another is still CREATING)."""
    leader = members[0]
    if leader.withdrawn:
        return WITHDRAWN_LINE
    if leader.state not in {State.APPROVED, State.RESTORING, State.ACTIVE, State.FAILED}:
        return STATUS_LINE[leader.state]  # undecided, denied, expired, cancelled: all alike
    total = len(members)
    active = sum(m.state == State.ACTIVE for m in members)
    failed = sum(m.final and m.state != State.ACTIVE for m in members)
    if active == total:
        return f":white_check_mark: Restored — all {total} tables are ACTIVE"
    if active + failed == total:
        return f":x: {active} of {total} tables ACTIVE, {failed} failed — see the thread"
    return (
        f":hourglass_flowing_sand: Approved — {active} of {total} tables ACTIVE, "
        "progress in the thread"
    )


def batch_facts(members: Sequence[RestoreRequest]) -> list[str]:
    """What the batch's options change (the same options for every table, as the form and
    the command submit them): billing and encryption, then the indexes left out of each."""
    overrides = members[0].overrides or {}
    billing = _summary(m.source_billing or "unknown" for m in members)
    encryption = _summary(m.source_encryption or "AWS owned key" for m in members)
    facts = [override_line(billing, encryption, overrides)]
    left_out = sorted(set(overrides.get("exclude_indexes") or []))
    if left_out:
        head = f"*Indexes left out of each table ({len(left_out)}):* "
        facts.append(head + name_list(left_out, SECTION - len(head)))
    return facts


def _summary(values: Iterable[str]) -> str:
    """One value when all tables share it, else each distinct one ("mixed: A, B")."""
    distinct = sorted(set(values))
    if len(distinct) == 1:
        return esc(distinct[0])
    return "mixed: " + name_list(distinct, 1000, lambda v: esc(clip(v, 300)))


def packed(lines: Sequence[str], room: int, more: Callable[[int], str]) -> list[str]:
    """`lines` joined into at most `room` texts of at most SECTION characters each; the lines
    that don't fit are counted at the end of the last one with `more(how many)`."""
    texts: list[list[str]] = [[]]
    for index, line in enumerate(lines):
        line = fit(line, SECTION)
        if texts[-1] and len("\n".join([*texts[-1], line])) > SECTION:
            if len(texts) >= max(room, 1):
                rest = len(lines) - index
                last = texts[-1]
                while last and len("\n".join([*last, more(rest)])) > SECTION:
                    last.pop()
                    rest += 1
                last.append(more(rest))
                break
            texts.append([])
        texts[-1].append(line)
    return ["\n".join(t) for t in texts if t]


def _failed_first(members: Sequence[RestoreRequest]) -> list[RestoreRequest]:
    """Failures lead: when a list must be cut, they are never the part that is cut."""
    return sorted(members, key=lambda m: not (m.final and m.state != State.ACTIVE))


def _rest(members: Sequence[RestoreRequest]) -> str:
    """The tables not named, counted by state: "…and 38 more tables (30 RESTORING, 8 ACTIVE)"."""
    states = Counter(m.state.value for m in members)
    return (
        f"…and {len(members)} more tables ("
        + ", ".join(f"{n} {state}" for state, n in states.most_common())
        + ")"
    )


def batch_requester_notice(members: list[RestoreRequest]) -> str:
    """The requester's notice when a batch is denied, withdrawn or expires: every table named
    or counted, so nobody wonders whether some of them still run."""
    leader = members[0]
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
    lines = [head] + [f"• {code(m.source)} → {code(m.target)}" for m in members]
    return packed(lines, 1, lambda rest: f"…and {rest} more tables")[0]


def batch_progress_text(members: list[RestoreRequest], now: datetime) -> str:
    """The batch's one progress reply: each table's state, failed ones first; the tables that
    don't fit are counted by state."""
    ordered = _failed_first(members)
    lines = [f":rocket: Restoring {len(members)} tables to the same instant:"]
    for m in ordered:
        if m.state == State.RESTORING:
            state = f"{esc(m.target_status or 'CREATING')}, {human_duration(m.elapsed(now))}"
        elif m.state == State.APPROVED and m.limit_retries and m.next_check_at is not None:
            state = limit_retry_text(m)
        elif m.state == State.APPROVED and m.queued_ahead is not None:
            state = (
                "queued: next in line" if not m.queued_ahead else f"queued: {m.queued_ahead} ahead"
            )
        elif m.state == State.FAILED:
            state = f"FAILED: {esc_clip(m.error or 'unknown error', 300)}"
        else:
            state = m.state.value
        lines.append(f"• {code(m.target)}: {state}")
    return packed(lines, 1, lambda rest: _rest(ordered[-rest:]))[0]


def batch_done_blocks(members: list[RestoreRequest], now: datetime) -> tuple[str, list[Block]]:
    """The broadcast when the last table is final: per-table results, failures first with why,
    over as many sections as needed."""
    ordered = _failed_first(members)
    ok = [m for m in members if m.state == State.ACTIVE]
    failed = [m for m in ordered if m.state != State.ACTIVE]
    head = f"{len(ok)} of {len(members)} tables restored"
    if failed:
        plain = [m.source for m in failed]
        head += f"; {len(failed)} failed: " + name_list(plain, 1000, lambda n: clip(n, 300))
    lines = [f"*{esc(head)}*"]
    for m in ordered:
        if m.state == State.ACTIVE:
            lines.append(
                f":white_check_mark: {code(m.target)} is *ACTIVE* — restored from "
                f"{code(m.source)} ({m.item_count if m.item_count is not None else 'unknown'} "
                f"items, {human_size(m.size_bytes)}, {human_duration(m.elapsed(now))})"
            )
        else:
            why = esc_clip(m.error or m.state.value, 1000)
            lines.append(f":x: {code(m.source)} → {code(m.target)} {m.state.value}: {why}")
    sections = packed(lines, MESSAGE_BLOCKS, lambda rest: _rest(ordered[-rest:]))
    names = [f"{m.target} {m.state.value}" for m in ordered]
    budget = SECTION - len(head) - len(" — ")
    fallback = f"{head} — " + name_list(names, budget, lambda n: clip(n, 320))
    return fallback, [SectionBlock(text=md(t)) for t in sections]
