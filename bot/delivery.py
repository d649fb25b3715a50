"""Item data goes only to its readers: where a diff file (and its examples) may go, and the
streamed upload that takes it there. Any flow that shows item values (a comparison, an export)
delivers through here; the channel thread only ever gets counts.

Where: a direct message to the person who asked, if the policy lets them read the table's
items (`item_readers`, default the table's approvers), and the table's restricted channel
(`item_channel`) if one is set. Nobody else.

How: Slack's external upload (files.getUploadURLExternal, the file POSTed from disk in chunks,
files.completeUploadExternal), so a file of any size costs a chunk of memory. Sharing a file
needs channel membership, which `chat:write.public` does not give: a DM needs `im:write`
(conversations.open), a restricted channel needs the bot invited. A refusal no retry fixes
(`UploadRefused`) is raised once, with what to do about it; anything else (network, 5xx)
is raised as is, for the outbox to retry.
"""

from __future__ import annotations

import re
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from slack_sdk.errors import SlackApiError

from bot.policy import Policy

# Slack takes files up to 1 GB (files.getUploadURLExternal answers file_too_large above).
MAX_FILE_BYTES = 1024**3
CHUNK = 64 * 1024  # bytes read from disk and sent at a time
UPLOAD_TIMEOUT = 120
# Slack errors no retry fixes, and what the operator does about each.
ADVICE = {
    "not_in_channel": "invite the bot to that channel (`/invite @pitr-bot`): sharing a file "
    "needs membership, which `chat:write.public` does not give",
    "channel_not_found": "invite the bot to that channel (`/invite @pitr-bot`), or check "
    "the policy's `item_channel`",
    "missing_scope": "add the missing scope to the app (manifest.yml: `files:write` to "
    "upload, `im:write` to open a direct message) and reinstall it",
    "not_allowed_token_type": "use the bot token (xoxb-)",
    "file_uploads_disabled": "a workspace admin must allow file uploads",
    "file_uploads_except_images_disabled": "a workspace admin must allow file uploads",
    "file_too_large": f"Slack takes files up to {MAX_FILE_BYTES // 1024**3} GB; compare "
    "fewer keys (`/pitr-diff TABLE keys: …`)",
    "is_archived": "the channel is archived",
    "user_not_found": "the person is not in this workspace",
    "cannot_dm_bot": "the person is a bot",
    "invalid_arguments": "the upload was refused as malformed",
}
Members = Callable[[str], Any]


class UploadRefused(Exception):
    """Slack refused for good: never retried; `advice` says what to do."""

    def __init__(self, error: str, needed: str = ""):
        self.error = error
        self.advice = ADVICE.get(error, "Slack refused it")
        if error == "missing_scope" and needed:  # Slack names the scope it wanted
            self.advice = f"add the `{needed}` scope to the app (manifest.yml) and reinstall it"
        super().__init__(f"{error}: {self.advice}")


@dataclass(frozen=True)
class Destination:
    """One place item data may go: a person's DM (`user`) or a restricted channel."""

    kind: str  # "dm" or "channel"
    id: str  # a user ID (dm) or a channel ID

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.id}"

    @property
    def label(self) -> str:
        return "a direct message to the person who asked" if self.kind == "dm" else f"<#{self.id}>"


def destinations(policy: Policy, table: str, asker: str, members: Members) -> list[Destination]:
    """Where `table`'s item data may go when `asker` asked: their DM if they may read it, and
    the table's `item_channel`. Empty: counts only."""
    found = []
    if asker and policy.may_read_items(asker, table, members).allowed:
        found.append(Destination("dm", asker))
    channel = policy.item_channel_for(table)
    if channel:
        found.append(Destination("channel", channel))
    return found


def readers_text(policy: Policy, table: str) -> str:
    """Who may read `table`'s items, in Slack markup (for a person who may not)."""
    readers = policy.item_readers_for(table)
    if not readers:
        return "anyone who may request or approve restores of it"
    shown = [f"<!subteam^{r}>" if r.startswith("S") else f"<@{r}>" for r in readers[:10]]
    more = f" and {len(readers) - 10} more" if len(readers) > 10 else ""
    where = policy.item_channel_for(table)
    channel = f" (and the channel <#{where}>)" if where else ""
    return ", ".join(shown) + more + channel


