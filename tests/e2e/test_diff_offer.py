"""Over HTTP: a restore's approval card offers `/pitr-diff` (items back without restoring the
table) when exports are set up, with a command that `/pitr-diff` accepts as typed."""

from __future__ import annotations

import re
import time

from bot.when import parse_when
from commands.export_diff import parse_export_diff
from e2e.test_exports import COPY_BACK_ON, EXPORT_S3, LIVE, live_table

COMMAND = re.compile(r"`(/pitr-diff [^`]+)`")


def test_the_restore_card_offers_a_diff_command_that_pitr_diff_accepts(make_bot, fake, sim):
    live_table(sim, items=5)
    bot = make_bot(policy=COPY_BACK_ON, PITR_BOT_EXPORT_S3=EXPORT_S3)

    bot.command("/pitr-restore", f'{LIVE} {LIVE}-before "2 hours ago"')
    req = bot.wait_card()
    assert req.restore_at is not None
    (command,) = COMMAND.findall(str(bot.cards()[0].args["blocks"]))
    assert "Only need some items back?" in str(bot.cards()[0].args["blocks"])

    # The export path's own parsers read it as the card's table and instant (to the second).
    parsed = parse_export_diff(command.removeprefix("/pitr-diff "))
    assert parsed is not None
    table, when, keys = parsed
    assert (table, keys) == (LIVE, None)
    assert parse_when(when, "America/Los_Angeles", bot.services.clock()) == (
        req.restore_at.replace(microsecond=0)
    )

    # Typed as offered, `/pitr-diff` takes it: one incremental export from that instant.
    sim.clear()
    bot.command("/pitr-diff", command.removeprefix("/pitr-diff "))
    bot.wait_reply("U1", "Reading what changed in")
    deadline = time.monotonic() + 30
    while not sim.requests("ExportTableToPointInTime"):  # the engine starts it after the reply
        assert time.monotonic() < deadline, "no export started"
        time.sleep(0.05)
    (export,) = sim.requests("ExportTableToPointInTime")
    since = float(export["IncrementalExportSpecification"]["ExportFromTime"])
    assert since == req.restore_at.replace(microsecond=0).timestamp()


def test_no_offer_without_exports(make_bot, fake, sim):
    live_table(sim, items=5)
    bot = make_bot(policy=COPY_BACK_ON)

    bot.command("/pitr-restore", f'{LIVE} {LIVE}-before "2 hours ago"')
    bot.wait_card()
    assert "/pitr-diff" not in str(bot.cards()[0].args["blocks"])
