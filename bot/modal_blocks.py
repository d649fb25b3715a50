"""The restore modal: pure builders (slack_sdk.models) and the reader of what they build.

`/pitr-restore` with no arguments opens `restore_modal()`; picking a source re-renders it with
the target pre-filled; `read_state()` turns the submitted `view.state.values` back into plain
fields. Block and action IDs live here only, so the listener (commands/modal.py) and the view
cannot drift apart. Every piece of text a person (or a forged payload) chose goes through `esc`
before it reaches mrkdwn; plain-text fields and input values are shown literally by Slack.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from slack_sdk.models.blocks import (
    Block,
    ContextBlock,
    DateTimePickerElement,
    ExternalDataMultiSelectElement,
    HeaderBlock,
    InputBlock,
    MarkdownTextObject,
    Option,
    OptionGroup,
    PlainTextInputElement,
    PlainTextObject,
    StaticSelectElement,
)
from slack_sdk.models.views import View

from bot.blocks import SECTION_LIMIT, code, esc, name_list
from bot.pitr import TableInfo
from bot.tableref import MAX_BATCH

CALLBACK_ID = "pitr_restore_modal"
SOURCE_ACTION = "pitr_modal_source"  # external multi-select: options + dispatch on pick
VALUE_ACTION = "value"  # the action_id of every other input

SOURCE_BLOCK = "source"
SOURCE_INFO_BLOCK = "source_info"
WHEN_TEXT_BLOCK = "when_text"
WHEN_PICK_BLOCK = "when_pick"
DIFF_OFFER_BLOCK = "diff_offer"
TARGET_BLOCK = "target"  # + "." + source once a source is picked (see target_block_id)
REASON_BLOCK = "reason"
BILLING_BLOCK = "billing"
INDEXES_BLOCK = "exclude_indexes"
SSE_BLOCK = "sse_key"

BILLING_SAME = "same"
BILLING_ON_DEMAND = "PAY_PER_REQUEST"
MAX_OPTIONS = 100  # Slack's limit for an options response (and a static select)
MAX_GROUP_LABEL = 75  # ... and for an option group's label
MAX_OPTION_VALUE = 150  # Slack's limit for an option value
MAX_OPTION_TEXT = 75  # ... and for its text
MAX_REASON = 500

WHEN_HINT = (
    "Which instant to restore. Precedence: a time typed here wins; if this is empty, the date "
    "and time picked below is used; if both are empty, the latest restorable time (about "
    "5 minutes ago). Typed times without an offset are read in your Slack time zone."
)
PICK_HINT = "Used only when the field above is empty. An absolute instant, shown in your zone."
TARGET_HINT = (
    "A new table (it must not exist). Pre-filled as <source>-<yyyymmdd-hhmm> (UTC now) when you "
    "pick the source; edit it freely. With several sources: a suffix added to each name."
)
SUFFIX_HINT = (
    "Added to each source's name to make its new table (in the source's account and region), "
    "like the command's `/pitr-restore a,b SUFFIX WHEN`. Pre-filled as -<yyyymmdd-hhmm>."
)
SOURCE_HINT = (
    "Tables of this account and of the accounts and regions in the policy, written like the "
    "command's `prod:orders@eu-west-1`. Several tables are restored to one instant with one "
    f"approval (at most {MAX_BATCH}). Type to narrow the list."
)


def target_block_id(source: str | None) -> str:
    """A new block_id per source: Slack only applies a new initial_value to a new block."""
    return f"{TARGET_BLOCK}.{source}"[:255] if source else TARGET_BLOCK


def default_target(source: str, now: datetime) -> str:
    """`<source>-<yyyymmdd-hhmm>` in UTC, within DynamoDB's 255-character limit."""
    suffix = now.strftime("-%Y%m%d-%H%M")
    return source[: 255 - len(suffix)] + suffix


def pitr_label(pitr: bool | None) -> str:
    return {True: "PITR on", False: "PITR off", None: "PITR ?"}[pitr]


