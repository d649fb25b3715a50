"""Which incremental exports answer "what changed since WHEN" (pure: no Slack, no boto3).

DynamoDB's rules (/work/shared/EXPORTS.md): an incremental export's period lies inside the PITR
window, lasts at least 15 minutes and at most 24 hours. So:
- WHEN before the window's start: refused, saying the earliest instant that fits;
- fewer than 15 minutes between WHEN and the latest restorable time: wait until there are
  (the export starts then), or take the restore path now;
- otherwise [WHEN, latest) cut into the fewest consecutive periods of at most 24 hours, of equal
  length (so none is shorter than 15 minutes), each starting where the last ended.
Their records are merged per key by the job file (bot/items/export_index.py): the image at WHEN
from the first period in which the key changed, the final image from the last.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlparse

from bot.tableref import RefError, parse_ref

MIN_PERIOD = timedelta(minutes=15)
MAX_PERIOD = timedelta(hours=24)
# Period boundaries follow an internal clock and "can vary by one minute" (AWS): a key whose
# last change lies this close to WHEN is flagged on the approval card.
BOUNDARY_SLACK = timedelta(minutes=1)


@dataclass(frozen=True)
class Period:
    start: datetime
    end: datetime


@dataclass(frozen=True)
class Plan:
    periods: tuple[Period, ...] = ()
    wait_until: datetime | None = None  # when the latest restorable time reaches WHEN + 15 min
    refusal: str = ""


def hhmm(at: datetime, now: datetime) -> str:
    """`10:58 UTC` today, else with its date."""
    return at.strftime("%H:%M UTC" if at.date() == now.date() else "%Y-%m-%d %H:%M UTC")


def plan(instant: datetime, earliest: datetime, latest: datetime, now: datetime) -> Plan:
    """The exports from `instant` to the latest restorable time `latest`."""
    if instant > now:
        return Plan(refusal="That instant is in the future: nothing has changed since yet.")
    if instant < earliest:
        return Plan(
            refusal=(
                f"That instant is outside the table's point-in-time recovery window: the earliest "
                f"instant DynamoDB can go back to is {earliest:%Y-%m-%d %H:%M:%S} UTC. Neither an "
                "export nor a restore can reach further back; pick an instant after that."
            )
        )
    if latest - instant < MIN_PERIOD:
        # `latest` trails the clock: the export can start once it has moved 15 minutes past WHEN.
        lag = max(timedelta(0), now - latest)
        return Plan(wait_until=instant + MIN_PERIOD + lag)
    end = latest.replace(microsecond=0)
    if end - instant < MIN_PERIOD:  # the truncation took us below 15 minutes
        end = latest
    total = end - instant
    count = max(1, math.ceil(total / MAX_PERIOD))
    # Whole microseconds, floored: no period is a rounding's microsecond over 24 hours.
    bounds = [instant + (total * i) // count for i in range(count)] + [end]
    return Plan(periods=tuple(Period(a, b) for a, b in zip(bounds, bounds[1:], strict=False)))


def near_instant(write_micros: int | None, instant: datetime) -> bool:
    """Whether a key's last change lies within a minute of WHEN (boundaries may be off by one)."""
    if write_micros is None:
        return False
    at = instant.timestamp() * 1e6
    return abs(write_micros - at) <= BOUNDARY_SLACK.total_seconds() * 1e6


def large_share(changed: int, item_count: int | None) -> bool:
    """Whether the changed items are a large share of the table: a restore and a switch of
    tables may then serve better than writing them back one by one."""
    return bool(item_count) and changed >= 0.5 * int(item_count or 0)


# A customer managed KMS key of an SSE-KMS export bucket (S3SseKmsKeyId): its key ARN, so
# `pitr-bot iam-policy` can grant exactly that key.
KMS_KEY_ARN = re.compile(r"^arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:key/[A-Za-z0-9-]{1,128}$")


@dataclass(frozen=True)
class Bucket:
    name: str
    prefix: str = ""
    owner: str | None = None  # the bucket owner's account (S3BucketOwner), if not the table's
    kms_key: str | None = None  # the bucket's customer managed key (S3SseKmsKeyId), if any


def check_kms_key(value: str | None) -> str | None:
    """An export bucket's KMS key: a key ARN, or None; ValueError with the reason otherwise."""
    if value and not KMS_KEY_ARN.fullmatch(value.strip()):
        raise ValueError(
            "must be a KMS key ARN (arn:aws:kms:REGION:ACCOUNT:key/KEY_ID), the key that "
            "encrypts the export bucket"
        )
    return value.strip() if value else None


def parse_s3(url: str) -> Bucket:
    """`s3://bucket/prefix` -> Bucket; ValueError with the reason otherwise."""
    parsed = urlparse(url.strip())
    if parsed.scheme != "s3" or not parsed.netloc:
        raise ValueError("must be s3://BUCKET or s3://BUCKET/PREFIX")
    name = parsed.netloc
    if not (3 <= len(name) <= 63) or not all(c.isalnum() or c in ".-" for c in name):
        raise ValueError(f"`{name}` is not an S3 bucket name")
    return Bucket(name, parsed.path.strip("/"))


def exports_set_up(source: str, own_s3: str | None, accounts: Mapping[str, Any]) -> bool:
    """Whether `/pitr-diff SOURCE WHEN` has a bucket to export to (the same choice as
    commands/export_diff.py's router): PITR_BOT_EXPORT_S3 for the bot's own account, the
    alias's `export_s3` for a table in the policy's `accounts:`."""
    try:
        ref = parse_ref(source)
    except RefError:
        return False
    if ref.account is None:
        return bool(own_s3)
    account = accounts.get(ref.account)
    return bool(account is not None and account.export_s3)
