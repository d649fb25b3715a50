"""Block Kit builders: pure functions from state to `slack_sdk.models` blocks.

Every piece of text a person typed goes through `esc`, so a reason or a name can never
become `<!channel>`, a mention or a disguised link. `to_dict()` on the models also enforces
Slack's size limits, which the tests exercise.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ContextBlock,
    DividerBlock,
    HeaderBlock,
    MarkdownTextObject,
    SectionBlock,
)

from bot import eta as etas
from bot.period_change import DEFAULT_DAYS, PERIOD_CHANGE, history_lost_before
from bot.pitr import PitrInfo, TableInfo
from bot.restores import (
    NOT_CARRIED_OVER,
    RestoreRequest,
    State,
    human_duration,
    human_size,
)
from bot.store import AuditEvent
from bot.tableref import region_crossing
from bot.when import ago, format_instant

APPROVE_ACTION = "pitr_approve"
DENY_ACTION = "pitr_deny"
DECISION_BLOCK = "decision"


BROADCAST = re.compile(r"@(here|channel|everyone)\b", re.IGNORECASE)
CONTROL = re.compile(r"[\x00-\x1f\x7f\u0085\u2028\u2029]")


def esc(text: object) -> str:
    """Escape Slack's three control characters so user text stays plain text, and break a
    plain `@here`/`@channel`/`@everyone` with a word joiner so it can never notify anyone."""
    text = str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return BROADCAST.sub("@\u2060\\1", text)


def visible(text: str) -> str:
    """Control characters shown as escapes (`\\n`, `\\t`, `\\x1b`): a key with a newline
    can't forge a line of its own."""
    named = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
    return CONTROL.sub(lambda m: named.get(m[0]) or f"\\x{ord(m[0]):02x}", text)


def code(text: object) -> str:
    inner = esc(visible(str(text))).replace("`", "'")
    return f"`{inner}`"


def user(user_id: str) -> str:
    # IDs come from Slack's signed payloads, not from typed text; still, keep them inert.
    return f"<@{user_id}>" if user_id.isalnum() else esc(user_id)


def slack_date(instant: datetime, fallback: str) -> str:
    """Rendered by each viewer's Slack client in their own time zone."""
    epoch = int(instant.timestamp())
    return f"<!date^{epoch}^{{date_short_pretty}} {{time_secs}}|{esc(fallback)}>"


def md(text: str) -> MarkdownTextObject:
    # verbatim: Slack makes no links, channel names or mentions out of plain text (a URL in a
    # reason stays text); the markup the builders write (<@U…>, <!date…>) still renders.
    return MarkdownTextObject(text=text, verbatim=True)


def instant_text(req: RestoreRequest, now: datetime) -> str:
    if req.restore_at is None:
        return "the latest restorable time (about 5 minutes ago)"
    utc = format_instant(req.restore_at, req.requester_tz)
    return f"{esc(utc)}, {ago(req.restore_at, now)}\nyour time: {slack_date(req.restore_at, utc)}"


def window_text(req_window: object) -> str:
    if req_window is None:
        return "unknown"
    earliest = format_instant(req_window.earliest, "UTC")  # type: ignore[attr-defined]
    latest = format_instant(req_window.latest, "UTC")  # type: ignore[attr-defined]
    return f"{esc(earliest)} → {esc(latest)}"


STATUS_LINE = {
    State.REQUESTED: "Waiting for approval",
    # APPROVED lasts milliseconds; both read the same so the card doesn't flicker.
    State.APPROVED: ":hourglass_flowing_sand: Approved — restore running, progress in the thread",
    State.RESTORING: ":hourglass_flowing_sand: Approved — restore running, progress in the thread",
    State.ACTIVE: ":white_check_mark: Restored — the table is ACTIVE",
    State.DENIED: ":no_entry: Denied — nothing was restored",
    State.EXPIRED: ":hourglass: Expired — nobody decided in time; nothing was restored",
    State.CANCELLED: ":heavy_multiplication_x: Cancelled — nothing was restored",
    State.FAILED: ":x: Restore failed — see the thread",
}
WITHDRAWN_LINE = ":leftwards_arrow_with_hook: Withdrawn by the requester — nothing was restored"


