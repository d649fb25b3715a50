"""The policy file's building blocks: Slack IDs, `accounts:` entries, `drills:` entries (pure).

Validation only; the decisions are bot/policy.py's.
"""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, field_validator

from bot.drills.model import Schedule, parse_every
from bot.places import parse_pattern
from bot.tableref import RefError

# Slack user IDs start with U or W (Enterprise Grid), user-group IDs with S.
SLACK_ID = re.compile(r"^[UWS][A-Z0-9]{1,20}$")
CHANNEL_ID = re.compile(r"^[CGD][A-Z0-9]{1,20}$")
ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::(?P<account>\d{12}):role/[A-Za-z0-9+=,.@_/-]{1,512}$")
# STS: ExternalId is 2-1224 characters of [\w+=,.@:/-].
EXTERNAL_ID = re.compile(r"^[\w+=,.@:/-]{2,1224}$")
REGION_NAME = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d{1,2}$")


def check_ids(values: list[str] | None, pattern: re.Pattern[str], what: str) -> list[str] | None:
    if values is None:
        return None
    bad = [v for v in values if not pattern.match(v)]
    if bad:
        raise ValueError(f"not {what}: {', '.join(bad)}")
    return values


class Account(BaseModel):
    """Another AWS account the bot may restore in, through a role it assumes there."""

    model_config = ConfigDict(extra="forbid")

    role_arn: str
    external_id: str | None = None
    regions: list[str] = Field(default_factory=list)  # empty = any region
    # Where this account's incremental exports go (`s3://bucket/prefix`); absent = not set up.
    export_s3: str | None = None
    export_s3_owner: str | None = None  # the bucket owner's account id, if another account
    # The customer managed KMS key (ARN) of an SSE-KMS export bucket; absent = none.
    export_s3_kms_key: str | None = None

    @field_validator("export_s3_kms_key")
    @classmethod
    def _export_s3_kms_key(cls, v: str | None) -> str | None:
        from bot.items.export_plan import check_kms_key  # noqa: PLC0415 - a pure helper

        return check_kms_key(v)

    @field_validator("export_s3")
    @classmethod
    def _export_s3(cls, v: str | None) -> str | None:
        if v is not None and not re.fullmatch(r"s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/\S*)?", v):
            raise ValueError("s3://BUCKET or s3://BUCKET/PREFIX")
        return v

    @field_validator("role_arn")
    @classmethod
    def _role_arn(cls, v: str) -> str:
        if not ROLE_ARN.fullmatch(v):
            raise ValueError("an IAM role ARN (arn:aws:iam::123456789012:role/NAME)")
        return v

    @field_validator("external_id")
    @classmethod
    def _external_id(cls, v: str | None) -> str | None:
        if v is not None and not EXTERNAL_ID.fullmatch(v):
            raise ValueError("2 to 1224 letters, digits or +=,.@:/-_")
        return v

    @field_validator("regions")
    @classmethod
    def _regions(cls, v: list[str]) -> list[str]:
        bad = [r for r in v if not REGION_NAME.fullmatch(r)]
        if bad:
            raise ValueError(f"not AWS regions: {', '.join(bad)}")
        return v

    @property
    def account_id(self) -> str:
        match = ROLE_ARN.fullmatch(self.role_arn)
        return match["account"] if match else ""


class DrillRule(BaseModel):
    """Restore drills for the tables matching `tables`, every `every`, reported in `channel`.

    Each entry is a table reference whose name may be a glob, in one place: `orders`,
    `orders-*`, `orders@eu-west-1`, `prod:orders`, `prod:*@us-east-1` (no region: the bot's)."""

    model_config = ConfigDict(extra="forbid")

    tables: list[str] = Field(min_length=1)
    every: str
    channel: str
    # True: each drill (typed or scheduled) waits for an Approve on a card in `channel`, by an
    # approver of the table as for a restore (never the person who asked); default: none.
    require_approval: bool = False

    @field_validator("tables")
    @classmethod
    def _tables(cls, v: list[str]) -> list[str]:
        for entry in v:
            try:
                parse_pattern(entry)
            except RefError as exc:
                raise ValueError(f"{entry!r}: {exc}") from exc
        return v

    @field_validator("every")
    @classmethod
    def _every(cls, v: str) -> str:
        parse_every(v)  # raises ValueError with what is accepted
        return v

    @field_validator("channel")
    @classmethod
    def _channel(cls, v: str) -> str:
        check_ids([v], CHANNEL_ID, "a Slack channel ID (C…, G…)")
        return v

    @property
    def schedule(self) -> Schedule:
        return parse_every(self.every)
