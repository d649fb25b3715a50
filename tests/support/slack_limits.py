"""Slack's documented Block Kit limits, checked on the JSON we send (not slack_sdk's checks).

From api.slack.com/reference/block-kit (blocks, block-elements, composition-objects) and
surfaces: a message holds at most 50 blocks, a modal or Home tab 100; section text 3000
characters, at most 10 fields of 2000 each; header text 150; context at most 10 elements;
button text 75, value 2000; option text 75, value 150; placeholder 150; block_id and
action_id 255; input label 2000, hint 2000; modal title, submit and close 24; actions at
most 25 elements. Returns every violation as "path: what", so a test failure says where.
"""

from __future__ import annotations

from typing import Any

MAX_BLOCKS = {"message": 50, "modal": 100, "home": 100}


def _text(obj: Any) -> str:
    return obj.get("text", "") if isinstance(obj, dict) else str(obj or "")


def violations(blocks: list[dict[str, Any]], surface: str = "message") -> list[str]:
    found: list[str] = []

    def limit(path: str, value: Any, most: int) -> None:
        if value is not None and len(value) > most:
            found.append(f"{path}: {len(value)} > {most}")

    limit("blocks", blocks, MAX_BLOCKS[surface])
    for i, block in enumerate(blocks):
        path = f"blocks[{i}]({block.get('type')})"
        limit(f"{path}.block_id", block.get("block_id"), 255)
        kind = block.get("type")
        if kind == "section":
            if "text" in block:
                limit(f"{path}.text", _text(block["text"]), 3000)
            fields = block.get("fields") or []
            limit(f"{path}.fields", fields, 10)
            for j, field in enumerate(fields):
                limit(f"{path}.fields[{j}]", _text(field), 2000)
            if "accessory" in block:
                _element(f"{path}.accessory", block["accessory"], limit)
        elif kind == "header":
            limit(f"{path}.text", _text(block.get("text")), 150)
        elif kind == "context":
            elements = block.get("elements") or []
            limit(f"{path}.elements", elements, 10)
            for j, element in enumerate(elements):
                limit(f"{path}.elements[{j}]", _text(element), 3000)
        elif kind == "actions":
            elements = block.get("elements") or []
            limit(f"{path}.elements", elements, 25)
            for j, element in enumerate(elements):
                _element(f"{path}.elements[{j}]", element, limit)
        elif kind == "input":
            limit(f"{path}.label", _text(block.get("label")), 2000)
            limit(f"{path}.hint", _text(block.get("hint")), 2000)
            _element(f"{path}.element", block.get("element") or {}, limit)
    return found


def _element(path: str, element: dict[str, Any], limit: Any) -> None:
    limit(f"{path}.action_id", element.get("action_id"), 255)
    limit(f"{path}.placeholder", _text(element.get("placeholder")) or None, 150)
    if element.get("type") == "button":
        limit(f"{path}.text", _text(element.get("text")), 75)
        limit(f"{path}.value", element.get("value"), 2000)
    for key in ("options", "initial_options"):
        for k, option in enumerate(element.get(key) or []):
            _option(f"{path}.{key}[{k}]", option, limit)
    if element.get("initial_option"):
        _option(f"{path}.initial_option", element["initial_option"], limit)
    limit(f"{path}.initial_value", element.get("initial_value"), 3000)


def _option(path: str, option: dict[str, Any], limit: Any) -> None:
    limit(f"{path}.text", _text(option.get("text")), 75)
    limit(f"{path}.value", option.get("value"), 150)


def view_violations(view: dict[str, Any]) -> list[str]:
    found = violations(view.get("blocks") or [], "modal" if view.get("type") == "modal" else "home")
    for key in ("title", "submit", "close"):
        text = _text(view.get(key)) if view.get(key) else ""
        if len(text) > 24:
            found.append(f"view.{key}: {len(text)} > 24")
    if len(view.get("private_metadata") or "") > 3000:
        found.append("view.private_metadata: > 3000")
    return found


def balanced_backticks(text: str) -> bool:
    return text.count("`") % 2 == 0


def texts(blocks: list[dict[str, Any]]) -> list[str]:
    """Every mrkdwn/plain text the blocks carry, in order."""
    out: list[str] = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("text"), str):
                out.append(node["text"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(blocks)
    return out
