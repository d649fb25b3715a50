"""The App Home tab over HTTP: a signed app_home_opened event -> views.publish for that person."""

from __future__ import annotations

import json
import time
from typing import Any

from support.fake_slack import Call

from bot.policy import Policy

PERMALINK = "https://acme.slack.com/archives/{channel}/p{ts}"


def home_opened(bot: Any, user: str = "U1", tab: str = "home", n: int = 1) -> None:
    body = {
        "token": "legacy-verification-token",
        "type": "event_callback",
        "team_id": "T1",
        "api_app_id": "A1",
        "event": {
            "type": "app_home_opened",
            "user": user,
            "channel": "D1",
            "tab": tab,
            "event_ts": f"{time.time():.6f}",
        },
        "event_id": f"Ev{n}",
        "event_time": int(time.time()),
    }
    resp = bot.sender.post(json.dumps(body).encode(), content_type="application/json")
    assert resp.status == 200, resp.body


def with_permalinks(fake: Any, monkeypatch: Any) -> None:
    """The fake answers chat.getPermalink with a bare ok; give it a real-looking link."""
    answer = fake._answer

    def patched(method: str, args: dict[str, Any]) -> dict[str, Any]:
        if method == "chat.getPermalink":
            ts = str(args.get("message_ts", "")).replace(".", "")
            return {"ok": True, "permalink": PERMALINK.format(channel=args["channel"], ts=ts)}
        return answer(method, args)

    monkeypatch.setattr(fake, "_answer", patched)


def publishes(fake: Any, user: str) -> list[Call]:
    return [c for c in fake.calls("views.publish") if c.args.get("user_id") == user]


def wait_card_for(bot: Any, target: str, timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for req in bot.services.store.find():
            if req.target == target and req.card_ts:
                return req
        time.sleep(0.02)
    raise AssertionError(f"no card for {target}")


def test_home_shows_restores_and_pitr_coverage(make_bot, fake, sim, monkeypatch):
    with_permalinks(fake, monkeypatch)
    bot = make_bot()

    # A finished restore: asked by U1, approved by U2, ACTIVE.
    assert bot.command("/pitr-restore", "MusicCollection MusicDone latest").status == 200
    done = wait_card_for(bot, "MusicDone")
    assert bot.approve(done.id, "U2").status == 200
    bot.wait_state(done.id, "ACTIVE", timeout=20)
    # One in flight: asked by U3, waiting for approval.
    assert bot.command("/pitr-restore", "MusicCollection MusicPending latest", user="U3").status
    pending = wait_card_for(bot, "MusicPending")

    home_opened(bot, user="U2")
    call = fake.wait_for(lambda c: c.method == "views.publish" and c.args.get("user_id") == "U2")[0]
    view = call.args["view"]
    assert view["type"] == "home"
    assert 0 < len(view["blocks"]) <= 100
    text = json.dumps(view["blocks"], ensure_ascii=False)

    in_flight = text[text.index("In flight") : text.index("Recent")]
    assert "`MusicCollection` → `MusicPending`" in in_flight
    assert "waiting for approval" in in_flight and "<@U3>" in in_flight
    pending_link = PERMALINK.format(channel="C1", ts=pending.card_ts.replace(".", ""))
    assert f"<{pending_link}|thread>" in in_flight

    recent = text[text.index("Recent") : text.index("PITR coverage")]
    assert "`MusicCollection` → `MusicDone`" in recent and "restored" in recent
    assert "took " in recent and "<@U1>" in recent
    done_link = PERMALINK.format(channel="C1", ts=done.card_ts.replace(".", ""))
    assert f"<{done_link}|thread>" in recent

    coverage = text[text.index("PITR coverage") :]
    assert "`NoPitrTable` — PITR *DISABLED*" in coverage
    assert "/pitr-enable NoPitrTable" in coverage
    assert "`MusicCollection` — PITR on" in coverage
    assert coverage.index("NoPitrTable") < coverage.index("`MusicCollection` — PITR on")

    # Each card was asked about once; opening again within a minute asks nobody again.
    links = fake.calls("chat.getPermalink")
    assert sorted(c.args["message_ts"] for c in links) == sorted([done.card_ts, pending.card_ts])
    list_calls, pitr_calls = sim.count("ListTables"), sim.count("DescribeContinuousBackups")
    home_opened(bot, user="U1", n=2)
    fake.wait_for(lambda c: c.method == "views.publish" and c.args.get("user_id") == "U1")
    assert sim.count("ListTables") == list_calls
    assert sim.count("DescribeContinuousBackups") == pitr_calls
    assert len(fake.calls("chat.getPermalink")) == len(links)


def test_home_covers_only_policy_tables_and_ignores_messages_tab(make_bot, fake):
    bot = make_bot(policy=Policy(tables=["Music*"]))

    home_opened(bot, user="U2", tab="messages", n=1)
    home_opened(bot, user="U3", n=2)
    call = fake.wait_for(lambda c: c.method == "views.publish")[0]
    assert call.args["user_id"] == "U3"
    time.sleep(0.3)  # the Messages-tab event was handled first; give it time to misbehave
    assert publishes(fake, "U2") == []  # the Messages tab publishes nothing
    text = json.dumps(call.args["view"]["blocks"], ensure_ascii=False)
    assert "MusicCollection" in text and "NoPitrTable" not in text
    assert "Nothing in flight" in text and "No restores yet" in text


def test_home_survives_aws_errors(make_bot, fake, sim):
    bot = make_bot()
    sim.fail(
        "ListTables", code="AccessDeniedException", message="not authorized to ListTables <!here>"
    )

    home_opened(bot, user="U1")
    call = fake.wait_for(lambda c: c.method == "views.publish")[0]
    text = json.dumps(call.args["view"]["blocks"], ensure_ascii=False)
    assert "Couldn't check PITR coverage" in text
    assert "<!here>" not in text
    assert "PITR on" not in text
    assert "Nothing in flight" in text

    # The error is not cached: the next open shows the coverage.
    home_opened(bot, user="U1", n=2)
    again = fake.wait_for(lambda c: c.method == "views.publish", count=2)[1]
    assert "`MusicCollection` — PITR on" in json.dumps(
        again.args["view"]["blocks"], ensure_ascii=False
    )
