"""The restore form's builders (valid Block Kit, escaped text) and its pure input checks."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from slack_sdk.models.views import View

from bot.modal_blocks import (
    BILLING_BLOCK,
    CALLBACK_ID,
    INDEXES_BLOCK,
    MAX_OPTION_TEXT,
    REASON_BLOCK,
    SOURCE_ACTION,
    SOURCE_BLOCK,
    SSE_BLOCK,
    TARGET_BLOCK,
    VALUE_ACTION,
    WHEN_PICK_BLOCK,
    WHEN_TEXT_BLOCK,
    ModalInput,
    Picked,
    default_target,
    metadata_channel,
    read_state,
    restore_modal,
    source_info_text,
    source_option,
    target_block_id,
)
from bot.pitr import TableInfo
from bot.tableref import MAX_BATCH
from commands.modal import Form, check_input, error_block

NOW = datetime(2026, 11, 27, 9, 5, tzinfo=UTC)
HOSTILE = "<!channel> <@U999> <https://evil.example|click> & more"


def rendered(view: View) -> dict:
    data = view.to_dict()  # slack_sdk validates lengths and required fields here
    View(**data).validate_json()  # ... and round-trips
    return data


def test_the_empty_form_is_valid_block_kit():
    data = rendered(restore_modal("C1"))
    assert data["type"] == "modal" and data["callback_id"] == CALLBACK_ID
    assert len(data["title"]["text"]) <= 24 and len(data["submit"]["text"]) <= 24
    assert json.loads(data["private_metadata"]) == {"channel": "C1"}
    inputs = {b["block_id"]: b for b in data["blocks"] if b["type"] == "input"}
    assert set(inputs) == {
        SOURCE_BLOCK,
        WHEN_TEXT_BLOCK,
        WHEN_PICK_BLOCK,
        TARGET_BLOCK,
        REASON_BLOCK,
        BILLING_BLOCK,
        INDEXES_BLOCK,
        SSE_BLOCK,
    }
    source = inputs[SOURCE_BLOCK]
    assert source["dispatch_action"] is True
    assert source["element"]["type"] == "multi_external_select"  # several tables, one instant
    assert source["element"]["max_selected_items"] == MAX_BATCH
    assert source["element"]["action_id"] == SOURCE_ACTION
    assert inputs[WHEN_PICK_BLOCK]["element"]["type"] == "datetimepicker"
    assert "initial_value" not in inputs[TARGET_BLOCK]["element"]
    required = {b for b, block in inputs.items() if not block.get("optional")}
    assert required == {SOURCE_BLOCK, TARGET_BLOCK}
    assert "Precedence" in inputs[WHEN_TEXT_BLOCK]["hint"]["text"]


def test_picking_a_source_gives_a_new_target_block_with_the_default_name():
    info = TableInfo("Music", "ACTIVE", item_count=1200, indexes=("by-artist",))
    picked = Picked("Music", default_target("Music", NOW), pitr=True, table=info, described=True)
    data = rendered(restore_modal("C1", picked))
    target = [b for b in data["blocks"] if b.get("block_id", "").startswith(TARGET_BLOCK)]
    assert [b["block_id"] for b in target] == [target_block_id("Music")] != [TARGET_BLOCK]
    assert target[0]["element"]["initial_value"] == "Music-20261127-0905"
    (source,) = data["blocks"][0]["element"]["initial_options"]
    assert source["value"] == "Music" and source["text"]["text"] == "Music · PITR on"
    text = json.dumps(data)
    assert "1,200 items" in text and "`by-artist`" in text


def test_default_target_fits_dynamodb_limits():
    long = "t" * 255
    name = default_target(long, NOW)
    assert len(name) == 255 and name.endswith("-20261127-0905")
    assert len(target_block_id(long)) <= 255


def test_user_text_is_escaped_in_mrkdwn():
    info = TableInfo(HOSTILE, "ACTIVE", billing_mode=HOSTILE, indexes=(HOSTILE,))
    picked = Picked(HOSTILE, "x", pitr=False, table=info, described=True)
    data = rendered(restore_modal("C1", picked))
    mrkdwn = [el["text"] for b in data["blocks"] if b["type"] == "context" for el in b["elements"]]
    assert mrkdwn and all("<!channel>" not in t and "<@U999>" not in t for t in mrkdwn)
    assert any("&lt;!channel&gt;" in t for t in mrkdwn)
    info_text = source_info_text(info, None)
    assert "<" not in info_text.replace("&lt;", "") and "PITR ?" in info_text


@pytest.mark.parametrize(
    ("pitr", "label"), [(True, "PITR on"), (False, "PITR off"), (None, "PITR ?")]
)
def test_source_options_are_labelled_and_fit_slack_limits(pitr, label):
    option = source_option("MusicCollection", pitr).to_dict()
    assert option == {
        "text": {"type": "plain_text", "text": f"MusicCollection · {label}", "emoji": False},
        "value": "MusicCollection",
    }
    long = source_option("x" * 150, pitr).to_dict()
    assert len(long["text"]["text"]) <= MAX_OPTION_TEXT and long["text"]["text"].endswith(label)
    assert long["value"] == "x" * 150


def test_read_state_reads_what_slack_sends():
    values = {
        SOURCE_BLOCK: {
            SOURCE_ACTION: {"type": "external_select", "selected_option": {"value": "Music"}}
        },
        WHEN_TEXT_BLOCK: {VALUE_ACTION: {"type": "plain_text_input", "value": " 2h ago "}},
        WHEN_PICK_BLOCK: {VALUE_ACTION: {"type": "datetimepicker", "selected_date_time": 17e8}},
        "target.Music": {VALUE_ACTION: {"type": "plain_text_input", "value": "Music-copy"}},
        REASON_BLOCK: {VALUE_ACTION: {"type": "plain_text_input", "value": "r" * 900}},
        BILLING_BLOCK: {VALUE_ACTION: {"selected_option": {"value": "PAY_PER_REQUEST"}}},
        INDEXES_BLOCK: {VALUE_ACTION: {"value": None}},
        SSE_BLOCK: {VALUE_ACTION: {"value": "alias/k"}},
    }
    assert read_state(values) == ModalInput(
        source="Music",
        target="Music-copy",
        target_block="target.Music",
        when_text="2h ago",
        when_epoch=1_700_000_000,
        reason="r" * 500,
        billing="PAY_PER_REQUEST",
        sse_key="alias/k",
    )
    assert read_state({}) == ModalInput()
    assert read_state({SOURCE_BLOCK: "junk", WHEN_PICK_BLOCK: {VALUE_ACTION: 3}}) == ModalInput()


def test_metadata_channel_only_accepts_a_channel_id():
    assert metadata_channel({"private_metadata": '{"channel": "C1"}'}) == "C1"
    assert metadata_channel({"private_metadata": '{"channel": "<!here>"}'}) == ""
    assert metadata_channel({"private_metadata": "not json"}) == ""
    assert metadata_channel({}) == ""


# -- the pure checks --------------------------------------------------------------------------
def good(**changes) -> ModalInput:
    base = {"source": "Music", "target": "Music-copy", "target_block": "target.Music"}
    return ModalInput(**(base | changes))


def test_when_precedence_is_text_then_picker_then_latest():
    both = check_input(good(when_text="2h ago", when_epoch=1_700_000_000), "C1")
    assert isinstance(both, Form) and (both.when, both.when_block) == ("2h ago", WHEN_TEXT_BLOCK)
    picked = check_input(good(when_epoch=1_700_000_000), "C1")
    assert (picked.when, picked.when_block) == ("1700000000", WHEN_PICK_BLOCK)
    latest = check_input(good(), "C1")
    assert latest.when == "latest" and latest.overrides == {}


def test_overrides_are_built_from_the_form():
    form = check_input(
        good(billing="PAY_PER_REQUEST", exclude_indexes="b-idx, a-idx,,b-idx", sse_key="alias/k"),
        "C1",
    )
    assert form.overrides == {
        "billing_mode": "PAY_PER_REQUEST",
        "exclude_indexes": ["a-idx", "b-idx"],
        "sse_key": "alias/k",
    }


@pytest.mark.parametrize(
    "key",
    [
        "1234abcd-12ab-34cd-56ef-1234567890ab",
        "mrk-1234abcd12ab34cd56ef1234567890ab",
        "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab",
        "arn:aws:kms:eu-west-1:111122223333:alias/restores",
        "alias/restores",
    ],
)
def test_kms_key_forms_are_accepted(key):
    assert isinstance(check_input(good(sse_key=key), "C1"), Form)


@pytest.mark.parametrize(
    ("changes", "channel", "block"),
    [
        ({"source": ""}, "C1", SOURCE_BLOCK),
        ({"source": "no spaces"}, "C1", SOURCE_BLOCK),
        ({}, "", SOURCE_BLOCK),
        ({"target": ""}, "C1", "target.Music"),
        ({"target": "Music"}, "C1", "target.Music"),
        ({"target": "x"}, "C1", "target.Music"),
        ({"exclude_indexes": "ok-index, not ok"}, "C1", INDEXES_BLOCK),
        ({"exclude_indexes": ",".join(f"idx{i}" for i in range(21))}, "C1", INDEXES_BLOCK),
        ({"sse_key": "<!channel>"}, "C1", SSE_BLOCK),
    ],
)
def test_pure_checks_point_at_the_field(changes, channel, block):
    errors = check_input(good(**changes), channel)
    assert isinstance(errors, dict) and list(errors) == [block]


def test_workflow_refusals_map_to_their_field():
    form = check_input(good(when_epoch=1_700_000_000), "C1")
    assert error_block(form, "target") == "target.Music"
    assert error_block(form, "when") == WHEN_PICK_BLOCK
    assert error_block(form, "source") == SOURCE_BLOCK
    assert error_block(form, None) == SOURCE_BLOCK  # AWS trouble: shown on the source
    assert error_block(form, "kms_key") == SSE_BLOCK  # a KMS key outside kms_keys
    assert error_block(form, "overrides") == INDEXES_BLOCK  # indexes AWS would refuse


def test_kms_hint_says_what_the_policy_and_the_generated_iam_policy_really_do():
    """The form once claimed the bot needs kms:CreateGrant, while no policy granted any KMS
    action. Now: the hint names the policy key and every action `pitr-bot iam-policy` grants."""
    from bot.iam import KMS_ACTIONS

    view = restore_modal("C1").to_dict()
    hint = next(b for b in view["blocks"] if b.get("block_id") == SSE_BLOCK)["hint"]["text"]
    assert "kms_keys" in hint and "iam-policy" in hint and "alias/aws/dynamodb" in hint
    for action in KMS_ACTIONS:
        name = action.removeprefix("kms:").removesuffix("WithoutPlaintext")
        assert name in hint, name


def test_every_block_builder_output_is_an_input_slack_accepts_errors_for():
    """response_action errors may only name input blocks: every field we check is one."""
    data = rendered(restore_modal("C1", Picked("Music", "Music-x")))
    inputs = {b["block_id"] for b in data["blocks"] if b["type"] == "input"}
    for block in (SOURCE_BLOCK, WHEN_TEXT_BLOCK, WHEN_PICK_BLOCK, INDEXES_BLOCK, SSE_BLOCK):
        assert block in inputs
    assert target_block_id("Music") in inputs


# -- several tables, other accounts and regions ----------------------------------------------
def test_options_are_capped_at_slacks_100_and_say_when_more_matched():
    from bot.modal_blocks import MAX_OPTIONS, options_response

    few = options_response([("prod:orders@eu-west-1", True), ("orders", None)], 2)
    assert [o["value"] for o in few["options"]] == ["prod:orders@eu-west-1", "orders"]
    many = [(f"prod:t{i:03}", True) for i in range(MAX_OPTIONS)]
    capped = options_response(many, 240)
    (group,) = capped["option_groups"]
    assert len(group["options"]) == MAX_OPTIONS == 100
    assert group["label"]["text"] == "First 100 of 240 tables: type to narrow"


def test_several_picks_are_read_as_the_commands_comma_separated_sources():
    picks = [{"value": "prod:orders@eu-west-1"}, {"value": "payments"}]
    values = {SOURCE_BLOCK: {SOURCE_ACTION: {"selected_options": picks}}}
    assert read_state(values).source == "prod:orders@eu-west-1,payments"
    form = check_input(good(source="prod:orders@eu-west-1,payments", target="-copy"), "C1")
    assert isinstance(form, Form) and form.source == "prod:orders@eu-west-1,payments"


@pytest.mark.parametrize(
    ("source", "target", "block", "says"),
    [
        ("prod:orders@mars", "x-copy", SOURCE_BLOCK, "is not an AWS region"),
        ("prod:orders,payments", "not a suffix!", "target.Music", "suffix"),
        ("prod:orders", "orders", "target.Music", "can't be the source table itself"),
        ("prod:orders", "staging:orders-copy", "target.Music", "stays in the source's account"),
    ],
)
def test_picked_references_are_checked_like_the_command(source, target, block, says):
    errors = check_input(good(source=source, target=target), "C1")
    assert isinstance(errors, dict) and list(errors) == [block] and says in errors[block]


def test_several_picks_render_a_suffix_field_and_each_tables_pitr():
    picked = Picked(
        "prod:orders@eu-west-1,payments",
        "-20261127-0905",
        described=True,
        pitrs=(("prod:orders@eu-west-1", True), ("payments", False)),
    )
    data = rendered(restore_modal("C1", picked))
    source = data["blocks"][0]["element"]
    assert [o["text"]["text"] for o in source["initial_options"]] == [
        "prod:orders@eu-west-1 · PITR on",
        "payments · PITR off",
    ]
    target = next(b for b in data["blocks"] if b.get("block_id", "").startswith(TARGET_BLOCK))
    assert target["label"]["text"] == "Suffix of the new tables"
    assert target["element"]["initial_value"] == "-20261127-0905"
    text = json.dumps(data)
    assert "2 tables to one instant" in text and "/pitr-enable" in text


def test_an_account_that_cannot_be_listed_leaves_the_others_in_the_picker():
    from bot.pitr import AwsError
    from bot.places import Place
    from commands.modal import TableCache

    class Pitr:
        def __init__(self, down: set[str | None]):
            self.down, self.calls = down, []

        def list_tables(self, limit=1000, account=None, region=None):
            self.calls.append((account, region))
            if account in self.down:
                raise AwsError("AccessDenied", "not authorized to perform: sts:AssumeRole")
            return {None: ["orders"], "prod": ["ledger"]}[account]

    pitr = Pitr(down={"staging"})
    cache = TableCache(pitr)  # type: ignore[arg-type]
    where = [Place(), Place("prod", "eu-west-1"), Place("staging")]
    found = cache.tables_in(where, budget=5)
    assert found == [(Place(), ["orders"]), (Place("prod", "eu-west-1"), ["ledger"])]
    cache.tables_in(where, budget=5)  # within a minute: the lists come from the cache
    assert pitr.calls.count(("prod", "eu-west-1")) == 1
    with pytest.raises(AwsError):  # the bot's own account failing is the picker's error
        TableCache(Pitr(down={None})).tables_in([Place()], budget=5)  # type: ignore[arg-type]
