"""What `/help` prints in the console: every command, the batch form and the table references.

The slash commands and their forms are the ones manifest.yml gives Slack as usage hints (a test
keeps the two saying the same).
"""

from __future__ import annotations

HELP = """\
Type what you would type in Slack (alice asks, bob approves):
  /pitr-restore SOURCE TARGET [WHEN] [reason: why]
      WHEN: latest (default), 2026-11-26T09:30Z, Unix seconds, "25 minutes ago"
      /pitr-restore MusicCollection MusicCollectionMinutesAgo latest
  /pitr-restore SOURCE1,SOURCE2 -SUFFIX [WHEN]   several tables to one instant (a batch):
      /pitr-restore MusicCollection,Sessions -before-incident "10 minutes ago"
  /pitr-restore    (no arguments) the form, as prompts; Enter keeps a default
  /pitr-status TABLE                 PITR status and the restorable window
  /pitr-enable TABLE [DAYS]          turn PITR on (recovery period 1-35 days, default 35)
  /pitr-diff RESTORED_TABLE [keys: K1,K2]   compare a restored table with its live source
  /pitr-diff LIVE_TABLE WHEN [keys: K1,K2]  items changed since WHEN (incremental export)
  /pitr-drill TABLE                  a restore drill now: restore, verify, delete, report
A TABLE is NAME, NAME@REGION (orders@eu-west-1), ALIAS:NAME (prod:orders, an account
under `accounts:` in the policy), ALIAS:NAME@REGION, or a table ARN.
The console:
  1, 2, ...        click the button with that number
  /as bob          switch person (alice asks, bob approves)
  /home            open the bot's App Home tab
  /simulate bad-deploy TABLE   delete, change and add items of a simulated table (dated
                               20 minutes back), to get back with a restore or /pitr-diff
  /wait [SECONDS]  wait until restores, drills and item jobs are done (or SECONDS)
  /help   /quit"""
