"""A flow's record <-> the JSON-friendly dict a store keeps. Pure: no Slack, no boto3.

For the sibling flows' frozen dataclasses (drills, item jobs): datetimes as ISO 8601, enums by
value; fields a newer version wrote are ignored on load rather than crashing.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import datetime
from enum import Enum
from typing import Any, TypeVar

T = TypeVar("T")


def dump(record: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in dataclasses.fields(record):
        value = getattr(record, f.name)
        if isinstance(value, datetime):
            value = value.isoformat()
        elif isinstance(value, Enum):
            value = value.value
        out[f.name] = value
    return out


def load(cls: type[T], data: dict[str, Any], **convert: Callable[[Any], Any]) -> T:
    """`cls` from `data`; `convert` maps a field name to how to read it (e.g. state=DrillState)."""
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        if f.name not in data:
            continue
        value = data[f.name]
        if f.name in convert and value is not None:
            value = convert[f.name](value)
        elif "datetime" in str(f.type) and isinstance(value, str):
            value = datetime.fromisoformat(value)
        kwargs[f.name] = value
    return cls(**kwargs)
