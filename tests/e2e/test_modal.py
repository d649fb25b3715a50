"""The restore form over HTTP: `/pitr-restore` alone -> views.open -> picker -> submit -> card.

Each test drives the real Bolt app with signed requests, as Slack would, and looks at what Slack
was asked to show (views.open / views.update / the card) and what reached DynamoDB.
"""

from __future__ import annotations

import io
import json
import re
import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import pytest
from rich.console import Console
from support.fake_slack import buttons

from bot.modal_blocks import (
    BILLING_BLOCK,
    CALLBACK_ID,
    INDEXES_BLOCK,
    REASON_BLOCK,
    SOURCE_ACTION,
    SOURCE_BLOCK,
    SSE_BLOCK,
    VALUE_ACTION,
    WHEN_PICK_BLOCK,
    WHEN_TEXT_BLOCK,
)
from bot.policy import Policy
from e2e.harness import BotUnderTest

READ_OPS = ("ListTables", "DescribeTable", "DescribeContinuousBackups")
META = json.dumps({"channel": "C1"})


def interaction(bot: BotUnderTest, payload: dict[str, Any]):
    return bot.sender.post(urlencode({"payload": json.dumps(payload)}).encode())


def suggest(bot: BotUnderTest, typed: str, user: str = "U1", meta: str = META) -> list[dict]:
    """What the source picker offers after typing `typed` (a block_suggestion)."""
    resp = interaction(
        bot,
        {
            "type": "block_suggestion",
            "api_app_id": "A1",
            "team": {"id": "T1"},
            "user": {"id": user, "team_id": "T1"},
            "action_id": SOURCE_ACTION,
            "block_id": SOURCE_BLOCK,
            "value": typed,
            "container": {"type": "view", "view_id": "V1"},
            "view": {
                "id": "V1",
                "type": "modal",
                "callback_id": CALLBACK_ID,
                "private_metadata": meta,
                "state": {"values": {}},
            },
        },
    )
    assert resp.status == 200, resp.body
    return resp.json()["options"]


def pick_source(bot: BotUnderTest, source: str, user: str = "U1"):
    """The block_actions Slack sends when a source is picked in the open form."""
    option = {"text": {"type": "plain_text", "text": source}, "value": source}
    return interaction(
        bot,
        {
            "type": "block_actions",
            "api_app_id": "A1",
            "team": {"id": "T1"},
            "user": {"id": user, "team_id": "T1"},
            "trigger_id": "trig.pick",
            "container": {"type": "view", "view_id": "V1"},
            "view": {
                "id": "V1",
                "hash": "h1",
                "type": "modal",
                "callback_id": CALLBACK_ID,
                "private_metadata": META,
                "state": {
                    "values": {
                        SOURCE_BLOCK: {
                            SOURCE_ACTION: {"type": "external_select", "selected_option": option}
                        }
                    }
                },
            },
            "actions": [
                {
                    "type": "external_select",
                    "action_id": SOURCE_ACTION,
                    "block_id": SOURCE_BLOCK,
                    "selected_option": option,
                    "action_ts": f"{time.time():.6f}",
                }
            ],
        },
    )


def form_values(
    source: str = "MusicCollection",
    target: str = "MusicCollectionRestored",
    when: str | None = None,
    picked: int | None = None,
    reason: str = "",
    billing: str = "same",
    exclude: str = "",
    sse: str = "",
    target_block: str = "target.MusicCollection",
) -> dict[str, Any]:
    """view.state.values as Slack sends them for the form."""

    def text(value: str | None) -> dict:
        return {VALUE_ACTION: {"type": "plain_text_input", "value": value or None}}

    option = {"text": {"type": "plain_text", "text": source}, "value": source}
    return {
        SOURCE_BLOCK: {SOURCE_ACTION: {"type": "external_select", "selected_option": option}},
        WHEN_TEXT_BLOCK: text(when),
        WHEN_PICK_BLOCK: {VALUE_ACTION: {"type": "datetimepicker", "selected_date_time": picked}},
        target_block: text(target),
        REASON_BLOCK: text(reason),
        BILLING_BLOCK: {
            VALUE_ACTION: {
                "type": "static_select",
                "selected_option": {
                    "text": {"type": "plain_text", "text": billing},
                    "value": billing,
                },
            }
        },
        INDEXES_BLOCK: text(exclude),
        SSE_BLOCK: text(sse),
    }


def submit(bot: BotUnderTest, user: str = "U1", **fields: Any):
    return bot.sender.submit(CALLBACK_ID, form_values(**fields), user, private_metadata=META)


