"""What start-up needs from the environment, and start-up failures in one line each.

The AWS region, read as operators expect: boto3 reads only `AWS_DEFAULT_REGION`
(boto/boto3#3620), while the AWS CLI, the other SDKs, Lambda and ECS set `AWS_REGION`. We
honour both, once at start-up before any client exists; `AWS_REGION` wins, as in the AWS CLI.
Nothing here calls AWS.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import sqlite3
import tempfile
from collections.abc import MutableMapping
from pathlib import Path

from botocore.exceptions import (
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    PartialCredentialsError,
)

REGION_HELP = "set AWS_REGION (or AWS_DEFAULT_REGION), e.g. AWS_REGION=eu-west-1"
CREDENTIALS_HELP = (
    "set AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or give the host an IAM role"
)


def honour_aws_region(environ: MutableMapping[str, str] | None = None) -> None:
    """Make every boto3 client created later use `AWS_REGION` when it is set."""
    env = os.environ if environ is None else environ
    region = env.get("AWS_REGION", "").strip()
    if region:
        env["AWS_DEFAULT_REGION"] = region


def region_problem() -> str | None:
    from bot.aws import configured_region  # deferred: only what needs AWS pays for boto3

    if configured_region():
        return None
    return f"the AWS region is not set: {REGION_HELP}"


def explain(exc: BaseException, state: str) -> str:
    """One line saying what went wrong at start-up and what to set; never a traceback."""
    if isinstance(exc, NoRegionError):
        return f"the AWS region is not set: {REGION_HELP}"
    if isinstance(exc, NoCredentialsError | PartialCredentialsError):
        where = f" for the state store {state}" if state.startswith("dynamodb://") else ""
        return f"no AWS credentials found{where}: {CREDENTIALS_HELP}"
    if isinstance(exc, EndpointConnectionError):
        where = exc.kwargs.get("endpoint_url")
        return f"cannot reach AWS at {where}: check the network and AWS_ENDPOINT_URL"
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code, message = error.get("Code", "Error"), error.get("Message", "")
        hint = ""
        if "AccessDenied" in code or code.startswith("Unrecognized") or "Token" in code:
            hint = f" (check the credentials and docs/iam-policy.json; {CREDENTIALS_HELP})"
        return f"AWS refused {exc.operation_name} ({code}: {message}){hint}"
    if isinstance(exc, sqlite3.Error | OSError) and state.startswith("sqlite:///"):
        return (
            f"cannot open the state database {state} ({exc}): "
            "set PITR_BOT_STATE to a writable sqlite:///PATH"
        )
    return f"{type(exc).__name__}: {exc}"


# Item comparisons copy table data into the work directory; below this, the first comparison
# of a real table would fail half-way.
MIN_FREE_BYTES = 100 * 1024 * 1024
SIGNING_SECRET = re.compile(r"[0-9a-f]{32}")


def work_dir_problem(path: Path, keep: bool, derived: bool = False) -> str | None:
    """Why item jobs could not write their files in `path`, or None.

    The directory must exist or be creatable, take a file, and have room. `keep=False` (for
    check-config) removes what the probe created; `serve` keeps the directory (mode 0700: the
    files hold table data). `derived`: PITR_BOT_WORK_DIR is unset. A real write, not
    os.access: root passes every permission bit, and a path under /proc or a read-only mount
    fails only when written to.
    """
    help_ = "set PITR_BOT_WORK_DIR to a writable directory"
    if derived:  # PITR_BOT_WORK_DIR unset: the default follows the state database
        help_ += " (unset, it is pitr-bot-jobs beside the PITR_BOT_STATE database)"
    made: list[Path] = []
    try:
        for parent in reversed([path, *path.parents]):
            if not parent.exists():
                parent.mkdir(mode=0o700)
                made.append(parent)
        if not path.is_dir():
            return f"the work directory {path} is not a directory: {help_}"
        with tempfile.NamedTemporaryFile(dir=path, prefix=".pitr-bot-probe-"):
            pass
        free = shutil.disk_usage(path).free
    except OSError as exc:
        return f"cannot write in the work directory {path} ({exc.strerror or exc}): {help_}"
    finally:
        if not keep:
            for parent in reversed(made):
                with contextlib.suppress(OSError):
                    parent.rmdir()
    if free < MIN_FREE_BYTES:
        return (
            f"the work directory {path} has {free // (1024 * 1024)} MiB free, less than "
            f"{MIN_FREE_BYTES // (1024 * 1024)} MiB (item comparisons copy table data there): "
            f"free some space or {help_}"
        )
    return None


def signing_secret_problem(secret: str) -> str | None:
    """Slack's signing secrets are 32 lowercase hex characters; anything else is a paste error."""
    if not secret or SIGNING_SECRET.fullmatch(secret):
        return None
    return (
        f"SLACK_SIGNING_SECRET does not look like a Slack signing secret ({len(secret)} "
        "characters; Slack's are 32 hex digits): copy it again from the app's Basic Information"
    )
