"""pitr-bot: restore DynamoDB tables to a point in time from Slack, safely."""