def default_suffix(now: datetime) -> str:
    """`-<yyyymmdd-hhmm>` in UTC: what several sources' new names end with."""
    return now.strftime("-%Y%m%d-%H%M")


def picked_sources(source: str) -> list[str]:
    """The picked tables of a form: its `source` is their comma-separated references, the
    same text the command takes."""
    return [s for s in (part.strip() for part in source.split(",")) if s]


def options_response(choices: list[tuple[str, bool | None]], matched: int) -> dict[str, Any]:
    """The answer to the picker's options request: at most MAX_OPTIONS; when more tables
    matched, one group whose label says so (an options list has no other place for a note)."""
    options = [source_option(name, pitr) for name, pitr in choices[:MAX_OPTIONS]]
    if matched <= len(options):
        return {"options": [o.to_dict() for o in options]}
    label = f"First {len(options)} of {matched} tables: type to narrow"[:MAX_GROUP_LABEL]
    group = OptionGroup(label=PlainTextObject(text=label, emoji=False), options=options)
    return {"option_groups": [group.to_dict()]}


def source_option(name: str, pitr: bool | None) -> Option:
    """'MusicCollection · PITR on' (plain text, so table names are shown as they are)."""
    tail = f" · {pitr_label(pitr)}"
    room = MAX_OPTION_TEXT - len(tail)
    shown = name if len(name) <= room else name[: room - 1] + "…"
    return Option(value=name, text=PlainTextObject(text=shown + tail, emoji=False))


def source_info_text(info: TableInfo | None, pitr: bool | None, budget: int = SECTION_LIMIT) -> str:
    """One line under the source picker: PITR, size, and the GSIs one may leave out.

    Fits `budget` characters (Slack refuses the whole view otherwise): the index list is
    summarised ("…and 6 more"), never the PITR warning.
    """
    parts = [pitr_label(pitr)]
    if info is not None:
        if info.item_count is not None:
            parts.append(f"{info.item_count:,} items")
        if info.billing_mode:
            parts.append(esc(info.billing_mode))
    warning = ["it can't be restored until PITR is on (`/pitr-enable`)"] if pitr is False else []
    if info is not None:
        head = f"GSIs ({len(info.indexes)}): " if info.indexes else "GSIs: "
        # Whatever room the other parts leave goes to the index list, summarised to fit.
        room = budget - len(" · ".join([*parts, *warning, head]))
        parts.append(head + (name_list(info.indexes, room) or "none"))
    return " · ".join(parts + warning)


BILLING_OPTIONS = [
    Option(value=BILLING_SAME, text="Same as the source"),
    Option(value=BILLING_ON_DEMAND, text="On-demand (PAY_PER_REQUEST)"),
]


@dataclass(frozen=True)
class Picked:
    """The source(s) the person picked, and what we know about them (for re-rendering).

    `source` is one table reference, or several comma-separated (then `target` is a suffix,
    and `pitrs` holds each table's PITR status)."""

    source: str
    target: str
    pitr: bool | None = None
    table: TableInfo | None = None
    described: bool = False  # the source was looked up (so there is something to say)
    pitrs: tuple[tuple[str, bool | None], ...] = ()
    exports: bool = False  # incremental exports set up for the source's account

    @property
    def several(self) -> bool:
        return len(picked_sources(self.source)) > 1

    def options(self) -> list[Option]:
        status = dict(self.pitrs)
        return [
            source_option(name, self.pitr if not self.several else status.get(name))
            for name in picked_sources(self.source)
        ]


def several_info_text(picked: Picked, budget: int = SECTION_LIMIT) -> str:
    """One line under the picker for several tables: each with its PITR status, to fit."""
    parts = [f"{code(name)} {pitr_label(pitr)}" for name, pitr in picked.pitrs]
    off = [name for name, pitr in picked.pitrs if pitr is False]
    head = f"{len(picked_sources(picked.source))} tables to one instant: "
    warning = (
        f" · {len(off)} with PITR off can't be restored until it is on (`/pitr-enable`)"
        if off
        else ""
    )
    room = budget - len(head) - len(warning)
    shown: list[str] = []
    for part in parts:
        if len(" · ".join([*shown, part])) > room - 12:
            shown.append(f"…and {len(parts) - len(shown)} more")
            break
        shown.append(part)
    return head + " · ".join(shown) + warning


