"""Logging: JSON lines (or text) with the restore id, and never a token or secret.

The restore id travels in a context variable, so every line logged while handling a restore
(by our code or a library) carries it without being passed around.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

# Slack tokens have recognisable prefixes; redact them even when we did not configure them.
TOKEN = re.compile(r"\bx(?:ox[abposr]|app)-[A-Za-z0-9-]+")

current_restore: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "current_restore", default=None
)


@contextmanager
def restore_context(restore_id: str | None) -> Iterator[None]:
    token = current_restore.set(restore_id)
    try:
        yield
    finally:
        current_restore.reset(token)


class RedactSecrets(logging.Filter):
    """Renders each record's message (and traceback) once, with secrets replaced."""

    def __init__(self, secrets: Iterable[str] = ()):
        super().__init__()
        self.secrets = [s for s in secrets if s and len(s) >= 6]

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if record.exc_info:
            # Render the traceback now, so that it is redacted too.
            message += "\n" + logging.Formatter().formatException(record.exc_info)
            record.exc_info = None
            record.exc_text = None
        clean = TOKEN.sub("[redacted]", message)
        for secret in self.secrets:
            clean = clean.replace(secret, "[redacted]")
        record.msg, record.args = clean, None
        if not hasattr(record, "restore_id"):
            record.restore_id = current_restore.get()
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        restore_id = getattr(record, "restore_id", None)
        if restore_id:
            line["restore_id"] = restore_id
        return json.dumps(line, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        restore_id = getattr(record, "restore_id", None)
        return text.replace(" :: ", f" [{restore_id}] " if restore_id else " ", 1)


class DropBoltTokenNotice(logging.Filter):
    """Bolt reads SLACK_BOT_TOKEN itself and warns that our client's copy wins; it is the same
    token, and a WARNING at every start would send people looking for a problem."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("As you gave `client` as well")


def configure_logging(level: str = "INFO", secrets: Iterable[str] = (), fmt: str = "json") -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(TextFormatter("%(asctime)s %(levelname)s %(name)s :: %(message)s"))
    handler.addFilter(DropBoltTokenNotice())
    handler.addFilter(RedactSecrets(secrets))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Quiet chatty libraries; their warnings still come through. slack_sdk logs every retry
    # of every call at INFO: with Slack down that was dozens of lines a minute, where the bot
    # itself says once per attempt that Slack is unreachable.
    for name in ("botocore", "boto3", "urllib3", "apscheduler", "waitress.queue", "slack_sdk"):
        logging.getLogger(name).setLevel(logging.WARNING)
