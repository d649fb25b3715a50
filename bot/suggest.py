"""'Did you mean …?' for a mistyped or wrongly cased table name (pure)."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

from bot.tableref import RefError, parse_ref


def closest(name: str, candidates: Iterable[str]) -> str | None:
    """The candidate `name` most likely meant: the same name in another case, else the
    closest spelling (difflib, case-insensitive); None when nothing is close."""
    names = [c for c in candidates if c != name]
    by_lower = {c.lower(): c for c in names}
    if name.lower() in by_lower:
        return by_lower[name.lower()]
    close = difflib.get_close_matches(name.lower(), list(by_lower), n=1, cutoff=0.8)
    return by_lower[close[0]] if close else None


def did_you_mean(text: str, candidates: Iterable[str]) -> str:
    """' Did you mean `MusicCollection`?' for the reference `text` (its account and region
    kept), or '' when no candidate name is close. `candidates` are table names the person
    may see: never pass a table outside the policy."""
    try:
        ref = parse_ref(text)
    except RefError:
        return ""
    match = closest(ref.name, candidates)
    if match is None:
        return ""
    meant = str(type(ref)(match, ref.account, ref.region))
    return f" Did you mean `{meant}`?"