PERIOD_STATUS_LINE = {
    State.REQUESTED: "Waiting for approval",
    State.APPROVED: ":hourglass_flowing_sand: Approved — changing the recovery period",
    State.RESTORING: ":hourglass_flowing_sand: Approved — changing the recovery period",
    State.ACTIVE: ":white_check_mark: Approved — the recovery period is changed",
    State.DENIED: ":no_entry: Denied — the recovery period was not changed",
    State.EXPIRED: ":hourglass: Expired — nobody decided in time; nothing was changed",
    State.CANCELLED: ":heavy_multiplication_x: Cancelled — nothing was changed",
    State.FAILED: ":x: Changing the recovery period failed — see the thread",
}


def approval_card(
    req: RestoreRequest, now: datetime, exports: bool = False
) -> tuple[str, list[Block]]:
    """The channel message where a restore is decided; it loses its buttons once decided.
    `exports`: incremental exports are set up for the source's account (then the card offers
    `/pitr-diff`, the way to get some items back without restoring the table)."""
    if req.kind == PERIOD_CHANGE:
        return period_card(req, now)
    title = f"Restore {req.source} → {req.target}"
    fields = [
        md(f"*Source table*\n{code(req.source)}"),
        md(f"*New table*\n{code(req.target)}"),
        md(f"*Restore to*\n{instant_text(req, now)}"),
        md(f"*Restorable window*\n{window_text(req.window)}"),
        md(f"*Requested by*\n{user(req.requester)}"),
        md(f"*Approvals*\n{approvals_text(req)}"),
        md(f"*Source size*\n{source_size(req)}"),
        md(f"*Expected duration*\n{esc(req.estimate or 'no history')}"),
    ]
    blocks: list[Block] = [
        HeaderBlock(text=clip(title, HEADER_LIMIT)),
        SectionBlock(fields=fields),
        *(SectionBlock(text=md(text)) for text in source_facts(req)),
    ]
    crossing = region_crossing(req.source, req.target)
    if crossing:
        blocks.append(SectionBlock(text=md(f":globe_with_meridians: {esc(crossing)}")))
    if req.reason:
        reason = esc_clip(req.reason, SECTION_LIMIT - len("*Reason*\n"))
        blocks.append(SectionBlock(text=md(f"*Reason*\n{reason}")))
    offer = diff_offer(req) if exports else ""
    if offer:
        blocks.append(ContextBlock(elements=[md(offer)]))
    status = WITHDRAWN_LINE if req.withdrawn else STATUS_LINE[req.state]
    blocks += decision_blocks(req, status)
    return f"{title}: {status}", blocks


def diff_command(source: str, instant: datetime) -> str:
    """`/pitr-diff SOURCE WHEN` for the card's instant, in a form `/pitr-diff` reads back."""
    return f"/pitr-diff {shlex.quote(source)} {instant.astimezone(UTC):%Y-%m-%dT%H:%M:%SZ}"


def diff_offer(req: RestoreRequest) -> str:
    """While a restore waits for approval: the export path, for a person who only needs some
    items back. Not for "latest" (nothing has changed since yet)."""
    if req.restore_at is None or req.state != State.REQUESTED:
        return ""
    return (
        f"Only need some items back? {code(diff_command(req.source, req.restore_at))} finds "
        "every item changed since then without restoring the table (reads PITR's log; "
        "minutes, billed by the size of the changed data)."
    )


