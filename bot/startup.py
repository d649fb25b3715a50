"""What start-up needs from the environment, and start-up failures in one line each.

The AWS region, read as operators expect: boto3 reads only `AWS_DEFAULT_REGION`
(boto/boto3#3620), while the AWS CLI, the other SDKs, Lambda and ECS set `AWS_REGION`. We
honour both, once at start-up before any client exists; `AWS_REGION` wins, as in the AWS CLI.
Nothing here calls AWS.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import MutableMapping

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