def diff_offer_blocks(picked: Picked | None) -> list[Block]:
    """Under the instant, for one source whose account has exports set up: the way to get
    some items back without restoring the table."""
    if picked is None or picked.several or not picked.exports:
        return []
    command = code(f"/pitr-diff {shlex.quote(picked.source)} WHEN")
    text = (
        f"Only need some items back? {command} finds every item changed since WHEN without "
        "restoring the table (reads PITR's log; minutes, billed by the size of the changed data)."
    )
    return [
        ContextBlock(
            block_id=DIFF_OFFER_BLOCK, elements=[MarkdownTextObject(text=text, verbatim=True)]
        )
    ]


def restore_modal(channel: str, picked: Picked | None = None) -> View:
    """The whole form. `picked` re-renders it after a source was chosen."""
    source = picked.source if picked else None
    several = picked is not None and picked.several
    source_select = ExternalDataMultiSelectElement(
        action_id=SOURCE_ACTION,
        placeholder="Type to search the tables you may restore",
        min_query_length=0,
        initial_options=picked.options() if picked else None,
        max_selected_items=MAX_BATCH,
    )
    blocks: list[Block] = [
        InputBlock(
            block_id=SOURCE_BLOCK,
            label="Source tables",
            element=source_select,
            dispatch_action=True,  # picking one pre-fills the target
            hint=SOURCE_HINT,
        )
    ]
    if picked and picked.described and several:
        blocks.append(
            ContextBlock(
                block_id=SOURCE_INFO_BLOCK,
                elements=[MarkdownTextObject(text=several_info_text(picked), verbatim=True)],
            )
        )
    elif picked and picked.described:
        prefix = f"{code(picked.source)} · "
        info = source_info_text(picked.table, picked.pitr, SECTION_LIMIT - len(prefix))
        blocks.append(
            ContextBlock(
                block_id=SOURCE_INFO_BLOCK,
                elements=[MarkdownTextObject(text=prefix + info, verbatim=True)],
            )
        )
    blocks += [
        InputBlock(
            block_id=WHEN_TEXT_BLOCK,
            label="Restore to",
            element=PlainTextInputElement(
                action_id=VALUE_ACTION,
                placeholder="latest, 25 minutes ago, yesterday 14:05, 2026-11-26T09:30",
                max_length=100,
            ),
            hint=WHEN_HINT,
            optional=True,
        ),
        InputBlock(
            block_id=WHEN_PICK_BLOCK,
            label="…or pick a date and time",
            element=DateTimePickerElement(action_id=VALUE_ACTION),
            hint=PICK_HINT,
            optional=True,
        ),
        *diff_offer_blocks(picked),
        InputBlock(
            block_id=target_block_id(source),
            label="Suffix of the new tables" if several else "New table name",
            element=PlainTextInputElement(
                action_id=VALUE_ACTION,
                placeholder="pick the source first, or type a name",
                initial_value=picked.target if picked else None,
                max_length=255,
            ),
            hint=SUFFIX_HINT if several else TARGET_HINT,
        ),
        InputBlock(
            block_id=REASON_BLOCK,
            label="Reason",
            element=PlainTextInputElement(
                action_id=VALUE_ACTION,
                placeholder="e.g. bad deploy at 02:40 wrote bad rows",
                multiline=True,
                max_length=MAX_REASON,
            ),
            hint="Shown on the approval card.",
            optional=True,
        ),
        HeaderBlock(text="Overrides (optional)"),
        ContextBlock(
            elements=[
                MarkdownTextObject(
                    text="Leave these empty to restore with the source table's settings."
                )
            ]
        ),
        InputBlock(
            block_id=BILLING_BLOCK,
            label="Billing mode",
            element=StaticSelectElement(
                action_id=VALUE_ACTION,
                options=BILLING_OPTIONS,
                initial_option=BILLING_OPTIONS[0],
            ),
            optional=True,
        ),
        InputBlock(
            block_id=INDEXES_BLOCK,
            label="Global secondary indexes to leave out",
            element=PlainTextInputElement(
                action_id=VALUE_ACTION, placeholder="index-a, index-b", max_length=2000
            ),
            hint="Comma separated. The others are restored as they are.",
            optional=True,
        ),
        InputBlock(
            block_id=SSE_BLOCK,
            label="Encrypt with this KMS key",
            element=PlainTextInputElement(
                action_id=VALUE_ACTION,
                placeholder="key ID, key ARN or alias/…",
                max_length=2048,
            ),
            hint=(
                "Empty: the source's encryption. Only the AWS managed key alias/aws/dynamodb "
                "and keys in the policy's kms_keys are accepted; pitr-bot iam-policy grants "
                "the bot what DynamoDB needs on them (kms:DescribeKey, CreateGrant, Encrypt, "
                "Decrypt, GenerateDataKey)."
            ),
            optional=True,
        ),
    ]
    return View(
        type="modal",
        callback_id=CALLBACK_ID,
        title="Restore a table",
        submit="Request approval",
        close="Cancel",
        private_metadata=json.dumps({"channel": channel}),
        blocks=blocks,
    )


