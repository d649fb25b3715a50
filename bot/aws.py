"""The one door to AWS: every boto3 client the bot uses is made here.

`Aws` keeps one boto3 Session per (account alias, region) and one client per service on it.
The default account uses the standard credential chain (environment, profile, instance or
task role); another account is reached through an assumed role whose temporary credentials
refresh themselves before they expire (`Aws(roles={"prod": AssumedRole(arn)})`). The region
is the one asked for, else AWS_REGION, else AWS_DEFAULT_REGION (boto3 itself reads only the
latter), else the profile's.

The gateways (`bot.pitr.PitrService` and its sibling `bot.aftercare.aws.AftercareService`) turn
what AWS says into messages; this module only knows how to open the door.
"""

from __future__ import annotations

import functools
import os
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import boto3
import botocore.session
from botocore.config import Config
from botocore.credentials import CredentialProvider, DeferredRefreshableCredentials

# Adaptive mode backs off on throttling client-side; the tracker retries across ticks anyway.
BOTO_CONFIG = Config(
    retries={"mode": "adaptive", "max_attempts": 6}, connect_timeout=5, read_timeout=20
)
# For calls whose answer is only reported (never acted on): one try is enough.
ONE_TRY = Config(retries={"total_max_attempts": 1}, connect_timeout=5, read_timeout=10)

DEFAULT_ACCOUNT = "default"


def default_region() -> str | None:
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or None


def configured_region() -> str | None:
    """The region clients will use: the environment, else the profile (~/.aws/config)."""
    return default_region() or boto3.session.Session().region_name or None


@dataclass(frozen=True)
class AssumedRole:
    """How to reach another account: a role the default identity may assume."""

    role_arn: str
    external_id: str | None = None
    session_name: str = "pitr-bot"


class UnknownAccount(KeyError):
    """An account alias with no role to reach it."""


class Aws:
    """One client factory per (account alias, region)."""

    def __init__(
        self,
        roles: Mapping[str, AssumedRole] | None = None,
        region: str | None = None,
        endpoint_url: str | None = None,
        keys: Mapping[str, str] | None = None,
    ):
        self.roles = dict(roles or {})
        # Explicit keys of the default account (a client handed in with keys); else the chain.
        self.keys = dict(keys or {})
        self.region = region or default_region()
        # A simulator's endpoint (tests, the console) for every service; None = AWS's own.
        self.endpoint_url = endpoint_url
        self._sessions: dict[tuple[str, str | None], boto3.Session] = {}
        self._clients: dict[tuple[str, str, str | None, int], tuple[Config, Any]] = {}
        self._lock = threading.RLock()  # boto3 Sessions are not thread-safe; clients are
        self._one_off: boto3.Session | None = None  # see attributed_client

    def client(
        self,
        service: str,
        account: str = DEFAULT_ACCOUNT,
        region: str | None = None,
        config: Config = BOTO_CONFIG,
    ) -> Any:
        region = region or self.region
        key = (service, account, region, id(config))
        with self._lock:
            if key not in self._clients:
                client = self.session(account, region).client(
                    service, config=config, endpoint_url=self.endpoint_url
                )
                # The config is kept with its client, so its id() can't be reused meanwhile.
                self._clients[key] = (config, client)
            return self._clients[key][1]

    def session(self, account: str = DEFAULT_ACCOUNT, region: str | None = None) -> boto3.Session:
        region = region or self.region
        with self._lock:
            if (account, region) not in self._sessions:
                self._sessions[(account, region)] = self._new_session(account, region)
            return self._sessions[(account, region)]

    def _new_session(self, account: str, region: str | None) -> boto3.Session:
        if account == DEFAULT_ACCOUNT:
            return boto3.Session(region_name=region, **self.keys)
        if account not in self.roles:
            raise UnknownAccount(account)
        role = self.roles[account]
        sts = self.client("sts", DEFAULT_ACCOUNT, region)
        core = botocore.session.Session()
        # The assumed role comes first in this session's chain; it refreshes itself.
        resolver = core.get_component("credential_provider")
        resolver.insert_before("env", _RoleProvider(functools.partial(_assume, sts, role)))
        return boto3.Session(botocore_session=core, region_name=region)

    def attributed_client(
        self,
        service: str,
        account: str,
        region: str | None,
        session_name: str,
        source_identity: str | None,
    ) -> Any:
        """A one-off client under a fresh session of `account`'s role, named `session_name`
        and carrying `source_identity`, so the account's CloudTrail shows who did what.

        Not cached: one role session per act (a restore), never shared with reads. The
        client carries that session's credentials itself; what it shares with the other
        one-off clients is only botocore's parsed service models and endpoint data (a fresh
        boto3.Session per act parsed them again: 40 % of the bot's CPU while 500 restores
        were approved at once, profiled with py-spy).
        """
        if account not in self.roles:
            raise UnknownAccount(account)
        region = region or self.region
        role = replace(self.roles[account], session_name=session_name)
        sts = self.client("sts", DEFAULT_ACCOUNT, region)
        creds = _assume(sts, role, source_identity)
        with self._lock:
            if self._one_off is None:
                self._one_off = boto3.Session()
            return self._one_off.client(
                service,
                region_name=region,
                aws_access_key_id=creds["access_key"],
                aws_secret_access_key=creds["secret_key"],
                aws_session_token=creds["token"],
                config=BOTO_CONFIG,
                endpoint_url=self.endpoint_url,
            )