@pytest.fixture
def roomy_budgets(monkeypatch):
    """The form's time budgets (PITR lookups while Slack waits for options, the preflight
    before the submit's ack) made generous, for tests of what the form shows when AWS answers
    in time: on a loaded machine a moto round trip can exceed 1.5 s. The over-budget paths are
    tested with held AWS calls (test_slow_aws_*), not with the machine's speed."""
    import commands.modal as modal

    monkeypatch.setattr(modal, "OPTIONS_BUDGET", 60.0)
    monkeypatch.setattr(modal, "SUBMIT_BUDGET", 60.0)


@pytest.fixture
def music(sim):
    sim.create_table("MusicArchive", pitr=False, items=1)
    sim.create_table("Orders", pitr=True, items=1)
    return sim


# -- opening ----------------------------------------------------------------------------------
def test_empty_command_opens_the_form_with_the_trigger_and_no_aws_call(bot, fake, sim):
    sim.clear()
    resp = bot.command("/pitr-restore", "", user="U1")
    assert resp.status == 200
    assert "Usage" not in resp.body  # the form replaces the usage text
    opened = fake.wait_for("views.open")[0]
    assert opened.args["trigger_id"] == "trig.1"
    view = opened.args["view"]
    assert view["type"] == "modal" and view["callback_id"] == CALLBACK_ID
    assert json.loads(view["private_metadata"]) == {"channel": "C1"}
    ids = [b.get("block_id") for b in view["blocks"]]
    assert {SOURCE_BLOCK, WHEN_TEXT_BLOCK, WHEN_PICK_BLOCK, "target", REASON_BLOCK} <= set(ids)
    assert {BILLING_BLOCK, INDEXES_BLOCK, SSE_BLOCK} <= set(ids)
    # Nothing went to AWS before views.open (nor, for opening the form, at all).
    time.sleep(0.2)
    assert [op for op in READ_OPS if sim.count(op)] == []
    assert fake.calls("chat.postMessage") == []


def test_form_falls_back_to_the_usage_when_slack_refuses_to_open_it(bot, fake):
    fake.fail("views.open", status=200, error="expired_trigger_id")
    assert bot.command("/pitr-restore", "", user="U1").status == 200
    assert "/pitr-restore SOURCE TARGET" in bot.wait_reply("U1", "couldn't open the restore form")


# -- the source picker ------------------------------------------------------------------------
def test_picker_offers_only_policy_allowed_tables_matching_the_text(make_bot, music, roomy_budgets):
    bot = make_bot(policy=Policy(tables=["Music*"]))
    options = suggest(bot, "music")
    labels = {o["value"]: o["text"]["text"] for o in options}
    assert labels == {
        "MusicCollection": "MusicCollection · PITR on",
        "MusicArchive": "MusicArchive · PITR off",
    }
    assert [o["value"] for o in suggest(bot, "COLL")] == ["MusicCollection"]
    assert suggest(bot, "orders") == []  # exists, but outside the policy
    assert {o["value"] for o in suggest(bot, "")} == {"MusicCollection", "MusicArchive"}
    # ListTables and the PITR status are cached between keystrokes.
    assert music.count("ListTables") == 1
    assert music.count("DescribeContinuousBackups") == 2


def test_picker_respects_the_policy_for_this_person_and_channel(make_bot, music):
    bot = make_bot(policy=Policy(tables=["Music*"], channels=["C9"]))
    assert suggest(bot, "music") == []  # the form was opened in C1
    bot = make_bot(policy=Policy(requesters=["U2"]))
    assert suggest(bot, "", user="U1") == []
    assert len(suggest(bot, "", user="U2")) == 4


def test_picking_a_source_prefills_the_target(bot, fake, roomy_budgets):
    picked_from = datetime.now(UTC).replace(second=0, microsecond=0)
    resp = pick_source(bot, "MusicCollection")
    assert resp.status == 200
    update = fake.wait_for("views.update")[0]
    picked_by = datetime.now(UTC)
    assert update.args["view_id"] == "V1"
    blocks = update.args["view"]["blocks"]
    target = [b for b in blocks if str(b.get("block_id", "")).startswith("target")]
    assert len(target) == 1
    assert target[0]["block_id"] != "target"  # a new block, so Slack applies the new value
    value = target[0]["element"]["initial_value"]
    match = re.fullmatch(r"MusicCollection-(\d{8}-\d{4})", value)
    assert match, value
    stamped = datetime.strptime(match.group(1), "%Y%m%d-%H%M").replace(tzinfo=UTC)
    assert picked_from <= stamped <= picked_by, (picked_from, stamped, picked_by)  # when picked
    source = next(b for b in blocks if b.get("block_id") == SOURCE_BLOCK)
    assert [o["value"] for o in source["element"]["initial_options"]] == ["MusicCollection"]
    assert "PITR on" in json.dumps(blocks)


