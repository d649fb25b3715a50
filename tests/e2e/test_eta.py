"""ETA over HTTP: after three restores of a table, the next card and its progress say when."""

from __future__ import annotations

import re
import time

from bot.eta import Eta

SHARE = re.compile(r"· (\d+) % of typical")


def restore(bot, target: str):
    bot.command("/pitr-restore", f"MusicCollection {target} latest")
    bot.fake.wait_for(
        lambda c: c.method == "chat.postMessage" and target in str(c.args.get("text")),
        timeout=20,
    )
    req = next(r for r in bot.services.store.find() if r.target == target)
    return bot.wait_state(req.id, "REQUESTED", timeout=20)


def test_after_three_restores_the_card_and_progress_show_the_expected_end(make_bot, fake):
    bot = make_bot(creating_seconds=1.0)
    for n in range(3):
        earlier = restore(bot, f"Earlier-{n}")
        assert earlier.estimate == "no history" if n == 0 else earlier.estimate != "no history"
        bot.approve(earlier.id, "U2")
        bot.wait_state(earlier.id, "ACTIVE", timeout=30)

    # This one takes longer than any before it: CREATING until the test has seen the edits
    # (a fixed 6 s could be over before a busy machine's announcer edits the reply twice).
    bot.creating.seconds = float("inf")
    req = restore(bot, "Fourth-copy")
    card = next(c for c in bot.cards() if "Fourth-copy" in str(c.args.get("text")))
    blocks = str(card.args["blocks"])
    assert "Expected duration" in blocks
    assert "3 earlier restores of `MusicCollection`" in blocks and "typical" in blocks
    eta = Eta.from_dict(bot.services.store.get(req.id).eta)
    assert eta is not None and eta.count == 3 and eta.typical >= 1.0

    bot.approve(req.id, "U2")
    bot.wait_state(req.id, "RESTORING", timeout=20)

    def progress(call) -> str:
        """The progress reply of this restore (posted, then edited in place)."""
        text = str(call.args.get("text", ""))
        return text if "`Fourth-copy` is CREATING" in text else ""

    first = fake.wait_for(lambda c: bool(progress(c)), timeout=20)[0]
    text = progress(first)
    assert "elapsed" in text
    assert "expected " in text and " UTC, typical " in text and "for `MusicCollection`" in text
    assert "% of typical" in text

    # The same reply is edited in place as time passes: its share of typical grows...
    deadline = time.monotonic() + 30
    while not bot.services.store.get(req.id).progress_ts and time.monotonic() < deadline:
        time.sleep(0.05)  # the announcer records the reply's ts just after posting it
    reply_ts = bot.services.store.get(req.id).progress_ts
    assert reply_ts

    def edit_share(call) -> int | None:
        if call.method != "chat.update" or call.args.get("ts") != reply_ts:
            return None
        found = SHARE.search(progress(call))
        return int(found.group(1)) if found else None

    first_share = int(SHARE.search(text).group(1))
    fake.wait_for(lambda c: (edit_share(c) or -1) > first_share, timeout=30)
    # ...and once past every earlier duration, it says so.
    late = fake.wait_for(
        lambda c: "taking longer than any earlier restore of this table" in progress(c),
        timeout=30,
    )[0]
    assert "elapsed" in progress(late) and late.args.get("ts") == reply_ts
    bot.creating.seconds = 0  # ACTIVE at the next poll
    bot.wait_state(req.id, "ACTIVE", timeout=30)


def test_a_first_restore_of_a_table_borrows_the_accounts_history_on_its_card(make_bot, sim):
    """Issue 22: no restore of MusicCollection yet, three of another table of the account:
    the card's expected duration is borrowed, and says from what."""
    sim.create_table("Playlists", pitr=True, items=5)
    bot = make_bot(creating_seconds=0.5)
    for n in range(3):
        bot.command("/pitr-restore", f"Playlists Playlists-copy-{n} latest")
        bot.fake.wait_for(
            lambda c, n=n: (
                c.method == "chat.postMessage" and f"Playlists-copy-{n}" in str(c.args.get("text"))
            ),
            timeout=20,
        )
        req = next(r for r in bot.services.store.find() if r.target == f"Playlists-copy-{n}")
        bot.wait_state(req.id, "REQUESTED", timeout=20)
        bot.approve(req.id, "U2")
        bot.wait_state(req.id, "ACTIVE", timeout=30)

    req = restore(bot, "First-copy")
    card = next(c for c in bot.cards() if "First-copy" in str(c.args.get("text")))
    blocks = str(card.args["blocks"])
    assert "borrowed: estimated from 3 restores of other tables in this account, by size" in blocks
    assert Eta.from_dict(bot.services.store.get(req.id).eta).basis == "borrowed"
