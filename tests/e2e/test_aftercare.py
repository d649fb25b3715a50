"""After ACTIVE, over HTTP: the thread lists the real differences and each button fixes one.

The source gets TTL and tags first (directly in moto); a restore does not carry them over, nor
PITR. Each click must make the restored table match (checked with the direct client), a
refused click must change nothing, and `after_restore` must do the fixes without a click.
"""

from __future__ import annotations

import time

from botocore.exceptions import ClientError

from bot.policy import Policy
from e2e.harness import button_labels

SOURCE = "MusicCollection"


def prepare_source(sim) -> None:
    direct = sim.client(direct=True)
    direct.update_time_to_live(
        TableName=SOURCE, TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires"}
    )
    arn = direct.describe_table(TableName=SOURCE)["Table"]["TableArn"]
    direct.tag_resource(
        ResourceArn=arn, Tags=[{"Key": "team", "Value": "music"}, {"Key": "cost", "Value": "42"}]
    )


def aftercare_reply(fake, target: str):
    return fake.wait_for(
        lambda c: (
            c.method == "chat.postMessage"
            and f"{target} compared with" in str(c.args.get("text", ""))
        ),
        timeout=30,
    )[0]


def target_state(sim, target: str) -> dict:
    direct = sim.client(direct=True)
    arn = direct.describe_table(TableName=target)["Table"]["TableArn"]
    ttl = direct.describe_time_to_live(TableName=target)["TimeToLiveDescription"]
    tags = {t["Key"]: t["Value"] for t in direct.list_tags_of_resource(ResourceArn=arn)["Tags"]}
    pitr = direct.describe_continuous_backups(TableName=target)["ContinuousBackupsDescription"]
    return {
        "ttl": (ttl.get("TimeToLiveStatus"), ttl.get("AttributeName")),
        "tags": {k: v for k, v in tags.items() if not k.startswith("pitr-bot:")},
        "pitr": pitr["PointInTimeRecoveryDescription"]["PointInTimeRecoveryStatus"],
    }


def latest_update(fake, ts: str) -> dict:
    updates = [c for c in fake.calls("chat.update") if c.args.get("ts") == ts]
    return updates[-1].args if updates else {}


