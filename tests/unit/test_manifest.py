"""manifest.yml tells people what the commands take: keep it true to the parsers."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import jsonschema
import yaml

from bot.when import parse_when
from commands.restore import parse_restore

MANIFEST = Path(__file__).parents[2] / "manifest.yml"


def usage_hint(command: str) -> str:
    manifest = yaml.safe_load(MANIFEST.read_text())
    for entry in manifest["features"]["slash_commands"]:
        if entry["command"] == command:
            return entry["usage_hint"]
    raise AssertionError(f"{command} is not in manifest.yml")


def test_restore_usage_hint_mentions_the_reason() -> None:
    hint = usage_hint("/pitr-restore")
    assert "reason:" in hint
    # What the hint shows parses: the reason is split off as the command does.
    assert parse_restore("orders orders-copy latest reason: bad deploy") == (
        "orders",
        "orders-copy",
        "latest",
        "bad deploy",
    )


def test_restore_usage_hint_examples_are_accepted() -> None:
    hint = usage_hint("/pitr-restore")
    examples = hint.split("[", 1)[1].split("]", 1)[0].split(" | ")
    now = datetime(2027, 1, 1, tzinfo=UTC)
    for example in examples:
        parse_when(example, "UTC", now)  # raises WhenError if one is not a WHEN we take


def test_the_item_data_delivery_has_its_scopes() -> None:
    # Item data goes by direct message (conversations.open: im:write) as a file (files:write);
    # chat:write.public posts cards without an invitation but shares no file.
    scopes = yaml.safe_load(MANIFEST.read_text())["oauth_config"]["scopes"]["bot"]
    assert {"files:write", "im:write", "chat:write.public"} <= set(scopes)
    from bot.delivery import ADVICE

    assert "im:write" in ADVICE["missing_scope"] and "/invite" in ADVICE["not_in_channel"]


# The parts of Slack's app manifest schema (github.com/slackapi/manifest-schema,
# manifest.schema.1.0.0.json) that the Workflow Builder step touches, restated.
PARAMETERS = {
    "type": "object",
    "maxProperties": 50,
    "additionalProperties": {
        "type": "object",
        "required": ["type"],
        "properties": {
            "type": {"type": "string"},
            "title": {"type": "string"},
            "description": {"type": "string"},
            "is_required": {"type": "boolean"},
            "is_hidden": {"type": "boolean"},
            "hint": {"type": "string"},
        },
    },
}
FUNCTIONS = {
    "type": "object",
    "maxProperties": 50,
    "additionalProperties": {
        "type": "object",
        "required": ["title", "description", "input_parameters", "output_parameters"],
        "additionalProperties": False,
        "properties": {
            "title": {"type": "string"},
            "description": {"type": "string"},
            "input_parameters": PARAMETERS,
            "output_parameters": PARAMETERS,
        },
    },
}
SETTINGS = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        key: {"type": "boolean"}
        for key in (
            "org_deploy_enabled",
            "socket_mode_enabled",
            "is_hosted",
            "token_rotation_enabled",
        )
    }
    | {
        "function_runtime": {"type": "string"},
        "event_subscriptions": {"type": "object"},
        "interactivity": {"type": "object", "required": ["is_enabled"]},
        "allowed_ip_address_ranges": {"type": "array"},
        "incoming_webhooks": {"type": "object"},
    },
}
TOP = {
    "type": "object",
    "required": ["display_information"],
    "additionalProperties": False,
    "properties": {
        key: {"type": "object"}
        for key in ("_metadata", "display_information", "features", "oauth_config")
    }
    | {"settings": SETTINGS, "functions": FUNCTIONS},
}
# Slack's own parameter types (schema: slack-functions.parameter).
PARAMETER_TYPES = {"string", "integer", "number", "boolean", "object", "array"} | {
    f"slack#/types/{t}" for t in ("user_id", "channel_id", "usergroup_id", "timestamp", "date")
}


def test_manifest_with_the_workflow_step_validates_against_slacks_schema() -> None:
    manifest = yaml.safe_load(MANIFEST.read_text())
    jsonschema.validate(manifest, TOP)
    step = manifest["functions"]["restore_table"]
    assert set(step["input_parameters"]) == {
        "source_table",
        "new_table",
        "instant",
        "reason",
        "channel",
        "requested_by",
    }
    assert set(step["output_parameters"]) == {
        "restore_id",
        "new_table",
        "final_status",
        "restored_instant",
        "approved_by",
    }
    for parameter in [*step["input_parameters"].values(), *step["output_parameters"].values()]:
        assert parameter["type"] in PARAMETER_TYPES
    assert "function_executed" in manifest["settings"]["event_subscriptions"]["bot_events"]
    assert manifest["settings"]["function_runtime"] == "remote"
    # The callback id the app listens on.
    from commands.workflow_step import CALLBACK_ID

    assert CALLBACK_ID in manifest["functions"]


def test_the_compare_items_step_is_declared_with_its_counts() -> None:
    manifest = yaml.safe_load(MANIFEST.read_text())
    jsonschema.validate(manifest, TOP)
    step = manifest["functions"]["compare_items"]
    assert set(step["input_parameters"]) == {
        "table",
        "instant",
        "channel",
        "keys",
        "requested_by",
    }
    required = {k for k, v in step["input_parameters"].items() if v.get("is_required")}
    assert required == {"table", "instant", "channel"}
    outputs = step["output_parameters"]
    assert set(outputs) == {"deleted", "changed", "added", "job_id"}
    assert {outputs[k]["type"] for k in ("deleted", "changed", "added")} == {"integer"}
    for parameter in [*step["input_parameters"].values(), *outputs.values()]:
        assert parameter["type"] in PARAMETER_TYPES
    # The callback id the app listens on, and the outputs it completes with.
    from commands.compare_step import CALLBACK_ID, outputs_of

    assert CALLBACK_ID == "compare_items"
    from bot.items.jobs import ItemJob

    job = ItemJob("", "orders", "orders at T", "C1", None, "U1", None, "")  # type: ignore[arg-type]
    assert set(outputs_of(job)) == set(outputs)
