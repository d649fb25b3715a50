"""Who may request and approve which restore: the policy file and its decisions.

Pure: group membership comes in through a callable, so this module never talks to Slack.
A group that cannot be resolved counts as "not a member": an outage never grants access.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from bot.places import matches as place_matches
from bot.places import parse_pattern
from bot.policy_entries import (
    CHANNEL_ID,
    SLACK_ID,
    Account,
    DrillRule,
    check_ids,
)
from bot.suggest import did_you_mean

# A glob over DynamoDB table names (letters, digits, _ . -) with * and ? only: it must also
# work as an IAM resource pattern, which knows no [...] classes.
TARGET_GLOB = re.compile(r"^[A-Za-z0-9_.*?-]{1,255}$")
# What SSESpecificationOverride's KMSMasterKeyId accepts: key ID, key ARN, alias name, alias ARN.
KMS_KEY_REF = re.compile(
    r"^(arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:(key|alias)/[A-Za-z0-9/_.+=,@-]+"
    r"|alias/[A-Za-z0-9/_-]+"
    r"|(mrk-)?[0-9a-fA-F-]{32,36})$"
)
# DynamoDB's AWS managed key: no customer key, so always allowed in an override.
AWS_MANAGED_KEY = "alias/aws/dynamodb"
# `accounts`: an alias (as written in `prod:orders`), the role the bot assumes there.
ACCOUNT_ALIAS = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")

# What `after_restore` may copy from the source onto a restored table, automatically.
AfterRestore = Literal["pitr", "ttl", "tags", "streams", "autoscaling"]
AFTER_RESTORE_CHOICES: tuple[str, ...] = ("pitr", "ttl", "tags", "streams", "autoscaling")

# Resolves a user-group ID to its members; None when Slack could not tell us.
Members = Callable[[str], "set[str] | None"]


class Rule(BaseModel):
    """Overrides for the tables matching `tables` (first matching rule wins)."""

    model_config = ConfigDict(extra="forbid")

    tables: list[str] = Field(min_length=1)
    approvers: list[str] | None = None
    required_approvals: int | None = Field(default=None, ge=1, le=10)
    allow_self_approval: bool | None = None
    requesters: list[str] | None = None
    request_ttl_minutes: float | None = Field(default=None, gt=0, le=7 * 24 * 60)
    after_restore: list[AfterRestore] | None = None
    remind_after_days: float | None = Field(default=None, gt=0, le=365)
    # May the bot write restored items back into these (live) tables? None: the default.
    copy_back: bool | None = None
    # Item data (bot/delivery.py): who may read it, whether keys are secret, where it goes.
    item_readers: list[str] | None = None
    item_keys_visible: bool | None = None
    item_channel: str | None = None

    # May the requester approve their own *restore* (after a reason)? None: the default.
    break_glass: bool | None = None

    @field_validator("approvers", "requesters", "item_readers")
    @classmethod
    def _ids(cls, v: list[str] | None) -> list[str] | None:
        return check_ids(v, SLACK_ID, "Slack user or user-group IDs (U…, W…, S…)")

    @field_validator("item_channel")
    @classmethod
    def _item_channel(cls, v: str | None) -> str | None:
        return v if v is None else check_ids([v], CHANNEL_ID, "a Slack channel ID (C…, G…)")[0]


class Policy(BaseModel):
    model_config = ConfigDict(extra="forbid")

    approvers: list[str] = Field(default_factory=list)
    required_approvals: int = Field(default=1, ge=1, le=10)
    allow_self_approval: bool = False
    request_ttl_minutes: float = Field(default=60, gt=0, le=7 * 24 * 60)
    tables: list[str] = Field(default_factory=lambda: ["*"])
    channels: list[str] = Field(default_factory=list)
    requesters: list[str] = Field(default_factory=list)
    rules: list[Rule] = Field(default_factory=list)
    # After ACTIVE: settings copied from the source at once, and when to offer the cleanup.
    after_restore: list[AfterRestore] = Field(default_factory=list)
    remind_after_days: float = Field(default=7, gt=0, le=365)
    # Every restore's new table must match this glob (e.g. "restored-*"); "*" = any name.
    target_pattern: str = "*"
    # Customer managed KMS keys a restore may encrypt with (key ARNs, IDs, alias names or
    # alias ARNs); empty = only AWS owned keys and the AWS managed key alias/aws/dynamodb.
    kms_keys: list[str] = Field(default_factory=list)
    # Other AWS accounts, by alias: `prod:orders` is table `orders` in account `prod`.
    accounts: dict[str, Account] = Field(default_factory=dict)

    @field_validator("accounts")
    @classmethod
    def _accounts(cls, v: dict[str, Account]) -> dict[str, Account]:
        bad = [alias for alias in v if not ACCOUNT_ALIAS.fullmatch(alias)]
        if bad:
            raise ValueError(
                f"account aliases are lower-case letters, digits, - and _: {', '.join(bad)}"
            )
        return v

    # Restore drills: the first entry listing a table is the one that drills it.
    drills: list[DrillRule] = Field(default_factory=list)
    # Copy back: writing restored items into a live table. Off unless a rule (or this) says so.
    copy_back: bool = False
    # Item data: readers (None: each table's approvers), keys not secret, a restricted channel.
    item_readers: list[str] | None = None
    item_keys_visible: bool = False
    item_channel: str | None = None

    # Break-glass: the requester may approve their own restore (never anything else), after
    # typing a reason; reviewed afterwards. Off unless a rule (or this) says so.
    break_glass: bool = False

    def break_glass_for(self, table: str) -> bool:
        """`break_glass` for `table`: the first matching rule's, else the default."""
        for rule in self.rules:
            if _matches(table, rule.tables):
                return self.break_glass if rule.break_glass is None else rule.break_glass
        return self.break_glass

    @field_validator("approvers", "requesters", "item_readers")
    @classmethod
    def _ids(cls, v: list[str] | None) -> list[str] | None:
        found = check_ids(v, SLACK_ID, "Slack user or user-group IDs (U…, W…, S…)")
        return found if v is not None else None

    @field_validator("item_channel")
    @classmethod
    def _item_channel(cls, v: str | None) -> str | None:
        return v if v is None else check_ids([v], CHANNEL_ID, "a Slack channel ID (C…, G…)")[0]

    @field_validator("target_pattern")
    @classmethod
    def _target_pattern(cls, v: str) -> str:
        if not TARGET_GLOB.fullmatch(v):
            raise ValueError(
                "a table-name glob: letters, digits, _ . - and the wildcards * and ? only"
            )
        return v

    @field_validator("kms_keys")
    @classmethod
    def _kms_keys(cls, v: list[str]) -> list[str]:
        bad = [key for key in v if not KMS_KEY_REF.fullmatch(key)]
        if bad:
            raise ValueError(
                f"not KMS key IDs, key ARNs, alias/NAME or alias ARNs: {', '.join(bad)}"
            )
        return v

    @field_validator("channels")
    @classmethod
    def _channels(cls, v: list[str]) -> list[str]:
        return check_ids(v, CHANNEL_ID, "Slack channel IDs (C…, G…)") or []

    def for_table(self, table: str) -> TableRule:
        """The effective rule for `table`: the defaults, overridden by the first matching rule."""
        eff = TableRule(
            approvers=tuple(self.approvers),
            required_approvals=self.required_approvals,
            allow_self_approval=self.allow_self_approval,
            requesters=tuple(self.requesters),
            request_ttl_minutes=self.request_ttl_minutes,
            rule_index=None,
        )
        for index, rule in enumerate(self.rules):
            if _matches(table, rule.tables):
                return TableRule(
                    approvers=_pick(rule.approvers, eff.approvers),
                    required_approvals=_pick(rule.required_approvals, eff.required_approvals),
                    allow_self_approval=_pick(rule.allow_self_approval, eff.allow_self_approval),
                    requesters=_pick(rule.requesters, eff.requesters),
                    request_ttl_minutes=_pick(rule.request_ttl_minutes, eff.request_ttl_minutes),
                    rule_index=index,
                )
        return eff

    def after_restore_for(self, table: str) -> tuple[str, ...]:
        """`after_restore` for `table`: the first matching rule's, else the default."""
        for rule in self.rules:
            if _matches(table, rule.tables) and rule.after_restore is not None:
                return tuple(dict.fromkeys(rule.after_restore))
            if _matches(table, rule.tables):
                break
        return tuple(dict.fromkeys(self.after_restore))

    def remind_after_days_for(self, table: str) -> float:
        for rule in self.rules:
            if _matches(table, rule.tables):
                if rule.remind_after_days is not None:
                    return rule.remind_after_days
                break
        return self.remind_after_days

    def copy_back_for(self, table: str) -> bool:
        """`copy_back` for the live table `table`: the first matching rule's, else the default."""
        for rule in self.rules:
            if _matches(table, rule.tables):
                return self.copy_back if rule.copy_back is None else rule.copy_back
        return self.copy_back

    def _item_rule(self, table: str) -> Rule | None:
        return next((r for r in self.rules if _matches(table, r.tables)), None)

    def item_readers_for(self, table: str) -> tuple[str, ...]:
        """Who may read `table`'s item values: `item_readers` (rule, else default), else the
        table's approvers. Empty: anyone who may request or approve the table."""
        rule = self._item_rule(table)
        if rule is not None and rule.item_readers is not None:
            return tuple(rule.item_readers)
        if self.item_readers is not None:
            return tuple(self.item_readers)
        return self.for_table(table).approvers

    def item_keys_visible_for(self, table: str) -> bool:
        rule = self._item_rule(table)
        keys = None if rule is None else rule.item_keys_visible
        return self.item_keys_visible if keys is None else keys

    def item_channel_for(self, table: str) -> str | None:
        rule = self._item_rule(table)
        return (rule.item_channel if rule is not None else None) or self.item_channel

    def may_read_items(self, user: str, table: str, members: Members) -> Decision:
        readers = self.item_readers_for(table)
        if not readers:
            return self.may_see(user, None, table, members)
        if self.table_allowed(table) and _is_listed(user, readers, members):
            return Decision.yes()
        return Decision.no("You may not read this table's items (policy `item_readers`).")

    def may_copy_back(self, table: str) -> Decision:
        if self.table_allowed(table) and self.copy_back_for(table):
            return Decision.yes()
        return Decision.no(
            f"Copying items back into `{table}` is off. To allow it, set `copy_back: true` in "
            "the policy file, on a rule whose `tables` match it (or as the default), and "
            "regenerate the IAM policy (`pitr-bot iam-policy`): it adds write access to that "
            "table."
        )

    def drill_for(self, table: str, home_region: str | None = None) -> DrillRule | None:
        """The `drills` entry covering `table` (a stored reference: `prod:orders@eu-west-1`),
        or None when the table is not drilled. An entry names one place: an entry without
        region means the bot's region (`home_region`)."""
        return next(
            (d for d in self.drills if any(place_matches(table, p, home_region) for p in d.tables)),
            None,
        )

    def table_allowed(self, table: str) -> bool:
        return _matches(table, self.tables)

    def _meant(self, table: str) -> str:
        """' Did you mean …?' among the tables the policy names outright (no wildcard): a
        refusal never looks further, so it never names a table outside the policy."""
        named = [t for t in self.tables if not any(c in t for c in "*?[")]
        return did_you_mean(table, [t.rsplit("@", 1)[0].rsplit(":", 1)[-1] for t in named])

    def target_allowed(self, target: str) -> Decision:
        if fnmatch.fnmatchcase(table_name_of(target), self.target_pattern):
            return Decision.yes()
        return Decision.no(
            f"The new table's name must match `{self.target_pattern}` "
            "(policy `target_pattern`). Choose a name like that."
        )

    def suggest_target(self, name: str) -> str:
        """`name` if it matches `target_pattern`, else a name that does when one is easy to
        make (the pattern's one `*` replaced by `name`); else `name` unchanged."""
        if fnmatch.fnmatchcase(name, self.target_pattern):
            return name
        pattern = self.target_pattern
        if pattern.count("*") == 1 and "?" not in pattern:
            head, tail = pattern.split("*")
            room = 255 - len(head) - len(tail)
            if room > 0:
                return head + name[-room:] + tail
        return name

    def kms_key_allowed(self, key: str) -> Decision:
        """A key in a restore override: the AWS managed key, or one listed in `kms_keys`
        (the same key written as its ID or alias name inside a listed ARN counts too)."""
        if key == AWS_MANAGED_KEY or key.endswith(":" + AWS_MANAGED_KEY):
            return Decision.yes()
        for allowed in self.kms_keys:
            short = allowed.split(":", 5)[-1] if allowed.startswith("arn:") else allowed
            bare = short.removeprefix("key/")
            if key in (allowed, short, bare):
                return Decision.yes()
        if not self.kms_keys:
            return Decision.no(
                "This policy allows no customer managed KMS key (policy `kms_keys` is empty). "
                "Leave the key empty to keep the source's encryption."
            )
        return Decision.no(
            f"KMS key {key} is not allowed (policy `kms_keys`: {', '.join(self.kms_keys)})."
        )

    def place_allowed(self, account: str | None, region: str | None) -> Decision:
        """May the bot work in this account (a key of `accounts`) and region?"""
        if account is None:
            return Decision.yes()
        if account not in self.accounts:
            known = ", ".join(f"`{a}`" for a in sorted(self.accounts)) or "none"
            return Decision.no(
                f"`{account}` is not an account the bot knows (policy `accounts`: {known})."
            )
        regions = self.accounts[account].regions
        if region is not None and regions and region not in regions:
            return Decision.no(
                f"Account `{account}` is only reachable in {', '.join(regions)} "
                "(policy `accounts`)."
            )
        return Decision.yes()

    def account_aliases(self) -> dict[str, str]:
        """Account ID -> alias, to name the account of a table given by ARN."""
        return {account.account_id: alias for alias, account in self.accounts.items()}

    def may_request(self, user: str, channel: str, table: str, members: Members) -> Decision:
        if self.channels and channel not in self.channels:
            return Decision.no("Restores can't be requested in this channel (policy `channels`).")
        if not self.table_allowed(table):
            return Decision.no(
                f"`{table}` is not covered by the policy (`tables`).{self._meant(table)}"
            )
        rule = self.for_table(table)
        if rule.requesters and not _is_listed(user, rule.requesters, members):
            return Decision.no("You are not allowed to request restores of this table.")
        return Decision.yes()

    def may_see(self, user: str, channel: str | None, table: str, members: Members) -> Decision:
        """May `user` read `table`'s status and restores? Only who may request or approve it.

        `channel` None (the App Home has no channel) checks the tables rule only.
        """
        if channel is not None and self.channels and channel not in self.channels:
            return Decision.no("PITR status can't be shown in this channel (policy `channels`).")
        if not self.table_allowed(table):
            return Decision.no(
                f"`{table}` is not covered by the policy (`tables`).{self._meant(table)}"
            )
        rule = self.for_table(table)
        # An empty list means anyone may (approvers: anyone but the requester).
        if not rule.requesters or _is_listed(user, rule.requesters, members):
            return Decision.yes()
        if not rule.approvers or _is_listed(user, rule.approvers, members):
            return Decision.yes()
        return Decision.no(
            "You may neither request nor approve restores of this table, so its status is "
            "not shown to you."
        )

    def may_approve(self, user: str, requester: str, table: str, members: Members) -> Decision:
        rule = self.for_table(table)
        if user == requester and not rule.allow_self_approval:
            return Decision.no(
                "You asked for this restore, so someone else has to approve it (four-eyes rule)."
            )
        if rule.approvers and not _is_listed(user, rule.approvers, members):
            return Decision.no("You are not one of the approvers for this table.")
        return Decision.yes()

    def may_deny(self, user: str, requester: str, table: str, members: Members) -> Decision:
        # The requester may always withdraw their own request; otherwise approvers decide.
        if user == requester:
            return Decision.yes()
        return self.may_approve(user, requester, table, members)

    def problems(self) -> list[str]:
        """Reasons this policy can never be satisfied (checked at start-up and by check-config)."""
        found: list[str] = []
        scopes: list[tuple[str, TableRule]] = [("defaults", self.for_table("\0"))]
        for index, rule in enumerate(self.rules):
            scopes.append((f"rules[{index}] {rule.tables}", self._rule_at(index)))
        for name, rule in scopes:
            users = {a for a in rule.approvers if not a.startswith("S")}
            has_groups = any(a.startswith("S") for a in rule.approvers)
            if rule.approvers and not has_groups and len(users) < rule.required_approvals:
                found.append(
                    f"{name}: {rule.required_approvals} approvals required but only "
                    f"{len(users)} approver(s) listed"
                )
        for index, drill in enumerate(self.drills):
            for entry in drill.tables:
                ref = parse_pattern(entry)  # (validated when the policy was read)
                decision = self.place_allowed(ref.account, ref.region)
                if not decision.allowed:
                    found.append(f"drills[{index}] {entry}: {decision.reason}")
        return found

    def _rule_at(self, index: int) -> TableRule:
        rule = self.rules[index]
        return TableRule(
            approvers=_pick(rule.approvers, tuple(self.approvers)),
            required_approvals=_pick(rule.required_approvals, self.required_approvals),
            allow_self_approval=_pick(rule.allow_self_approval, self.allow_self_approval),
            requesters=_pick(rule.requesters, tuple(self.requesters)),
            request_ttl_minutes=_pick(rule.request_ttl_minutes, self.request_ttl_minutes),
            rule_index=index,
        )


