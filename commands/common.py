"""Small helpers every command shares: safe text, replies, the person's time zone, errors."""

from __future__ import annotations

import functools
import logging
import re
import shlex
import uuid
from collections.abc import Callable
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError

from bot.blocks import code, esc
from bot.restores import table_name_problem
from bot.tableref import RefError, parse_ref, parse_sources, targets_for

log = logging.getLogger(__name__)

MAX_TEXT = 1000  # longer command text is refused before any parsing
SMART_QUOTES = str.maketrans({"“": '"', "”": '"', "‘": "'", "’": "'"})


class InputError(ValueError):
    """Text a person typed that we refuse; the message says why and what to do."""


def split_args(text: str) -> list[str]:
    """Split like a shell, accepting the curly quotes Slack clients like to insert."""
    if len(text) > MAX_TEXT:
        raise InputError(f"That is {len(text)} characters; commands are limited to {MAX_TEXT}.")
    try:
        return shlex.split(text.translate(SMART_QUOTES))
    except ValueError as exc:
        raise InputError(f"I couldn't read that: {exc}. Check your quotes.") from exc


def warn(respond: Any, message: str) -> None:
    """An ephemeral refusal: only the person concerned sees it."""
    respond(response_type="ephemeral", replace_original=False, text=f":warning: {esc(message)}")


def user_tz(client: WebClient, user_id: str) -> str:
    """The person's Slack time zone (users.info), UTC when Slack can't tell us."""
    try:
        resp = client.users_info(user=user_id)
        return str(resp.get("user", {}).get("tz") or "UTC")
    except (SlackApiError, SlackClientError, OSError) as exc:
        log.warning("users.info for %s failed (%s); using UTC", user_id, exc)
        return "UTC"


REASON = re.compile(r"\breason:\s*", re.IGNORECASE)


def split_reason(text: str) -> tuple[str, str]:
    """'a b latest reason: bad deploy' -> ('a b latest', 'bad deploy')."""
    parts = REASON.split(text, maxsplit=1)
    if len(parts) == 2:
        return parts[0].strip(), parts[1].strip()[:500]
    return text.strip(), ""


def reports_errors(listener: Callable[..., None]) -> Callable[..., None]:
    """Catch a listener's unexpected error, log it with a reference, tell the person.

    Bolt's own error path, when a listener fails *after* ack(), can reset the ack and make
    Slack show a failure 3 s later; catching here keeps the ack and the person informed.
    """

    @functools.wraps(listener)  # Bolt injects arguments by the wrapped function's names
    def wrapper(*args: Any, **kwargs: Any) -> None:
        _guarded(lambda: listener(*args, **kwargs), kwargs.get("respond"), listener.__name__)

    return wrapper


def after_ack(services: Any, respond: Any, work: Callable[[], None]) -> None:
    """Run the slow part of a listener (AWS, Slack calls) on the bot's work pool.

    The listener thread is then free at once for the next request's ack(), so a burst of
    slow work never delays Slack's 3-second answer to anyone else.
    """
    services.work.submit(_guarded, work, respond, getattr(work, "__name__", "work"))


def _guarded(work: Callable[[], None], respond: Any, name: str) -> None:
    try:
        work()
    except Exception as exc:  # noqa: BLE001 - the boundary: nothing may escape to Slack
        report_error(exc, name, respond)


def report_error(error: BaseException, where: str, respond: Any = None) -> None:
    """Log an unexpected error with a short reference and give the person that reference."""
    ref = uuid.uuid4().hex[:8]
    log.error("unhandled error in %s (ref %s)", where, ref, exc_info=error)
    if respond is None:
        return
    try:
        respond(
            response_type="ephemeral",
            replace_original=False,
            text=f":warning: Something went wrong on my side (ref `{ref}`); it is logged. "
            "Try again, and tell the bot's owners if it keeps happening.",
        )
    except Exception:  # noqa: BLE001 - already in the error path
        log.warning("could not tell the person about error %s", ref)


def ref_problem(text: str, label: str) -> str | None:
    """Why `text` is no table reference (`orders`, `prod:orders@eu-west-1`, an ARN), if so.
    Whether the account and region may be used is the engine's call (bot.workflow)."""
    if "," in text:  # several sources (a batch)
        parts = [p for p in (s.strip() for s in text.split(",")) if p]
        return next((p for p in (ref_problem(part, label) for part in parts) if p), None)
    if ":" not in text and "@" not in text:
        return table_name_problem(text, label)
    try:
        parse_ref(text)
    except RefError as exc:
        return str(exc)
    return None


def pairs_text(source: str, target: str) -> str:
    """'`orders` → `orders-copy`'; for several sources each with its own target (the second
    argument is then a suffix), not the sources as typed and the bare suffix."""
    if "," not in source:
        return f"{code(source)} → {code(target)}"
    try:
        sources = parse_sources(source)
        targets = targets_for(sources, target)
    except RefError:
        return f"{code(source)} → {code(target)}"
    return ", ".join(
        f"{code(str(s))} → {code(str(t))}" for s, t in zip(sources, targets, strict=True)
    )
