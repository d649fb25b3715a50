"""Whatever someone types after /pitr-restore, the bot answers privately and changes nothing.

And whatever it echoes back, anywhere, is inert: `<!channel>`, `<@U999>` and
`<https://evil...|click>` must reach Slack escaped (`&lt;`), never as a live mention or link.
"""

from __future__ import annotations

import json
import time
import urllib.request

from bot.policy import Policy
from e2e.harness import BotUnderTest

# The policy covers the tables the corpus names on purpose, but not "OtherTable".
POLICY = Policy(tables=["Music*", "NoPitrTable", "NoSuchTable"])

LIVE_MARKUP = ("<!channel>", "<@U999>", "<https://evil")
MUTATIONS = ("RestoreTableToPointInTime", "UpdateContinuousBackups")

# (name, text after /pitr-restore)
CORPUS: list[tuple[str, str]] = [
    ("unknown table", "NoSuchTable CopyA latest"),
    ("PITR off", "NoPitrTable CopyB latest"),
    ("instant before window", "MusicCollection CopyC 2001-01-01T00:00:00Z"),
    ("instant in future", "MusicCollection CopyD 2999-01-01T00:00:00Z"),
    ("unreadable time", "MusicCollection CopyE blorp zork quux"),
    ("target exists", "MusicCollection NoPitrTable latest"),
    ("target == source", "MusicCollection MusicCollection latest"),
    ("table outside policy", "OtherTable CopyH latest"),
    ("10 kB of text", "MusicCollection CopyI latest reason: " + "x" * 10_000),
    ("10 kB of mentions", "<!channel> <@U999> " * 600),
    ("emoji table names", "🎵🎶🎸 💿📀 latest"),
    ("<!channel> as source", "<!channel> CopyL latest"),
    ("<!channel> as target", "MusicCollection <!channel> latest"),
    ("<!channel> in reason", "NoSuchTable CopyN latest reason: <!channel> wake up"),
    ("<@U999> as source", "<@U999> CopyO latest"),
    ("link as target", "MusicCollection <https://evil.example|click> latest"),
    ("markup as WHEN", "MusicCollection CopyQ <!channel> <@U999>"),
    ("link as WHEN", "MusicCollection CopyR <https://evil.example|click>"),
    ("shell ;rm", "a;rm -rf / latest"),
    ("shell $(...)", "$(whoami) `id` latest"),
    ("unbalanced double quote", 'MusicCollection "CopyU latest'),
    ("unbalanced single quote", "MusicCollection 'CopyV latest"),
    ("null byte and controls", "Music\x00Collection Copy\x07\x1b[31mW latest"),
    ("newlines", "MusicCollection\nCopyX\nlatest\n<!channel>"),
    ("256-char name", "A" * 256 + " CopyY latest"),
    ("256-char target", "MusicCollection " + "B" * 256 + " latest"),
    ("only a source", "MusicCollection"),
    ("path traversal", "../../etc/passwd CopyZ latest"),
    # A table ARN is a valid source now (table references); these are not.
    ("non-DynamoDB ARN as source", "arn:aws:s3:::my-bucket CopyAA latest"),
    ("unknown account alias", "evil:MusicCollection CopyAB latest"),
    ("region that is not one", "MusicCollection@mars-1 CopyAC latest"),
    ("batch with a bad table", "MusicCollection,../etc -x latest"),
]


def everything_sent(bot: BotUnderTest) -> list[tuple[str, str]]:
    """(where, text) for every message the bot sent: Web API calls, response_url posts, acks."""
    sent = [(c.method, json.dumps(c.args, ensure_ascii=False)) for c in bot.fake.calls()]
    sent += [("ack", r.body) for r in bot.responses]
    return sent


def assert_no_live_markup(bot: BotUnderTest) -> None:
    for where, text in everything_sent(bot):
        for markup in LIVE_MARKUP:
            assert markup not in text, f"{where} carried live {markup!r}: {text[:300]}"