@dataclass(frozen=True)
class TableRule:
    approvers: tuple[str, ...]
    required_approvals: int
    allow_self_approval: bool
    requesters: tuple[str, ...]
    request_ttl_minutes: float
    rule_index: int | None


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str = ""

    @classmethod
    def yes(cls) -> Decision:
        return cls(True)

    @classmethod
    def no(cls, reason: str) -> Decision:
        return cls(False, reason)


class PolicyError(Exception):
    """The policy file is unreadable or invalid; `problems` lists every reason."""

    def __init__(self, problems: list[str]):
        super().__init__("; ".join(problems))
        self.problems = problems


def load_policy(path: str | Path | None) -> Policy:
    """Read and validate a policy file; no path means the built-in default policy."""
    if path is None or str(path) == "":
        policy = Policy()
    else:
        try:
            raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        except OSError as exc:
            raise PolicyError([f"cannot read policy file {path}: {exc.strerror}"]) from exc
        except yaml.YAMLError as exc:
            raise PolicyError([f"policy file {path} is not valid YAML: {exc}"]) from exc
        if raw is None:
            raw = {}
        if not isinstance(raw, dict):
            raise PolicyError([f"policy file {path} must be a mapping of keys to values"])
        try:
            policy = Policy.model_validate(raw)
        except ValidationError as exc:
            raise PolicyError([_describe(e) for e in exc.errors()]) from exc
    problems = policy.problems()
    if problems:
        raise PolicyError(problems)
    return policy


def _describe(error: object) -> str:
    err = error  # pydantic's ErrorDetails is a TypedDict
    loc = ".".join(str(part) for part in err["loc"]) or "policy"  # type: ignore[index]
    return f"{loc}: {err['msg']}"  # type: ignore[index]


def _matches(table: str, patterns: list[str] | tuple[str, ...]) -> bool:
    name = policy_name(table)
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns)


def policy_name(ref: str) -> str:
    """What globs match for a stored table reference: `prod:orders@eu-west-1` -> `prod:orders`
    (the account is part of the name, the region is not)."""
    return ref.partition("@")[0]


def table_name_of(ref: str) -> str:
    """The bare DynamoDB table name of a stored reference: `prod:orders@eu-west-1` -> `orders`."""
    return policy_name(ref).rpartition(":")[2]


def _pick(override: Any, default: Any) -> Any:
    if override is None:
        return default
    if isinstance(override, list):
        return tuple(override)
    return override


def _is_listed(user: str, ids: tuple[str, ...], members: Members) -> bool:
    if user in ids:
        return True
    for group in (i for i in ids if i.startswith("S")):
        found = members(group)
        if found and user in found:
            return True
    return False
