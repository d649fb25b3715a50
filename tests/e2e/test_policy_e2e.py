"""The approval policy as people meet it: who may click Approve, and what happens then.

Each test drives the real bot over HTTP and looks at what a person would see: the card in the
channel (and whether it changed), ephemeral replies, and whether a restore really started.
"""

from __future__ import annotations

import threading
import time

import pytest
from support.fake_slack import buttons

from bot.policy import Policy, Rule
from e2e.harness import BotUnderTest


def card_updates(fake, card_ts: str) -> list:
    return [c for c in fake.calls("chat.update") if c.args.get("ts") == card_ts]


def request(bot: BotUnderTest, target: str, user: str = "U1", channel: str = "C1"):
    """Ask for MusicCollection -> target and return the request once its card is up."""
    resp = bot.command("/pitr-restore", f"MusicCollection {target} latest", user, channel)
    assert resp.status == 200
    req = bot.wait_card()
    bot.wait_reply(user, "Someone else has to click")
    return req


def audit(bot: BotUnderTest, event: str) -> list:
    return [e for e in bot.services.store.audit_events() if e.event == event]


def assert_refused_and_untouched(bot: BotUnderTest, fake, sim, req, user: str, why: str) -> None:
    """`user`'s Approve was refused with `why`, the card did not change, nothing started."""
    reply = bot.wait_reply(user, why)
    assert reply.startswith(":warning:")
    time.sleep(0.4)  # anything the click (wrongly) set off would show up by now
    bot.quiet()  # ... and whatever it queued for Slack is sent
    assert card_updates(fake, req.card_ts) == [], "the card changed after a refused click"
    assert sim.count("RestoreTableToPointInTime") == 0
    now = bot.services.store.get(req.id)
    assert now.state.value == "REQUESTED"
    assert user not in now.approvals


# -- self approval --------------------------------------------------------------------------
def test_requester_cannot_approve_own_request_by_default(make_bot, fake, sim):
    bot = make_bot()
    req = request(bot, "SelfApproved")
    assert bot.approve(req.id, "U1").status == 200
    assert_refused_and_untouched(bot, fake, sim, req, "U1", "someone else has to approve")
    assert [e.actor for e in audit(bot, "approval_refused")] == ["U1"]


def test_requester_may_approve_own_request_when_policy_allows(make_bot, fake, sim):
    bot = make_bot(policy=Policy(allow_self_approval=True))
    req = request(bot, "SelfApprovedOk")
    assert bot.approve(req.id, "U1").status == 200
    bot.wait_state(req.id, "ACTIVE", timeout=20)
    assert sim.count("RestoreTableToPointInTime") == 1
    assert bot.services.store.get(req.id).approvals == ("U1",)
    assert [e.actor for e in audit(bot, "approved")] == ["U1"]


# -- approvers ------------------------------------------------------------------------------
def test_user_outside_approvers_is_refused_and_card_unchanged(make_bot, fake, sim):
    bot = make_bot(policy=Policy(approvers=["U2"]))
    req = request(bot, "OnlyU2")
    assert bot.approve(req.id, "U3").status == 200
    assert_refused_and_untouched(bot, fake, sim, req, "U3", "not one of the approvers")
    # A listed approver still can.
    bot.approve(req.id, "U2")
    bot.wait_state(req.id, "ACTIVE", timeout=20)
    assert sim.count("RestoreTableToPointInTime") == 1


def test_member_of_approver_group_is_accepted(make_bot, fake, sim):
    fake.groups = {"S1": ["U3"]}
    bot = make_bot(policy=Policy(approvers=["S1"]))
    req = request(bot, "GroupApproved")
    bot.approve(req.id, "U2")  # not in S1
    assert_refused_and_untouched(bot, fake, sim, req, "U2", "not one of the approvers")
    bot.approve(req.id, "U3")
    bot.wait_state(req.id, "ACTIVE", timeout=20)
    assert sim.count("RestoreTableToPointInTime") == 1
    assert any(c.args.get("usergroup") == "S1" for c in fake.calls("usergroups.users.list"))