def wait_buttons(fake, ts: str, expected: list[str], timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        args = latest_update(fake, ts)
        if args and button_labels(args) == expected:
            return args
        time.sleep(0.05)
    raise AssertionError(f"buttons never became {expected}: {latest_update(fake, ts)}")


def test_differences_are_listed_and_each_button_makes_the_table_match(make_bot, fake, sim):
    prepare_source(sim)
    bot = make_bot(policy=Policy(approvers=["U2"]))
    req = bot.restore_to_active(SOURCE, "MusicRestored")

    reply = aftercare_reply(fake, "MusicRestored")
    assert reply.args["thread_ts"] == bot.services.store.get(req.id).card_ts
    text = str(reply.args["blocks"])
    assert "Time to live" in text and "expires" in text
    assert "Tags" in text and "team=music" in text
    assert "Point-in-time recovery" in text
    assert "Could not check *Contributor insights*" in text  # moto lacks that API
    assert "Same on both" in text and "Deletion protection" in text
    # Only the real differences have a button.
    assert button_labels(reply.args) == ["Enable PITR", "Copy TTL and tags", "Compare items"]
    before = target_state(sim, "MusicRestored")
    assert before == {"ttl": ("DISABLED", None), "tags": {}, "pitr": "DISABLED"}

    # Not an approver and not the requester: refused, ephemerally, and nothing changes.
    bot.click("pitr_fix_ttl_tags", req.id, "U3")
    bot.wait_reply("U3", "not one of the approvers")
    assert target_state(sim, "MusicRestored") == before

    # The requester may click; TTL and tags are copied; the button goes away.
    ts = bot.services.store.get(req.id).aftercare_ts
    bot.click("pitr_fix_ttl_tags", req.id, "U1")
    wait_buttons(fake, ts, ["Enable PITR", "Compare items"])
    after = target_state(sim, "MusicRestored")
    assert after["ttl"] == ("ENABLED", "expires")
    assert after["tags"] == {"team": "music", "cost": "42"}
    fake.wait_for(
        lambda c: (
            c.method == "chat.postMessage"
            and "Copy TTL and tags done" in str(c.args.get("text", ""))
            and "<@U1>" in str(c.args.get("text", ""))
        )
    )

    # An approver enables PITR; a second click does nothing twice.
    bot.click("pitr_fix_pitr", req.id, "U2")
    wait_buttons(fake, ts, ["Compare items"])
    assert target_state(sim, "MusicRestored")["pitr"] == "ENABLED"
    before_again = sim.count("UpdateContinuousBackups")
    bot.click("pitr_fix_pitr", req.id, "U2")
    bot.wait_reply("U2", "already done")
    assert sim.count("UpdateContinuousBackups") == before_again

    events = [e.event for e in bot.services.store.audit_events()]
    assert events.count("aftercare_fixed") == 2
    assert "aftercare_fix_refused" in events


def test_after_restore_policy_copies_without_a_click(make_bot, fake, sim):
    prepare_source(sim)
    bot = make_bot(policy=Policy(after_restore=["pitr", "ttl", "tags"]))
    bot.restore_to_active(SOURCE, "MusicAuto")
    reply = aftercare_reply(fake, "MusicAuto")
    text = str(reply.args["blocks"])
    assert "Done automatically (policy `after_restore`)" in text
    assert button_labels(reply.args) == ["Compare items"]
    state = target_state(sim, "MusicAuto")
    assert state == {
        "ttl": ("ENABLED", "expires"),
        "tags": {"team": "music", "cost": "42"},
        "pitr": "ENABLED",
    }


def refuse_reserved_tag_keys(client) -> list[list[str]]:
    """AWS refuses a whole TagResource call that names an `aws:` key (reserved for AWS's own
    tags, e.g. CloudFormation's); moto accepts it. This hook answers like AWS does."""
    seen: list[list[str]] = []

    def check(params, **_):  # noqa: ANN001, ANN003, ANN202 - a botocore event handler
        keys = [str(t.get("Key", "")) for t in params.get("Tags", [])]
        seen.append(keys)
        if any(k.lower().startswith("aws:") for k in keys):
            error = {
                "Code": "ValidationException",
                "Message": "Tag keys starting with 'aws:' are reserved for system use",
            }
            raise ClientError({"Error": error}, "TagResource")

    client.meta.events.register("before-parameter-build.dynamodb.TagResource", check)
    return seen


def test_copy_tags_leaves_out_aws_reserved_keys_and_says_which(make_bot, fake, sim):
    prepare_source(sim)
    direct = sim.client(direct=True)
    arn = direct.describe_table(TableName=SOURCE)["Table"]["TableArn"]
    stack = {"Key": "aws:cloudformation:stack-name", "Value": "music-stack"}
    direct.tag_resource(ResourceArn=arn, Tags=[stack])  # moto lets a test set it
    bot = make_bot(policy=Policy(approvers=["U2"]))
    seen = refuse_reserved_tag_keys(bot.services.pitr.client)
    req = bot.restore_to_active(SOURCE, "MusicRestored")
    reply = aftercare_reply(fake, "MusicRestored")
    assert button_labels(reply.args) == ["Enable PITR", "Copy TTL and tags", "Compare items"]
    deadline = time.monotonic() + 30
    while (ts := bot.services.store.get(req.id).aftercare_ts) is None:  # the reply's ts, stored
        assert time.monotonic() < deadline, "the aftercare reply's ts was never stored"
        time.sleep(0.05)

    bot.click("pitr_fix_ttl_tags", req.id, "U1")

    wait_buttons(fake, ts, ["Enable PITR", "Compare items"])
    assert target_state(sim, "MusicRestored")["tags"] == {"team": "music", "cost": "42"}
    assert not [k for keys in seen for k in keys if k.startswith("aws:")]  # never sent
    (done,) = fake.wait_for(
        lambda c: (
            c.method == "chat.postMessage"
            and "Copy TTL and tags done" in str(c.args.get("text", ""))
        )
    )
    text = str(done.args.get("text", ""))
    assert "2 tag(s) copied" in text
    assert "aws:cloudformation:stack-name" in text and "left out" in text