def session_name_for(restore_id: str) -> str:
    """An STS RoleSessionName (2 to 64 letters, digits or _+=,.@-) naming the restore."""
    return _sts_text(f"pitr-bot-{restore_id}")


def source_identity_for(user: str | None) -> str | None:
    """An STS SourceIdentity (2 to 64 letters, digits or _+=,.@-) for a Slack user ID, or None."""
    return _sts_text(user) if user and len(user) >= 2 else None


def _sts_text(text: str) -> str:
    return re.sub(r"[^\w+=,.@-]", "-", text)[:64]


@functools.cache
def default_aws() -> Aws:
    """The process's factory (the default account and region), shared by every gateway."""
    return Aws()


class _RoleProvider(CredentialProvider):
    METHOD = "assume-role"
    CANONICAL_NAME = "pitr-bot-assume-role"

    def __init__(self, fetch: Callable[[], dict[str, str]]):
        super().__init__()
        self._fetch = fetch

    def load(self) -> DeferredRefreshableCredentials:
        return DeferredRefreshableCredentials(refresh_using=self._fetch, method=self.METHOD)


def _assume(sts: Any, role: AssumedRole, source_identity: str | None = None) -> dict[str, str]:
    kwargs: dict[str, Any] = {"RoleArn": role.role_arn, "RoleSessionName": role.session_name}
    if role.external_id:
        kwargs["ExternalId"] = role.external_id
    if source_identity:
        kwargs["SourceIdentity"] = source_identity
    creds = sts.assume_role(**kwargs)["Credentials"]
    return {
        "access_key": creds["AccessKeyId"],
        "secret_key": creds["SecretAccessKey"],
        "token": creds["SessionToken"],
        "expiry_time": creds["Expiration"].isoformat(),
    }


def custom_endpoint(client: Any) -> str | None:
    """A ready client's endpoint when it is not AWS's own (AWS_ENDPOINT_URL, a simulator)."""
    endpoint = str(client.meta.endpoint_url or "")
    if endpoint and ".amazonaws.com" not in endpoint and ".amazonaws.com.cn" not in endpoint:
        return endpoint
    return None


def explicit_keys(client: Any) -> dict[str, str]:
    """Keys handed to a ready client directly (not from the credential chain, which refreshes
    itself and is left to itself), as boto3.Session arguments."""
    get_credentials = getattr(client, "_get_credentials", None)
    creds = get_credentials() if callable(get_credentials) else None
    if creds is None or getattr(creds, "method", "") != "explicit":
        return {}
    frozen = creds.get_frozen_credentials()
    keys = {"aws_access_key_id": frozen.access_key, "aws_secret_access_key": frozen.secret_key}
    if frozen.token:
        keys["aws_session_token"] = frozen.token
    return keys


def sibling(client: Any, service: str, config: Config = BOTO_CONFIG) -> Any:
    """A client for `service` with a ready client's region and credentials.

    For a client handed in from outside the factory (a test's, a simulator's). A custom
    endpoint (AWS_ENDPOINT_URL, a simulator) is reused; AWS's own is not, since each service
    has its own host.
    """
    kwargs: dict[str, Any] = {"region_name": client.meta.region_name, "config": config}
    endpoint = str(client.meta.endpoint_url or "")
    if endpoint and ".amazonaws.com" not in endpoint and ".amazonaws.com.cn" not in endpoint:
        kwargs["endpoint_url"] = endpoint
    get_credentials = getattr(client, "_get_credentials", None)
    creds = get_credentials() if callable(get_credentials) else None
    # Keys handed to the client directly are copied. Anything from the credential chain
    # (environment, profile, instance or task role) is left to the chain, which refreshes
    # temporary credentials; a frozen copy would stop working when they rotate.
    if creds is not None and getattr(creds, "method", "") == "explicit":
        frozen = creds.get_frozen_credentials()
        kwargs.update(
            aws_access_key_id=frozen.access_key,
            aws_secret_access_key=frozen.secret_key,
            aws_session_token=frozen.token,
        )
    return boto3.client(service, **kwargs)