Record = Callable[[Destination, "str | None", "UploadRefused | None"], None]


def deliver(
    client: Any,
    places: list[Destination],
    path: Path,
    filename: str,
    title: str,
    comment: str,
    done: tuple[str, ...] | set[str],
    record: Record,
) -> None:
    """Share the file at `path` (with `comment`: examples, a summary) in each place not yet
    `done` (their keys). `record(place, file_id, None)` after each delivery, `record(place,
    None, refusal)` after a refusal no retry fixes: the caller stores it (with its audit entry)
    so a retry of the rest never sends one twice. Other errors propagate, for a retry."""
    for place in places:
        if place.key in done:
            continue
        try:
            file_id = upload(client, path, open_place(client, place), filename, title, comment)
        except UploadRefused as refused:
            record(place, None, refused)
            continue
        record(place, file_id, None)


def open_place(client: Any, dest: Destination) -> str:
    """The channel ID to share into: a DM is opened first (conversations.open, `im:write`)."""
    if dest.kind != "dm":
        return dest.id
    try:
        resp = client.conversations_open(users=dest.id)
    except SlackApiError as exc:
        raise _refused_or_raise(exc) from exc
    return str(resp["channel"]["id"])


def upload(
    client: Any,
    path: Path,
    channel: str,
    filename: str,
    title: str,
    initial_comment: str | None = None,
) -> str:
    """Share the file at `path` in `channel`, streamed from disk; returns Slack's file ID."""
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise UploadRefused("file_too_large")
    try:
        resp = client.files_getUploadURLExternal(filename=filename, length=size)
        file_id = str(resp["file_id"])
        post_file(str(resp["upload_url"]), path, size)
        args: dict[str, Any] = {"files": [{"id": file_id, "title": title}], "channel_id": channel}
        if initial_comment:
            args["initial_comment"] = initial_comment
        client.files_completeUploadExternal(**args)
    except SlackApiError as exc:
        raise _refused_or_raise(exc) from exc
    return file_id


def post_file(url: str, path: Path, size: int) -> None:
    """POST the file's bytes to Slack's upload URL, CHUNK bytes at a time (never whole)."""
    with path.open("rb") as handle:
        request = urllib.request.Request(  # noqa: S310 - Slack's upload URL (https)
            url,
            data=_Chunks(handle),
            method="POST",
            headers={"Content-Type": "application/octet-stream", "Content-Length": str(size)},
        )
        try:
            with urllib.request.urlopen(request, timeout=UPLOAD_TIMEOUT) as resp:  # noqa: S310
                resp.read()
        except urllib.error.HTTPError as exc:
            if exc.code == 413:
                raise UploadRefused("file_too_large") from exc
            if 400 <= exc.code < 500 and exc.code not in (408, 429):
                raise UploadRefused("invalid_arguments") from exc
            raise OSError(f"upload answered HTTP {exc.code}") from exc


class _Chunks:
    """A file http.client sends by read(): at most CHUNK bytes each time."""

    def __init__(self, handle: Any):
        self.handle = handle

    def read(self, size: int = CHUNK) -> bytes:
        return self.handle.read(min(size if size > 0 else CHUNK, CHUNK))


GONE = {"file_not_found", "file_deleted"}
# files.delete refusals no retry fixes: logged for the operator, never retried forever.
CANT_DELETE = {"cant_delete_file", "missing_scope", "not_allowed_token_type", "no_permission"}


def unshare(client: Any, file_ids: tuple[str, ...] | list[str]) -> list[str]:
    """Delete files the bot shared (files.delete); one already gone is fine. Returns the IDs
    Slack refused to delete for good (to log); other errors propagate, for a retry."""
    refused = []
    for file_id in file_ids:
        try:
            client.files_delete(file=file_id)
        except SlackApiError as exc:
            error = str(exc.response.get("error", ""))
            if error in CANT_DELETE:
                refused.append(f"{file_id} ({error})")
            elif error not in GONE:
                raise
    return refused


def _refused_or_raise(exc: SlackApiError) -> Exception:
    error = str(exc.response.get("error", ""))
    needed = re.sub(r"[^a-z:._,-]", "", str(exc.response.get("needed") or ""))[:60]
    return UploadRefused(error, needed) if error in ADVICE else exc
