"""Where the bot may find tables: (account alias, region) places, and table patterns. Pure.

The bot's own account and region is one place; each policy `accounts` entry adds one place per
region it lists (none listed: the bot's region). The restore form offers the tables of every
place; drills (`drills: tables:`) name tables, or globs of names, in one place each:
`orders`, `orders@eu-west-1`, `prod:orders`, `prod:orders-*@us-east-1`.

References are canonical (see tableref.canonical): the bot's own region is never written, so a
table of the bot's own account and region stays a plain name.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from bot.tableref import ALIAS, REGION, RefError, TableRef, canonical, parse_ref

# A table-name glob: the characters of a table name, plus * and ? (as policy `tables`).
NAME_GLOB = re.compile(r"^[A-Za-z0-9_.*?-]{1,255}$")


@dataclass(frozen=True)
class Place:
    account: str | None = None  # policy `accounts` alias; None = the bot's own account
    region: str | None = None  # None = the bot's own region

    def ref(self, name: str) -> str:
        """The stored reference of table `name` here: `orders`, `prod:orders@eu-west-1`."""
        return str(TableRef(name, self.account, self.region))


def places(accounts: Mapping[str, Any], home_region: str | None) -> list[Place]:
    """Every place the bot may work in: its own first, then each account's regions, in the
    policy's order. `accounts` is the policy's (alias -> entry with `regions`)."""
    found = [Place()]
    for alias, account in accounts.items():
        for region in list(getattr(account, "regions", None) or []) or [None]:
            place = Place(alias, None if region == home_region else region)
            if place not in found:
                found.append(place)
    return found


def parse_pattern(text: str) -> TableRef:
    """A `drills` table entry: a table reference whose name may be a glob (`prod:orders-*`).
    Raises RefError saying what is accepted."""
    text = text.strip()
    if "*" not in text and "?" not in text:
        return parse_ref(text)
    account: str | None = None
    name = text
    if ":" in name:
        account, _, name = name.partition(":")
        if not ALIAS.match(account):
            raise RefError(f"`{account}` is not an account alias.")
    region: str | None = None
    if "@" in name:
        name, _, region = name.partition("@")
        if not REGION.match(region):
            raise RefError(f"`{region}` is not an AWS region (like `eu-west-1`).")
    if not NAME_GLOB.match(name):
        raise RefError(f"`{name}` is not a table name or a glob of names (`*`, `?`).")
    return TableRef(name, account, region)


def is_glob(pattern: TableRef) -> bool:
    return any(c in pattern.name for c in "*?")


def place_of(ref: TableRef, home_region: str | None) -> Place:
    ref = canonical(ref, home_region)
    return Place(ref.account, ref.region)


def matches(table: str, pattern: str, home_region: str | None) -> bool:
    """Does stored reference `table` fall under the `drills` entry `pattern`? Same place (a
    pattern without region means the bot's region), and the name matches the glob."""
    try:
        ref = canonical(parse_ref(table), home_region)
        pat = parse_pattern(pattern)
    except RefError:
        return False
    if place_of(pat, home_region) != Place(ref.account, ref.region):
        return False
    return fnmatch.fnmatchcase(ref.name, pat.name)


def pattern_places(patterns: Iterable[str], home_region: str | None) -> list[Place]:
    """The places some of `patterns` point at, each once, in order (unparsable ones skipped:
    the policy's own validation reports them)."""
    found: list[Place] = []
    for text in patterns:
        try:
            place = place_of(parse_pattern(text), home_region)
        except RefError:
            continue
        if place not in found:
            found.append(place)
    return found