def period_card(req: RestoreRequest, now: datetime) -> tuple[str, list[Block]]:
    """The approval card for lowering a recovery period: it says what history is lost."""
    days, before = req.recovery_days or 0, req.previous_days or DEFAULT_DAYS
    title = f"Shorten PITR recovery period of {req.source}: {before} → {days} days"
    lost = history_lost_before(req.decided_at or now, days)  # fixed once decided
    lost_text = slack_date(lost, format_instant(lost, "UTC"))
    fields = [
        md(f"*Table*\n{code(req.source)}"),
        md(f"*Recovery period*\n{before} days → {days} days"),
        md(f"*Restorable window now*\n{window_text(req.window)}"),
        md(f"*Requested by*\n{user(req.requester)}"),
        md(f"*Approvals*\n{approvals_text(req)}"),
    ]
    if req.state == State.ACTIVE:  # the window as the change left it, not as it was asked
        earliest = max(lost, req.window.earliest) if req.window is not None else lost
        shown = esc(format_instant(earliest, "UTC"))
        fields[2] = md(f"*Restorable window now*\n{shown} → now (was {window_text(req.window)})")
        warning = f":warning: Restore history before {lost_text} is gone."
    elif req.state in {State.DENIED, State.EXPIRED, State.CANCELLED}:
        warning = f"Restore history before {lost_text} would have been lost; it is kept."
    else:
        warning = (
            f":warning: Restore history before {lost_text} will be lost: once approved, "
            f"{code(req.source)} can no longer be restored to any earlier instant, and a later "
            "raise of the period does not bring it back."
        )
    blocks: list[Block] = [
        HeaderBlock(text=clip(title, HEADER_LIMIT)),
        SectionBlock(fields=fields),
        SectionBlock(text=md(warning)),
    ]
    status = PERIOD_STATUS_LINE[req.state]
    blocks += decision_blocks(req, status)
    fallback = f"{title}: {status}"
    if req.state == State.REQUESTED:
        fallback += f" (restore history before {format_instant(lost, 'UTC')} will be lost)"
    return fallback, blocks


def decision_blocks(req: RestoreRequest, status: str) -> list[Block]:
    """The status line and, while undecided, the Approve / Deny buttons."""
    blocks: list[Block] = []
    if req.decided_by and req.state in {State.DENIED, State.CANCELLED}:
        status += f" (by {user(req.decided_by)})"
    if req.state == State.APPROVED and req.queued_ahead is not None:
        status += f" · queued: {_place_in_queue(req.queued_ahead)}"
        if req.limit_retries and req.next_check_at is not None:
            status += f" ({limit_retry_text(req)})"  # why it waits, so nobody thinks it stuck
    if req.state == State.REQUESTED:
        status += f" · expires {slack_date(req.expires_at, format_instant(req.expires_at, 'UTC'))}"
    blocks.append(ContextBlock(elements=[md(status)]))
    if req.state == State.REQUESTED:
        blocks.append(
            ActionsBlock(
                block_id=DECISION_BLOCK,
                elements=[
                    ButtonElement(
                        text="Approve", action_id=APPROVE_ACTION, value=req.id, style="primary"
                    ),
                    ButtonElement(text="Deny", action_id=DENY_ACTION, value=req.id, style="danger"),
                ],
            )
        )
    return blocks


def subject(req: RestoreRequest) -> str:
    """What a request is about, in one line: `a` → `b`, or a recovery period change."""
    if req.kind == PERIOD_CHANGE:
        return f"{code(req.source)} recovery period {req.previous_days} → {req.recovery_days} days"
    return f"{code(req.source)} → {code(req.target)}"


def source_size(req: RestoreRequest) -> str:
    items = "unknown" if req.source_items is None else f"{req.source_items:,}"
    return f"{items} items, {human_size(req.source_bytes)}"


def source_facts(req: RestoreRequest) -> list[str]:
    """Billing and encryption (what the restore changes), then the indexes: one section each.

    Most important first, and nothing decision-relevant is ever cut: long index lists are
    summarised ("…and 6 more") to fit Slack's 3,000 characters a section.
    """
    overrides = req.overrides or {}
    billing = esc(req.source_billing or "unknown")
    encryption = esc(req.source_encryption or "AWS owned key")
    facts = [override_line(billing, encryption, overrides)]
    left_out = sorted(set(overrides.get("exclude_indexes") or []))
    kept = [i for i in req.source_indexes if i not in left_out]
    if not req.source_indexes:
        facts.append("*Indexes:* none")
    elif not left_out:
        head = f"*Indexes ({len(kept)}):* "
        facts.append(head + name_list(kept, SECTION_LIMIT - len(head)))
    else:
        head = f"*{len(req.source_indexes)} indexes, {len(left_out)} left out:* "
        facts.append(head + name_list(left_out, SECTION_LIMIT - len(head)))
        head = f"*Kept ({len(kept)}):* "
        facts.append(head + (name_list(kept, SECTION_LIMIT - len(head)) if kept else "none"))
    return facts


