"""`pitr-bot console`: try the bot in a terminal, with no Slack and (by default) no AWS."""
