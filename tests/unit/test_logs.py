"""RedactSecrets: no token or secret ever reaches a log line (bot.logs)."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest

from bot.logs import RedactSecrets

BOT_TOKEN = "xoxb-1234567890-0987654321-AbCdEfGhIjKlMnOp"
APP_TOKEN = "xapp-1-A0123456789-1234567890123-abcdef0123456789"
SIGNING_SECRET = "8f14e45fceea167a5a36dedd4bea2543"


@pytest.fixture
def logged() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    handler.addFilter(RedactSecrets([SIGNING_SECRET, "", "short"]))
    logger = logging.getLogger("test_logs.redact")
    logger.handlers[:] = [handler]
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    yield logger, stream
    logger.handlers[:] = []


def assert_clean(text: str) -> None:
    for secret in (BOT_TOKEN, APP_TOKEN, SIGNING_SECRET, "xoxb-", "xapp-"):
        assert secret not in text, text


def test_configured_secret_in_the_message(logged) -> None:
    logger, stream = logged
    logger.info(f"signing secret is {SIGNING_SECRET}!")
    out = stream.getvalue()
    assert_clean(out)
    assert "signing secret is [redacted]!" in out


def test_tokens_in_the_message(logged) -> None:
    logger, stream = logged
    logger.warning(f"auth with {BOT_TOKEN} and {APP_TOKEN}")
    out = stream.getvalue()
    assert_clean(out)
    assert out.count("[redacted]") == 2


def test_unconfigured_token_shapes_are_redacted(logged) -> None:
    logger, stream = logged
    for token in ("xoxp-1-2-3-abc", "xoxa-2-abc", "xoxr-abc-123", "xoxs-1", "xoxo-9"):
        logger.info("token %s", token)
    out = stream.getvalue()
    assert "xox" not in out
    assert out.count("[redacted]") == 5


def test_secrets_in_args(logged) -> None:
    logger, stream = logged
    logger.info("headers %s / %r", {"Authorization": f"Bearer {BOT_TOKEN}"}, SIGNING_SECRET)
    out = stream.getvalue()
    assert_clean(out)
    assert "Authorization" in out


def test_secrets_in_exception_tracebacks(logged) -> None:
    logger, stream = logged
    try:
        raise RuntimeError(f"slack said no to {BOT_TOKEN} ({SIGNING_SECRET}, {APP_TOKEN})")
    except RuntimeError:
        logger.exception("call failed")
    out = stream.getvalue()
    assert_clean(out)
    assert "Traceback" in out
    assert "RuntimeError: slack said no to [redacted]" in out


def test_short_and_empty_secrets_are_ignored(logged) -> None:
    logger, stream = logged
    logger.info("a short message with nothing secret")
    assert "a short message with nothing secret" in stream.getvalue()


def test_plain_lines_are_untouched(logged) -> None:
    logger, stream = logged
    logger.info("restore %s: %d polls", "abc123", 7)
    assert stream.getvalue() == "INFO restore abc123: 7 polls\n"


def test_filter_keeps_every_record() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "msg %s", (BOT_TOKEN,), None)
    assert RedactSecrets().filter(record) is True
    assert record.getMessage() == "msg [redacted]"
    assert record.args is None


def test_bolt_notice_about_the_token_is_dropped_and_real_warnings_are_not():
    import io
    import logging
    import sys

    from bot.logs import configure_logging

    root = logging.getLogger()
    saved_handlers, saved_level, saved_stderr = root.handlers[:], root.level, sys.stderr
    stream = io.StringIO()
    sys.stderr = stream
    try:
        configure_logging("INFO", [], "text")
        bolt = logging.getLogger("slack_bolt.App")
        bolt.warning("As you gave `client` as well, `token` will be unused.")
        bolt.warning("something that matters")
    finally:
        sys.stderr = saved_stderr
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)
    assert "As you gave" not in stream.getvalue()
    assert "something that matters" in stream.getvalue()