def override_line(billing: str, encryption: str, overrides: dict) -> str:
    """Billing and encryption, "source → chosen" where an option changes them. `billing` and
    `encryption` are the source's, already escaped (a batch passes a summary of its tables')."""
    chosen = esc(str(overrides.get("billing_mode") or ""))
    if chosen and chosen != billing:  # the same mode again changes nothing: no arrow
        billing += f" → {chosen}"
    if overrides.get("sse_key"):
        encryption += f" → KMS key {code(clip(str(overrides['sse_key']), 1000))}"
    return f"*Billing:* {billing} · *Encryption:* {encryption}"


def approvals_text(req: RestoreRequest) -> str:
    who = ", ".join(user(u) for u in req.approvals)
    text = f"{len(req.approvals)} of {req.required_approvals}"
    return f"{text}: {who}" if who else text


def queued_text(req: RestoreRequest) -> str:
    if req.limit_retries and req.next_check_at is not None:
        return (
            f":hourglass: Approved and queued: {_place_in_queue(req.queued_ahead or 0)} — "
            f"{limit_retry_text(req)} (LimitExceededException). DynamoDB runs at most 50 "
            f"restores at once per account; {code(req.target)} starts when AWS has a slot."
        )
    return (
        f":hourglass: Approved and queued: {_place_in_queue(req.queued_ahead or 0)}. "
        "DynamoDB runs at most 50 restores at once per account; "
        f"{code(req.target)} starts as soon as a slot frees up."
    )


def limit_retry_text(req: RestoreRequest) -> str:
    """After LimitExceededException from AWS: when the bot asks again."""
    at = req.next_check_at.strftime("%H:%M") if req.next_check_at else "soon"
    return f"AWS limit reached, retrying at {at} UTC"


def _place_in_queue(ahead: int) -> str:
    return "next in line" if ahead == 0 else f"{ahead} ahead"


def started_text(req: RestoreRequest) -> str:
    approvers = ", ".join(user(u) for u in req.approvals) or "policy"
    return (
        f":rocket: Restore started: {code(req.source)} → {code(req.target)}, "
        f"approved by {approvers}. I'll keep this thread updated until the new table is ACTIVE."
    )


def progress_text(req: RestoreRequest, now: datetime) -> str:
    status = esc(req.target_status or "CREATING")
    checked = (
        f"last checked {now.strftime('%H:%M:%S')} UTC, check #{req.polls}"
        if req.polls
        else "first check coming up"
    )
    return (
        f":hourglass_flowing_sand: {code(req.target)} is {status} — "
        f"{human_duration(req.elapsed(now))} elapsed ({checked}).\n{eta_line(req, now)}"
    ).rstrip()


def eta_line(req: RestoreRequest, now: datetime) -> str:
    """Expected end, typical range, share of typical (bot/eta.py); '' before the restore call
    or without an estimate."""
    if req.restore_called_at is None or req.final:
        return ""
    eta = etas.Eta.from_dict(req.eta)
    if eta is None:
        return ""  # the card already said "no history"
    return etas.progress_text(eta, req.source, req.restore_called_at, now)


def done_blocks(req: RestoreRequest, now: datetime) -> tuple[str, list[Block]]:
    duration = human_duration(req.elapsed(now))
    headline = f"{req.target} is ACTIVE — restored from {req.source} in {duration}"
    facts = (
        f":white_check_mark: {code(req.target)} is *ACTIVE* — restored from {code(req.source)} "
        f"to {_restored_to(req)} in {duration}.\n"
        f"Items: {req.item_count if req.item_count is not None else 'unknown'} · "
        f"Size: {human_size(req.size_bytes)}"
    )
    left = "\n".join(f"• {item}" for item in NOT_CARRIED_OVER)
    todo = (
        "*Not carried over by a restore — set these on the new table if you need them:*\n"
        f"{left}\n"
        f"Turn PITR on with `/pitr-enable {esc(req.target)}`."
    )
    return headline, [SectionBlock(text=md(facts)), DividerBlock(), SectionBlock(text=md(todo))]


