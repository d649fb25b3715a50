"""What a person means by "when": latest, ISO 8601, Unix seconds or human text.

Human text ("25 minutes ago", "yesterday 14:05") is parsed by dateparser in the person's own
Slack time zone; the result is always an aware UTC datetime.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

MAX_LENGTH = 100
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)  # also keeps later date arithmetic from overflowing
LATEST_WORDS = {"", "latest", "now", "newest"}
BARE_NUMBER = re.compile(r"^\d+(\.\d+)?$")
# A bare number is only ever read as Unix seconds, and only when it is a plausible one (from
# 2000 on, at most 11 digits); "11" or "5" would otherwise reach dateparser as a month.
UNIX_PLAUSIBLE = (946_684_800, 99_999_999_999)  # 2000-01-01 .. 11 digits
ISO_LIKE = re.compile(
    r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?(Z|[+-]\d{2}:?\d{2})?$"
)


class WhenError(ValueError):
    """The text is not a time we understand; the message says what we do understand."""


HELP = (
    "Use `latest`, an ISO 8601 time like `2026-11-26T09:30` (your Slack time zone unless it "
    "has an offset), Unix seconds like `1795685400`, or text like `25 minutes ago`."
)


def zone(tz_name: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(tz_name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def parse_when(text: str, tz_name: str | None, now: datetime) -> datetime | None:
    """The instant meant by `text`, in UTC; None means "the latest restorable time"."""
    text = (text or "").strip()
    if len(text) > MAX_LENGTH:
        raise WhenError(f"That time is too long to be a time. {HELP}")
    if text.lower() in LATEST_WORDS:
        return None
    tz = zone(tz_name)
    try:
        if BARE_NUMBER.match(text):
            seconds = float(text)
            if not UNIX_PLAUSIBLE[0] <= seconds <= UNIX_PLAUSIBLE[1]:
                raise WhenError(
                    f"`{text}` is a bare number: I won't guess whether it is a day, a month or "
                    f"an hour, and it is not plausible Unix seconds. {HELP}"
                )
            instant = datetime.fromtimestamp(seconds, tz=UTC)
        elif ISO_LIKE.match(text):
            parsed = datetime.fromisoformat(text)
            instant = (parsed if parsed.tzinfo else parsed.replace(tzinfo=tz)).astimezone(UTC)
        else:
            instant = _human(text, tz, now)
    except (ValueError, OverflowError, OSError) as exc:
        # OverflowError: 0001-01-01 in a zone east of UTC, 9999-12-31 west of it, and the like.
        if isinstance(exc, WhenError):
            raise
        raise WhenError(f"`{text}` is not a valid date and time I can use. {HELP}") from exc
    if instant < EARLIEST:
        raise WhenError("That instant is decades before any restorable window. " + HELP)
    if instant > now + timedelta(seconds=60):
        raise WhenError("That instant is in the future; a restore can only go back in time.")
    return instant


def _human(text: str, tz: ZoneInfo, now: datetime) -> datetime:
    import dateparser  # slow to import; only needed for human text

    parsed = dateparser.parse(
        text,
        languages=["en"],
        settings={
            "TIMEZONE": str(tz),
            "RETURN_AS_TIMEZONE_AWARE": True,
            "RELATIVE_BASE": now.astimezone(tz).replace(tzinfo=None),
            "PREFER_DATES_FROM": "past",
        },
    )
    if parsed is None:
        raise WhenError(f"I can't read `{text}` as a time. {HELP}")
    return parsed.astimezone(UTC)


def format_instant(instant: datetime, tz_name: str | None) -> str:
    """'2026-11-26 09:30:00 UTC (10:30 Europe/Berlin)'."""
    utc = instant.astimezone(UTC)
    text = utc.strftime("%Y-%m-%d %H:%M:%S UTC")
    tz = zone(tz_name)
    if str(tz) != "UTC":
        local = instant.astimezone(tz)
        day = "" if local.date() == utc.date() else local.strftime("%Y-%m-%d ")
        text += f" ({day}{local.strftime('%H:%M')} {tz})"
    return text


def ago(instant: datetime, now: datetime) -> str:
    seconds = int((now - instant).total_seconds())
    if seconds < 0:
        return "in the future"
    if seconds < 90:
        return f"{seconds} s ago"
    if seconds < 90 * 60:
        return f"{round(seconds / 60)} min ago"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} h ago"
    return f"{seconds / 86400:.1f} days ago"
