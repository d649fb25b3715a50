"""What a person reads about a comparison: the full diff as JSON Lines, and a few examples."""

from __future__ import annotations

import json
from pathlib import Path
from typing import IO

from bot.items.diff import Kind, attribute_diff
from bot.items.jobfile import Difference, JobFile, private_file
from bot.items.values import key_of, to_json


def write_jsonl(job: JobFile, out: IO[str] | str | Path) -> int:
    """Write one JSON line per difference (missing, changed, added), streamed; returns the count.

    Line: {"kind", "key", "attributes": {"changed", "removed_in_live", "added_in_live"},
    "restored", "live"}; items and the key in DynamoDB JSON (binary as base64).
    """
    if isinstance(out, (str, Path)):
        private_file(Path(out))
        with Path(out).open("w", encoding="utf-8") as handle:
            return write_jsonl(job, handle)
    count = 0
    for diff in job.differences():
        out.write(json.dumps(line(diff, job.key_names), ensure_ascii=False) + "\n")
        count += 1
    return count


def line(diff: Difference, key_names: tuple[str, ...]) -> dict:
    source = diff.restored or diff.live
    assert source is not None
    attrs = attribute_diff(diff.restored, diff.live)
    return {
        "kind": diff.kind.value,
        "key": json.loads(to_json(key_of(source, key_names))),
        "attributes": {
            "changed": list(attrs.changed),
            "removed_in_live": list(attrs.only_restored),
            "added_in_live": list(attrs.only_live),
        },
        "restored": json.loads(to_json(diff.restored)) if diff.restored else None,
        "live": json.loads(to_json(diff.live)) if diff.live else None,
    }


def examples(job: JobFile, per_kind: int = 3, keys_only: bool = False) -> dict[Kind, list[str]]:
    """A few examples of each kind in plain words: `pk=order-7: status changed` (or only
    `pk=order-7` with `keys_only`, for a thread that may show keys but not attributes)."""
    out: dict[Kind, list[str]] = {}
    for kind in (Kind.MISSING, Kind.CHANGED, Kind.ADDED):
        shown = []
        for diff in job.differences([kind]):
            source = diff.restored or diff.live
            assert source is not None
            key = ", ".join(f"{name}={next(iter(source[name].values()))}" for name in job.key_names)
            if kind is Kind.CHANGED and not keys_only:
                shown.append(f"{key}: {attribute_diff(diff.restored, diff.live).summary()}")
            else:
                shown.append(key)
            if len(shown) >= per_kind:
                break
        out[kind] = shown
    return out