def _restored_to(req: RestoreRequest) -> str:
    if req.restore_at is None:
        return "the latest restorable time"
    return esc(format_instant(req.restore_at, req.requester_tz))


def period_changed_text(req: RestoreRequest) -> str:
    """The channel's notice once an approved lower recovery period is applied."""
    approvers = ", ".join(user(u) for u in req.approvals) or "policy"
    days = req.recovery_days or DEFAULT_DAYS
    when = req.finished_at or req.updated_at or req.created_at
    lost = history_lost_before(when, days)
    return (
        f":scissors: PITR recovery period of {code(req.source)} shortened from "
        f"{req.previous_days} to {days} days (asked by {user(req.requester)}, approved by "
        f"{approvers}). Restore history before {esc(format_instant(lost, 'UTC'))} is gone."
    )


def failed_text(req: RestoreRequest) -> str:
    if req.kind == PERIOD_CHANGE:
        return (
            f":x: Changing the PITR recovery period of {code(req.source)} FAILED: "
            f"{esc(req.error or 'unknown error')}\nNothing was changed; ask again with "
            "`/pitr-enable`."
        )
    return (
        f":x: Restore of {code(req.source)} → {code(req.target)} FAILED: "
        f"{esc(req.error or 'unknown error')}\nNothing else will be attempted for this request; "
        "fix the cause and ask again with `/pitr-restore`."
    )


def requester_notice(req: RestoreRequest) -> str:
    if req.kind == PERIOD_CHANGE:
        what = f"Your change of {code(req.source)}'s recovery period to {req.recovery_days} days"
        if req.withdrawn:
            return f"You withdrew your change of {code(req.source)}'s recovery period."
        if req.state == State.DENIED:
            by = user(req.decided_by) if req.decided_by else "someone"
            return f"{what} was denied by {by}; nothing was changed."
        if req.state == State.EXPIRED:
            return f"{what} expired: nobody approved it in time; nothing was changed."
        return f"{what} is {req.state.value}."
    if req.withdrawn:
        return (
            f"You withdrew your restore of {code(req.source)} → {code(req.target)}; "
            "nothing was restored."
        )
    if req.state == State.DENIED:
        by = user(req.decided_by) if req.decided_by else "someone"
        return f"Your restore of {code(req.source)} → {code(req.target)} was denied by {by}."
    if req.state == State.EXPIRED:
        return (
            f"Your restore of {code(req.source)} → {code(req.target)} expired: nobody approved it "
            "in time. Ask again with `/pitr-restore` if it is still needed."
        )
    return f"Your restore of {code(req.source)} → {code(req.target)} is {req.state.value}."


def status_blocks(
    table: str,
    info: TableInfo,
    pitr: PitrInfo,
    in_flight: Sequence[RestoreRequest],
    history: Sequence[AuditEvent],
    now: datetime,
) -> tuple[str, list[Block]]:
    lines = [
        f"*{code(table)}* — {esc(info.status)}, {info.item_count} items, "
        f"{human_size(info.size_bytes)}"
    ]
    if pitr.enabled:
        days = f"{pitr.recovery_days} days" if pitr.recovery_days else "35 days (default)"
        lines.append(f"PITR: *ENABLED*, recovery period {days}")
        if pitr.window:
            lines.append(f"Restorable window: {window_text(pitr.window)}")
    else:
        lines.append(
            f"PITR: *{esc(pitr.status)}* — this table cannot be restored to a point in time. "
            f"Turn it on with `/pitr-enable {esc(table)}`."
        )
    if in_flight:
        lines.append("*Restores in flight from this table:*")
        for req in in_flight:
            what = subject(req) if req.kind == PERIOD_CHANGE else code(req.target)
            eta = eta_line(req, now)
            lines.append(
                f"• {what}: {req.state.value} for {human_duration(req.elapsed(now))}"
                + (f" · {eta}" if eta else "")
            )
    else:
        lines.append("No restores in flight from this table.")
    blocks: list[Block] = [SectionBlock(text=md(fit("\n".join(lines))))]
    if history:
        recent = "\n".join(
            f"{e.at.strftime('%Y-%m-%d %H:%M')} UTC · {esc(event_words(e.event))}"
            f"{' · ' + user(e.actor) if e.actor else ''}"
            f"{' · ' + esc(clip(e.detail, 120)) if e.detail else ''}"
            for e in history
        )
        blocks.append(ContextBlock(elements=[md(fit(f"*Recent activity*\n{recent}"))]))
    return f"PITR status of {table}", blocks