@pytest.mark.parametrize("failure", ["group unknown to Slack", "Slack API error"])
def test_group_that_cannot_be_resolved_refuses(make_bot, fake, sim, failure):
    fake.groups = {"S1": ["U3"]}
    if failure == "group unknown to Slack":
        approvers = ["S9"]  # usergroups.users.list answers ok:false, no_such_subteam
    else:
        approvers = ["S1"]
        fake.fail("usergroups.users.list", times=20, status=200, error="missing_scope")
    bot = make_bot(policy=Policy(approvers=approvers))
    req = request(bot, "GroupUnresolved")
    bot.approve(req.id, "U3")
    assert_refused_and_untouched(bot, fake, sim, req, "U3", "not one of the approvers")
    assert fake.calls("usergroups.users.list"), "the group was never looked up"


# -- races ----------------------------------------------------------------------------------
def test_twenty_concurrent_approvals_start_exactly_one_restore(make_bot, fake, sim):
    bot = make_bot()
    req = request(bot, "Stampede")
    barrier = threading.Barrier(20)
    statuses: list[int] = []

    def click(user: str) -> None:
        barrier.wait()
        statuses.append(bot.approve(req.id, user).status)

    threads = [threading.Thread(target=click, args=("U2" if i % 2 else "U3",)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert statuses == [200] * 20

    done = bot.wait_state(req.id, "ACTIVE", timeout=20)
    # Wait for the broadcast itself (it follows the state), then give a duplicate time to show.
    fake.wait_for(
        lambda c: c.method == "chat.postMessage" and c.args.get("reply_broadcast"), timeout=20
    )
    time.sleep(0.5)
    bot.quiet()  # a duplicate broadcast, were one queued, is sent before the count
    assert sim.count("RestoreTableToPointInTime") == 1
    approved = audit(bot, "approved")
    assert len(approved) == 1, approved
    assert done.approvals == (approved[0].actor,)
    assert len(audit(bot, "restore_started")) == 1
    broadcasts = [c for c in fake.calls("chat.postMessage") if c.args.get("reply_broadcast")]
    assert len(broadcasts) == 1


# -- several approvals ----------------------------------------------------------------------
def test_two_approvals_required_and_a_double_click_counts_once(make_bot, fake, sim):
    bot = make_bot(policy=Policy(approvers=["U2", "U3"], required_approvals=2))
    req = request(bot, "TwoKeys")

    bot.approve(req.id, "U2")
    bot.wait_reply("U2", "1 more needed")
    fake.wait_for(
        lambda c: (
            c.method == "chat.update"
            and c.args.get("ts") == req.card_ts
            and "1 of 2" in str(c.args.get("blocks"))
        )
    )
    card = card_updates(fake, req.card_ts)[-1]
    assert "<@U2>" in str(card.args["blocks"])
    assert buttons(card) == ["Approve", "Deny"]

    bot.approve(req.id, "U2")  # the same person again
    bot.wait_reply("U2", "already approved")
    time.sleep(0.4)
    assert bot.services.store.get(req.id).approvals == ("U2",)
    assert bot.services.store.get(req.id).state.value == "REQUESTED"
    assert "1 of 2" in str(card_updates(fake, req.card_ts)[-1].args["blocks"])
    assert sim.count("RestoreTableToPointInTime") == 0

    bot.approve(req.id, "U3")
    bot.wait_state(req.id, "ACTIVE", timeout=20)
    assert sim.count("RestoreTableToPointInTime") == 1
    assert bot.services.store.get(req.id).approvals == ("U2", "U3")
    assert [e.actor for e in audit(bot, "approved")] == ["U2", "U3"]


# -- deny and expiry ------------------------------------------------------------------------
def test_deny_closes_the_card_and_a_later_approve_does_nothing(make_bot, fake, sim):
    bot = make_bot()
    req = request(bot, "DeniedCopy")
    bot.deny(req.id, "U2")
    bot.wait_state(req.id, "DENIED")
    closed = fake.wait_for(
        lambda c: (
            c.method == "chat.update"
            and c.args.get("ts") == req.card_ts
            and "Denied" in c.args.get("text", "")
        )
    )[-1]
    assert buttons(closed) == []
    assert "<@U2>" in str(closed.args["blocks"])

    bot.approve(req.id, "U3")
    bot.wait_reply("U3", "already denied")
    time.sleep(0.4)
    assert sim.count("RestoreTableToPointInTime") == 0
    assert bot.services.store.get(req.id).state.value == "DENIED"
    assert audit(bot, "approved") == []


def test_request_left_alone_expires(make_bot, fake, sim):
    bot = make_bot(policy=Policy(request_ttl_minutes=0.02), poll_seconds=0.1)
    req = request(bot, "ExpiredCopy")
    bot.wait_state(req.id, "EXPIRED", timeout=30)

    closed = fake.wait_for(
        lambda c: (
            c.method == "chat.update"
            and c.args.get("ts") == req.card_ts
            and "Expired" in c.args.get("text", "")
        )
    )[-1]
    assert buttons(closed) == []
    told = fake.wait_for(lambda c: c.method == "chat.postEphemeral" and c.args.get("user") == "U1")[
        -1
    ]
    assert "expired" in told.args["text"]
    assert told.args["channel"] == "C1"

    bot.approve(req.id, "U2")
    bot.wait_reply("U2", "expired")
    time.sleep(0.4)
    assert sim.count("RestoreTableToPointInTime") == 0
    assert bot.services.store.get(req.id).state.value == "EXPIRED"
    assert len(audit(bot, "expired")) == 1


# -- per-table rules ------------------------------------------------------------------------
def test_table_rule_overrides_default_approvers(make_bot, fake, sim):
    policy = Policy(approvers=["U2"], rules=[Rule(tables=["Music*"], approvers=["U3"])])
    bot = make_bot(policy=policy)
    req = request(bot, "RuledCopy")
    bot.approve(req.id, "U2")  # a default approver, but not for Music* tables
    assert_refused_and_untouched(bot, fake, sim, req, "U2", "not one of the approvers")
    bot.approve(req.id, "U3")
    bot.wait_state(req.id, "ACTIVE", timeout=20)
    assert sim.count("RestoreTableToPointInTime") == 1


# -- who may ask, where, for what -----------------------------------------------------------
REQUEST_POLICIES = {
    # name: (policy, refused (user, channel, source), allowed (user, channel, source), reason)
    "channels": (
        Policy(channels=["C9"]),
        ("U1", "C1", "MusicCollection"),
        ("U1", "C9", "MusicCollection"),
        "can't be requested in this channel",
    ),
    "requesters": (
        Policy(requesters=["U2"]),
        ("U1", "C1", "MusicCollection"),
        ("U2", "C1", "MusicCollection"),
        "not allowed to request",
    ),
    "tables": (
        Policy(tables=["Music*"]),
        ("U1", "C1", "NoPitrTable"),
        ("U1", "C1", "MusicCollection"),
        "not covered by the policy",
    ),
}


@pytest.mark.parametrize("name", list(REQUEST_POLICIES))
def test_request_outside_policy_is_refused_without_a_card(make_bot, fake, sim, name):
    policy, refused, allowed, reason = REQUEST_POLICIES[name]
    bot = make_bot(policy=policy)
    user, channel, source = refused
    resp = bot.command("/pitr-restore", f"{source} PolicyCopy latest", user, channel)
    assert resp.status == 200
    reply = bot.wait_reply(user, reason)
    assert reply.startswith(":warning:")
    time.sleep(0.4)
    assert bot.cards() == []
    assert bot.services.store.find() == []
    assert fake.calls("chat.postEphemeral") == []  # the refusal is private, via response_url
    assert sim.count("RestoreTableToPointInTime") == 0
    refusals = audit(bot, "request_refused")
    assert [(e.actor, e.channel, e.table) for e in refusals] == [(user, channel, source)]

    # Control: the same policy lets the allowed person/channel/table through.
    user, channel, source = allowed
    bot.command("/pitr-restore", f"{source} PolicyCopyOk latest", user, channel)
    req = bot.wait_card()
    assert (req.requester, req.channel, req.source) == allowed