def test_prefilled_target_name_matches_the_policy_target_pattern(make_bot, fake):
    bot = make_bot(policy=Policy(target_pattern="restored-*"))
    assert pick_source(bot, "MusicCollection").status == 200
    blocks = fake.wait_for("views.update")[0].args["view"]["blocks"]
    target = next(b for b in blocks if str(b.get("block_id", "")).startswith("target"))
    value = target["element"]["initial_value"]
    assert re.fullmatch(r"restored-MusicCollection-\d{8}-\d{4}", value), value
    assert bot.services.policy.target_allowed(value).allowed


# -- submitting -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("fields", "block", "says"),
    [
        ({"when": "the day after never"}, WHEN_TEXT_BLOCK, "can't read"),
        ({"picked": int(time.time()) + 86400}, WHEN_PICK_BLOCK, "future"),
        ({"target": "MusicArchive"}, "target.MusicCollection", "already exists"),
        ({"source": "Orders", "target_block": "target.Orders"}, SOURCE_BLOCK, "policy"),
        ({"source": "NoSuchMusic"}, SOURCE_BLOCK, "does not exist"),
        ({"target": "bad name!"}, "target.MusicCollection", "letters, digits"),
        ({"exclude": "by-artist"}, INDEXES_BLOCK, "no index by-artist"),
        ({"exclude": "a b"}, INDEXES_BLOCK, "not an index name"),
        ({"sse": "not a key"}, SSE_BLOCK, "KMS key"),
        ({"source": ""}, SOURCE_BLOCK, "Pick the table"),
    ],
)
def test_bad_input_is_shown_inline_on_its_field(
    make_bot, music, fake, roomy_budgets, fields, block, says
):
    bot = make_bot(policy=Policy(tables=["Music*", "NoSuch*"]))
    resp = submit(bot, **fields)
    assert resp.status == 200
    body = resp.json()
    assert body["response_action"] == "errors"
    assert list(body["errors"]) == [block]
    assert says.lower() in body["errors"][block].lower()
    time.sleep(0.2)
    assert bot.services.store.find() == []
    assert fake.calls("chat.postMessage") == [] and fake.calls("chat.postEphemeral") == []


@pytest.mark.parametrize(
    ("fields", "block", "says"),
    [
        ({"sse": "alias/someone-elses-key"}, SSE_BLOCK, "kms_keys"),
        ({"sse": "arn:aws:kms:us-east-1:111122223333:alias/restore-key"}, SSE_BLOCK, "kms_keys"),
        ({"target": "MusicCopy"}, "target.MusicCollection", "restored-*"),
    ],
)
def test_form_refuses_a_key_or_name_outside_the_policy_with_no_side_effect(
    make_bot, music, fake, fields, block, says
):
    bot = make_bot(
        policy=Policy(
            tables=["Music*"], target_pattern="restored-*", kms_keys=["alias/restore-key"]
        )
    )
    music.clear()
    resp = submit(bot, **{"target": "restored-music", **fields})
    assert resp.status == 200
    body = resp.json()
    assert body["response_action"] == "errors"
    assert list(body["errors"]) == [block]
    assert says in body["errors"][block]
    assert bot.services.store.find() == []  # no request, so no card can follow
    assert fake.calls("chat.postMessage") == [] and fake.calls("chat.postEphemeral") == []
    # Refused before any AWS call: not even a read.
    assert [op for op in (*READ_OPS, "RestoreTableToPointInTime") if music.count(op)] == []


def test_good_form_posts_the_card_and_overrides_reach_the_restore(make_bot, music, fake):
    bot = make_bot(policy=Policy(tables=["Music*"], kms_keys=["alias/restore-key"]))
    an_hour_ago = int(time.time()) - 3600
    resp = submit(
        bot,
        picked=an_hour_ago,
        reason="bad deploy <!channel>",
        billing="PAY_PER_REQUEST",
        sse="alias/restore-key",
    )
    assert resp.status == 200
    assert "errors" not in resp.body  # the form closes
    req = bot.wait_card()
    card = bot.cards()[0]
    assert card.args["channel"] == "C1"
    assert buttons(card) == ["Approve", "Deny"]
    text = json.dumps(card.args["blocks"])
    assert "MusicCollectionRestored" in text and "<@U1>" in text
    assert "&lt;!channel&gt;" in text and "<!channel>" not in text
    assert "PAY_PER_REQUEST" in text  # the card shows the billing override
    assert req.overrides == {"billing_mode": "PAY_PER_REQUEST", "sse_key": "alias/restore-key"}
    assert int(req.restore_at.timestamp()) == an_hour_ago
    told = fake.wait_for("chat.postEphemeral")[0]
    assert told.args["user"] == "U1" and told.args["channel"] == "C1"
    assert "Approval card posted" in told.args["text"]

    assert bot.approve(req.id, "U2").status == 200
    bot.wait_state(req.id, "ACTIVE", timeout=20)
    restores = music.requests("RestoreTableToPointInTime")
    assert len(restores) == 1
    call = restores[0]
    assert call["SourceTableName"] == "MusicCollection"
    assert call["TargetTableName"] == "MusicCollectionRestored"
    assert int(float(call["RestoreDateTime"])) == an_hour_ago
    assert call["BillingModeOverride"] == "PAY_PER_REQUEST"
    assert call["SSESpecificationOverride"]["KMSMasterKeyId"] == "alias/restore-key"


