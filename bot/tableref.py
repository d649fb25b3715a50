"""Table references: which table, in which account and region. Pure: no Slack, no boto3.

A person writes a table as `NAME`, `NAME@REGION`, `ALIAS:NAME`, `ALIAS:NAME@REGION` or a table
ARN. `ALIAS` is a key of the policy's `accounts`; no alias means the bot's own account, no
region means the default region (or, for a restore target, the source's). Several sources are
comma-separated; with several, the target argument is a *suffix* appended to each source name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

TABLE_NAME = re.compile(r"^[A-Za-z0-9_.-]{3,255}$")
REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d{1,2}$")
ALIAS = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
ACCOUNT_ID = re.compile(r"^\d{12}$")
ARN = re.compile(
    r"^arn:(?P<partition>aws[a-z-]*):dynamodb:(?P<region>[a-z0-9-]+):(?P<account>\d{12}):"
    r"table/(?P<name>[A-Za-z0-9_.-]{3,255})$"
)
# With one source and one target, a target is a name; with several sources, a suffix.
MAX_BATCH = 25  # one card lists every table; Slack's 50-block limit keeps this modest


class RefError(ValueError):
    """Text that is not a table reference; the message says what is accepted."""


FORMS = "`NAME`, `NAME@REGION`, `ALIAS:NAME`, `ALIAS:NAME@REGION` or a table ARN"


@dataclass(frozen=True)
class TableRef:
    name: str
    account: str | None = None  # policy `accounts` alias; None = the bot's own account
    region: str | None = None  # None = the default region (or the source's, for a target)
    account_id: str | None = None  # 12 digits, known from an ARN or once resolved

    def __str__(self) -> str:
        text = f"{self.account}:{self.name}" if self.account else self.name
        return f"{text}@{self.region}" if self.region else text

    @property
    def policy_name(self) -> str:
        """The name policy globs match: `orders`, or `prod:orders` in another account."""
        return f"{self.account}:{self.name}" if self.account else self.name

    def in_region(self, region: str | None) -> TableRef:
        """The same table with its region filled in when it had none."""
        return self if self.region or region is None else replace(self, region=region)

    def same_place(self, other: TableRef) -> bool:
        return (self.account, self.region) == (other.account, other.region)

    def arn(self, account_id: str, region: str, partition: str = "aws") -> str:
        return f"arn:{partition}:dynamodb:{region}:{account_id}:table/{self.name}"


def canonical(ref: TableRef, home_region: str | None) -> TableRef:
    """The reference as stored: no region when it is the bot's own (`home_region`), so a
    table of the bot's own account and region stays a plain name."""
    plain = ref.region is None or ref.region == home_region
    return TableRef(ref.name, ref.account, None if plain else ref.region)


def account_of(ref: str) -> str:
    """The account alias of a stored reference; "" for the bot's own account."""
    head, sep, _ = ref.partition("@")[0].partition(":")
    return head if sep else ""


def region_crossing(source: str, target: str) -> str | None:
    """What an approver must know when a stored source and target lie in different regions
    (stored references are absolute: no region = the bot's own), else None."""
    try:
        src, tgt = parse_ref(source).region, parse_ref(target).region
    except RefError:
        return None
    if src == tgt:
        return None
    home = "the bot's region"
    return (
        f"Data crosses regions: {src or home} → {tgt or home}. "
        "AWS charges inter-region data transfer for the restored data."
    )


def parse_ref(text: str, aliases: dict[str, str] | None = None) -> TableRef:
    """One table reference. `aliases` maps account IDs to policy aliases ("" for the bot's
    own); given, an ARN of any other account is refused."""
    text = text.strip()
    if not text:
        raise RefError(f"A table is missing. Write it as {FORMS}.")
    if text.startswith("arn:"):
        match = ARN.match(text)
        if not match:
            raise RefError(f"`{_short(text)}` is not a DynamoDB table ARN.")
        account_id = match["account"]
        if aliases is not None and account_id not in aliases:
            # Never read as the bot's own: that would be another table of the same name.
            raise RefError(
                f"Account {account_id} is neither the bot's own nor one of the policy's "
                f"`accounts`, so I can't reach `{match['name']}` there."
            )
        alias = (aliases or {}).get(account_id) or None
        return TableRef(match["name"], alias, match["region"], account_id)
    account: str | None = None
    if ":" in text:
        account, _, text = text.partition(":")
        if not ALIAS.match(account):
            raise RefError(f"`{_short(account)}` is not an account alias. Write {FORMS}.")
    region: str | None = None
    if "@" in text:
        text, _, region = text.partition("@")
        if not REGION.match(region):
            raise RefError(f"`{_short(region)}` is not an AWS region (like `eu-west-1`).")
    if not TABLE_NAME.match(text):
        raise RefError(
            f"`{_short(text)}` is not a table name: 3 to 255 letters, digits, "
            "underscores (`_`), hyphens (`-`) or periods (`.`)."
        )
    return TableRef(text, account, region)


def parse_sources(text: str, aliases: dict[str, str] | None = None) -> list[TableRef]:
    """Comma-separated sources, each once, in the order given."""
    parts = [p for p in (s.strip() for s in text.split(",")) if p]
    if not parts:
        raise RefError(f"A source table is missing. Write it as {FORMS}.")
    if len(parts) > MAX_BATCH:
        raise RefError(f"{len(parts)} tables at once; one request takes at most {MAX_BATCH}.")
    refs = [parse_ref(p, aliases) for p in parts]
    seen: set[TableRef] = set()
    for ref in refs:
        if ref in seen:
            raise RefError(f"`{ref}` is listed twice.")
        seen.add(ref)
    return refs


def targets_for(sources: list[TableRef], text: str) -> list[TableRef]:
    """Targets: one source takes a table reference; several take a name suffix.

    A target stays in its source's account; it may name its own region (`copy@us-east-1`),
    otherwise it is created in the source's region.
    """
    text = text.strip()
    if len(sources) == 1:
        target = parse_ref(text)
        if target.account and target.account != sources[0].account:
            raise RefError("A restore stays in the source's account: give the target no alias.")
        if text.startswith("arn:"):
            raise RefError("Name the target table (optionally `NAME@REGION`), not an ARN.")
        return [replace(target, account=sources[0].account).in_region(sources[0].region)]
    suffix, _, region = text.partition("@")
    if region and not REGION.match(region):
        raise RefError(f"`{_short(region)}` is not an AWS region (like `eu-west-1`).")
    if not suffix or not re.fullmatch(r"[A-Za-z0-9_.-]+", suffix):
        raise RefError(
            "With several sources the second argument is a suffix added to each name "
            "(like `-before-incident`): letters, digits, underscores (`_`), hyphens (`-`) "
            "or periods (`.`)."
        )
    targets = []
    for source in sources:
        name = source.name + suffix
        if len(name) > 255:
            raise RefError(f"`{source.name}` plus the suffix is longer than 255 characters.")
        targets.append(TableRef(name, source.account, region or source.region, source.account_id))
    return targets


def _short(text: str, limit: int = 60) -> str:
    text = text.replace("`", "'")
    return text if len(text) <= limit else text[: limit - 1] + "…"
