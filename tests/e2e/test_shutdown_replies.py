"""Stopping the bot sends the ephemeral replies it already owes (within a bound), not after."""

from __future__ import annotations

import threading

from support.signed import slash_command_body

from e2e.process import wait_until


def test_stop_sends_the_replies_still_queued_before_it_returns(make_bot, fake):
    bot = make_bot()
    fake.hold("response_url")  # Slack's hooks host is slow: replies queue up behind the first
    url = fake.response_url("queued")
    for i in range(2):
        body = slash_command_body("/pitr-restore", f"OnlyASource{i}", "U1", "C1", url)
        assert bot.sender.post(body).status == 200

    def replies() -> int:
        return len([c for c in fake.calls("response_url") if c.args["_path"].endswith("/queued")])

    wait_until(lambda: replies() == 1, 30, "the first reply to reach Slack")  # held there
    stopper = threading.Thread(target=bot.stop)
    stopper.start()
    wait_until(lambda: not bot.server.http.ready.is_set(), 30, "the bot to stop accepting")
    fake.release()
    stopper.join(30)
    assert not stopper.is_alive()
    assert replies() == 2  # the second, queued behind the first, went out before stop returned