def test_form_card_is_the_same_card_as_the_command_posts(bot, fake):
    assert submit(bot, target="FromTheForm", when="latest", reason="why").status == 200
    bot.wait_card()
    bot.command("/pitr-restore", "MusicCollection FromTheCommand latest reason: why")
    fake.wait_for(lambda c: c.method == "chat.postMessage" and not c.args.get("thread_ts"), 2)
    form, command = bot.cards()

    def shape(call) -> str:
        return (
            json.dumps(call.args["blocks"])
            .replace("FromTheForm", "X")
            .replace("FromTheCommand", "X")
        )

    strip = re.compile(r'"value": "[0-9a-f]+"|\d+')
    assert strip.sub("", shape(form)) == strip.sub("", shape(command))


def test_left_out_indexes_reach_the_restore(make_bot, sim):
    direct = sim.client(direct=True)
    keys = [{"AttributeName": "pk", "AttributeType": "S"}]
    direct.create_table(
        TableName="MusicIndexed",
        AttributeDefinitions=[*keys, {"AttributeName": "artist", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
        GlobalSecondaryIndexes=[
            {
                "IndexName": name,
                "KeySchema": [{"AttributeName": "artist", "KeyType": "HASH"}],
                "Projection": {"ProjectionType": "ALL"},
            }
            for name in ("by-artist", "by-artist-too")
        ],
    )
    direct.update_continuous_backups(
        TableName="MusicIndexed",
        PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True},
    )
    bot = make_bot()
    resp = submit(
        bot,
        source="MusicIndexed",
        target="MusicIndexedCopy",
        exclude="by-artist-too",
        target_block="target.MusicIndexed",
    )
    assert "errors" not in resp.body, resp.body
    req = bot.wait_card()
    assert req.overrides == {"exclude_indexes": ["by-artist-too"]}
    bot.approve(req.id, "U2")
    bot.wait_state(req.id, "ACTIVE", timeout=20)
    call = sim.requests("RestoreTableToPointInTime")[0]
    kept = [i["IndexName"] for i in call["GlobalSecondaryIndexOverride"]]
    assert kept == ["by-artist"]


def test_slow_aws_closes_the_form_and_answers_ephemerally(bot, fake, sim):
    # AWS does not answer at all until released: the form must still be answered (closed).
    sim.hold("DescribeContinuousBackups")
    resp = submit(bot, target="SlowTarget")
    assert resp.status == 200
    assert "errors" not in resp.body
    assert fake.calls("chat.postEphemeral") == [] and bot.cards() == []
    sim.release()
    told = fake.wait_for("chat.postEphemeral", timeout=30)[0]
    assert "Approval card posted" in told.args["text"]
    assert len(bot.cards()) == 1


def test_slow_aws_refusal_is_told_ephemerally(bot, fake, sim):
    sim.hold("DescribeContinuousBackups")
    resp = submit(
        bot, target="MusicCollection-x", source="NoPitrTable", target_block="target.NoPitrTable"
    )
    assert resp.status == 200 and "errors" not in resp.body
    sim.release()
    told = fake.wait_for("chat.postEphemeral", timeout=30)[0]
    assert told.args["text"].startswith(":warning:") and "/pitr-enable" in told.args["text"]
    assert bot.cards() == []


# -- the console: the form as a few prompts --------------------------------------------------
def test_console_turns_the_form_into_prompts_and_posts_the_card():
    from bot.console.session import ConsoleSession

    out = io.StringIO()
    session = ConsoleSession(Console(file=out, width=200, highlight=False), poll_seconds=0.5)
    with session.running():
        session.run_lines(
            [
                "/pitr-restore",
                "music",  # source: search
                "",  # restore to: Enter = latest
                "",  # new table: Enter = the pre-filled name
                "bad deploy",  # reason
                "",  # overrides: Enter = skip
            ],
            echo=True,
        )
        session.wait(10)
    transcript = out.getvalue()
    assert "MusicCollection · PITR on" in transcript  # the picker's own options
    assert re.search(r"MusicCollection-\d{8}-\d{4}", transcript)  # the pre-filled default
    assert "card #1" in transcript and "[1] Approve  [2] Deny" in transcript
    assert "bad deploy" in transcript
    assert "Approval card posted" in transcript