# Audit event names as a person reads them; any other name has its underscores made spaces.
EVENT_WORDS = {
    "requested": "restore requested",
    "denied": "restore denied",
    "expired": "request expired",
    "request_refused": "request refused",
    "pitr_period_requested": "change of PITR recovery period requested",
    "pitr_period_changed": "PITR recovery period changed",
    "restore_queued": "restore queued (AWS limit)",
}


def event_words(event: str) -> str:
    """'pitr_period_requested' -> 'Change of PITR recovery period requested'."""
    words = EVENT_WORDS.get(event) or event.replace("_", " ").replace("pitr", "PITR")
    return words[:1].upper() + words[1:]


# Slack's documented Block Kit limits (api.slack.com/reference/block-kit/blocks).
SECTION_LIMIT = 3000  # section text; also a context element's text
HEADER_LIMIT = 150  # header text


def name_list(names: Sequence[str], budget: int, show: Callable[[str], str] | None = None) -> str:
    """`a`, `b`, … as many names as fit in `budget` characters, then "…and N more".

    `show` renders one name (default: as code, clipped); plain text for a message's fallback."""
    shown: list[str] = []
    for index, name in enumerate(names):
        more = len(names) - index - 1
        item = show(name) if show else code(clip(name, 300))
        tail = f", …and {more} more" if more else ""
        if len(", ".join([*shown, item])) + len(tail) > budget:
            return ", ".join(shown) + f"{', ' if shown else ''}…and {len(names) - index} more"
        shown.append(item)
    return ", ".join(shown)


def esc_clip(text: str, limit: int) -> str:
    """`text` escaped and clipped at a word so the escaped form fits `limit`."""
    escaped = esc(text)
    if len(escaped) <= limit:
        return escaped
    room = limit
    while len(esc(clipped := clip(text, room))) > limit:
        room -= max(1, len(esc(clipped)) - limit)
    return esc(clipped)


def clip(text: str, limit: int) -> str:
    """At most `limit` characters, cut at a word boundary and marked with an ellipsis."""
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    boundary = max(cut.rfind(" "), cut.rfind("\n"))
    if boundary >= limit // 2:  # a word boundary not too far back; else cut the long word
        cut = cut[:boundary]
    return cut.rstrip(" ,;:·-\n") + "…"


def fit(text: str, limit: int = 3000) -> str:
    """Keep `text` within Slack's limit: cut at a line end when there is one, else inside the
    (single, over-long) line; a final "…" says something was cut."""
    if len(text) <= limit:
        return text
    head = text[: limit - 2]
    if "\n" in head:
        return head.rsplit("\n", 1)[0] + "\n…"
    return text[: limit - 1] + "…"


def enabled_text(pitr: PitrInfo, previous_days: int | None = None) -> str:
    """What the channel is told after `/pitr-enable`: turned on, or the period raised."""
    days = f"{pitr.recovery_days} days" if pitr.recovery_days else "the default 35 days"
    if previous_days is not None:
        return (
            f":shield: PITR recovery period of {code(pitr.table)} raised from "
            f"{previous_days} to {days}. Nothing was lost: restores keep the history they had "
            "and can reach further back as it builds up."
        )
    return (
        f":shield: PITR is now {esc(pitr.status)} on {code(pitr.table)} "
        f"with a recovery period of {days}. "
        "Restores can reach back from now on (not before this moment)."
    )


def unchanged_text(pitr: PitrInfo) -> str:
    days = pitr.recovery_days or DEFAULT_DAYS
    return (
        f"PITR is already {esc(pitr.status)} on {code(pitr.table)} with a recovery period of "
        f"{days} days; nothing was changed."
    )


def to_dicts(blocks: Sequence[Block]) -> list[dict]:
    return [b.to_dict() for b in blocks]