# -- reading a submission -------------------------------------------------------------------
@dataclass(frozen=True)
class ModalInput:
    """What was filled in, as typed (trimmed); nothing here is validated yet."""

    source: str = ""
    target: str = ""
    target_block: str = TARGET_BLOCK
    when_text: str = ""
    when_epoch: int | None = None
    reason: str = ""
    billing: str = BILLING_SAME
    exclude_indexes: str = ""
    sse_key: str = ""


def metadata_channel(view: dict[str, Any]) -> str:
    try:
        meta = json.loads(view.get("private_metadata") or "{}")
    except ValueError:
        return ""
    channel = meta.get("channel") if isinstance(meta, dict) else None
    return channel if isinstance(channel, str) and channel.isalnum() else ""


def read_state(values: dict[str, Any]) -> ModalInput:
    """view.state.values -> ModalInput (missing or odd-shaped entries read as empty)."""

    def element(block_id: str, action_id: str = VALUE_ACTION) -> dict[str, Any]:
        block = values.get(block_id)
        entry = block.get(action_id) if isinstance(block, dict) else None
        return entry if isinstance(entry, dict) else {}

    def text(block_id: str) -> str:
        return str(element(block_id).get("value") or "").strip()

    def selected(block_id: str, action_id: str = VALUE_ACTION) -> str:
        option = element(block_id, action_id).get("selected_option")
        return str(option.get("value") or "").strip() if isinstance(option, dict) else ""

    def sources() -> str:
        """The picked tables, comma-separated (a multi-select sends `selected_options`)."""
        options = element(SOURCE_BLOCK, SOURCE_ACTION).get("selected_options")
        if not isinstance(options, list):
            return selected(SOURCE_BLOCK, SOURCE_ACTION)
        values = [str(o.get("value") or "").strip() for o in options if isinstance(o, dict)]
        return ",".join(v for v in values if v)

    target_block = next(
        (b for b in values if b == TARGET_BLOCK or b.startswith(TARGET_BLOCK + ".")),
        TARGET_BLOCK,
    )
    epoch = element(WHEN_PICK_BLOCK).get("selected_date_time")
    try:
        when_epoch = int(epoch) if epoch not in (None, "") else None
    except (TypeError, ValueError):
        when_epoch = None
    return ModalInput(
        source=sources(),
        target=text(target_block),
        target_block=target_block,
        when_text=text(WHEN_TEXT_BLOCK),
        when_epoch=when_epoch,
        reason=text(REASON_BLOCK)[:MAX_REASON],
        billing=selected(BILLING_BLOCK) or BILLING_SAME,
        exclude_indexes=text(INDEXES_BLOCK),
        sse_key=text(SSE_BLOCK),
    )