def replies(bot: BotUnderTest, name: str) -> list[str]:
    return [
        str(c.args.get("text", ""))
        for c in bot.fake.calls("response_url")
        if c.args.get("_path", "").endswith(f"/{name}")
    ]


def send(bot: BotUnderTest, case: int, text: str):
    """Send as U1 with a response_url of its own, so each reply can be told apart."""
    resp = bot.sender.command(
        "/pitr-restore",
        text,
        user_id="U1",
        channel_id="C1",
        response_url=bot.fake.response_url(f"case{case}"),
    )
    bot.responses.append(resp)
    return resp


def wait_replies(bot: BotUnderTest, name: str, timeout: float = 30) -> list[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = replies(bot, name)
        if found:
            return found
        time.sleep(0.02)
    raise AssertionError(f"no ephemeral reply for {name}")


def healthz(bot: BotUnderTest) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{bot.server.port}/healthz", timeout=15) as r:
        return int(r.status)


def test_corpus_of_bad_requests_is_refused_privately_and_harmlessly(make_bot, fake, sim):
    assert len(CORPUS) >= 15
    bot = make_bot(policy=POLICY)
    problems = []
    for i, (name, text) in enumerate(CORPUS):
        resp = send(bot, i, text)
        if resp.status != 200:
            problems.append(f"{name}: HTTP {resp.status}")
            continue
        try:
            answer = wait_replies(bot, f"case{i}")
        except AssertionError as exc:
            problems.append(f"{name}: {exc}")
            continue
        if not any(a.startswith(":warning:") and len(a) > 15 for a in answer):
            problems.append(f"{name}: no reason given, got {answer}")
    time.sleep(0.5)  # anything a request (wrongly) set off would show by now

    assert problems == [], "\n".join(problems)
    # Every reply went to the person only: response_url, ephemeral.
    for call in fake.calls("response_url"):
        assert call.args.get("response_type") == "ephemeral", call.args
    assert bot.cards() == [], fake.dump()
    assert fake.calls("chat.postEphemeral") == []
    assert bot.services.store.find() == []
    for op in MUTATIONS:
        assert sim.count(op) == 0, op
    assert_no_live_markup(bot)

    # Still alive and still useful.
    assert healthz(bot) == 200
    resp = bot.command("/pitr-restore", "MusicCollection AfterTheStorm latest")
    assert resp.status == 200
    req = bot.wait_card()
    assert req.target == "AfterTheStorm"


def test_table_outside_policy_is_refused_by_the_policy_not_by_aws(make_bot, fake, sim):
    bot = make_bot(policy=Policy(tables=["Music*"]))
    send(bot, 0, "NoPitrTable OutsideCopy latest")
    answer = wait_replies(bot, "case0")
    assert any("not covered by the policy" in a for a in answer), answer
    time.sleep(0.3)
    assert bot.cards() == []
    assert sim.count("DescribeContinuousBackups") == 0  # refused before looking at AWS
    for op in MUTATIONS:
        assert sim.count(op) == 0


def test_reason_with_markup_is_shown_escaped_on_the_card(make_bot, fake, sim):
    bot = make_bot()
    text = "MusicCollection EscapedReason latest reason: <!channel> please <@U999> <https://evil.example|click>"
    assert bot.command("/pitr-restore", text).status == 200
    req = bot.wait_card()
    assert req.reason.startswith("<!channel> please")  # stored as typed ...
    card = bot.cards()[0]
    shown = json.dumps(card.args["blocks"], ensure_ascii=False)
    assert "&lt;!channel&gt; please" in shown  # ... shown as plain text
    assert "&lt;@U999&gt;" in shown
    assert "&lt;https://evil.example|click&gt;" in shown

    # Approve and finish: no later message (updates, thread replies) brings it back to life.
    bot.approve(req.id, "U2")
    bot.wait_state(req.id, "ACTIVE", timeout=20)
    fake.wait_for(lambda c: c.method == "chat.postMessage" and c.args.get("reply_broadcast"))
    assert_no_live_markup(bot)
