"""The simulated account's story: the console's policy, and `/simulate bad-deploy TABLE`.

A bad deploy deletes, changes and adds items of a simulated table, dated DEPLOY_AGE back:
DynamoDB's log then already holds it where an export can read it (an incremental export covers
at least 15 minutes, and ends about 5 minutes before now), so `/pitr-diff TABLE WHEN` can be
tried at once instead of in 15 real minutes. moto's restore copies a table's current items, so
a hook makes a restore of that table to an instant before the deploy hold the items as they
were, as AWS would: then Compare items finds what was lost, and Copy back and Undo copy back
can be tried. The export simulator (bot/console/export_sim.py) logs every write of the
console's client, the bad deploy's with its backdated time.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from bot.console.export_sim import ExportSimulator, simulate_exports
from bot.console.simulated_aws import PARAMS, Hook, remember_params
from bot.items.export_plan import parse_s3

# The console's policy when PITR_BOT_POLICY is not set: anyone but the requester approves
# (so @bob can approve what @alice asks), items may be copied back, and MusicCollection has a
# weekly restore drill reported in #incident.
DEMO_POLICY = """\
# pitr-bot console's policy (PITR_BOT_POLICY=your-file.yml to try your own)
tables: ["*"]
copy_back: true
drills:
  - tables: ["MusicCollection"]
    every: "7d"
    channel: C0INCIDENT
"""

LATEST_LAG = timedelta(minutes=5)  # the simulated window ends this far behind now
CREATING_SECONDS = 4.0  # how long a simulated restore stays CREATING
EXPORT_SECONDS = 5.0  # how long a simulated export stays IN_PROGRESS
# Where the console's exports go when PITR_BOT_EXPORT_S3 is not set (a bucket it creates).
EXPORT_S3 = "s3://pitr-bot-console-exports/pitr-bot"
# A bad deploy is dated this far back (so an export of it can run at once), and the console
# suggests an instant this far back to get back to (before the deploy, inside the window).
DEPLOY_AGE = timedelta(minutes=20)
BEFORE_DEPLOY = "30 minutes ago"


@dataclass(frozen=True)
class Deploy:
    at: datetime
    before: list[dict[str, Any]]  # every item as it was before the deploy


class BadDeploys(Hook):
    """Bad deploys done to simulated tables, and the restore hook that goes back before them."""

    def __init__(self, client: Any, exports: ExportSimulator | None = None) -> None:
        super().__init__(client)
        self.client = client
        self.exports = exports
        self._deploys: dict[str, Deploy] = {}
        self._lock = threading.Lock()
        remember_params(self)
        self._register("after-call.dynamodb.RestoreTableToPointInTime", self._after_restore)

    def run(self, table: str) -> str:
        """Delete, change and add items of `table`; -> what was done, for the person."""
        try:
            items = self._scan(table)
        except Exception:  # noqa: BLE001 - a missing table: say so, nothing changed
            return f"There is no simulated table {table!r} (try MusicCollection)."
        if len(items) < 2:
            return f"{table} has {len(items)} item(s): a bad deploy needs at least 2."
        keys = [k["AttributeName"] for k in self._key_schema(table)]
        at = datetime.now(UTC) - DEPLOY_AGE
        with self._lock:
            # A second bad deploy keeps the first one's "before": that is what was lost.
            earlier = self._deploys.get(table)
            self._deploys[table] = Deploy(
                earlier.at if earlier else at, earlier.before if earlier else items
            )
        ordered = sorted(items, key=lambda i: _key_text(i, keys))
        deleted, changed = ordered[0], ordered[1]
        field = next((a for a in changed if a not in keys), "note")
        new_value = {"S": f"{_plain(changed.get(field))} (overwritten by the deploy)"}
        added = {**{k: {"S": "bad-deploy-1"} for k in keys}, field: {"S": "written by the deploy"}}
        # The export log dates these writes `at`: as if they had been made then.
        dated = self.exports.backdated(at.timestamp()) if self.exports else nullcontext()
        with dated:
            self.client.delete_item(TableName=table, Key={k: deleted[k] for k in keys})
            self.client.put_item(TableName=table, Item={**changed, field: new_value})
            self.client.put_item(TableName=table, Item=added)
        when, age = at.strftime("%H:%M:%S UTC"), int(DEPLOY_AGE.total_seconds() // 60)
        return (
            f"💥 Simulated a bad deploy on {table}, dated {age} minutes back to {when}: deleted "
            f"{_key_text(deleted, keys)}, changed {field} of {_key_text(changed, keys)}, added "
            "bad-deploy-1.\n"
            f"Dated back so DynamoDB's log already holds it where an export can read it (an "
            f"export covers at least 15 minutes; the latest restorable time lags "
            f"{LATEST_LAG.seconds // 60} minutes behind now). Any instant before {when} still "
            "has the old items. Restore the table as it was:\n"
            f'  /pitr-restore {table} {table}-before-deploy "{BEFORE_DEPLOY}"\n'
            "or see what changed since, without a restore (an incremental export to S3):\n"
            f'  /pitr-diff {table} "{BEFORE_DEPLOY}"'
        )

    def _after_restore(self, http_response: Any, parsed: dict[str, Any], **kwargs: Any) -> None:
        desc = parsed.get("TableDescription")
        if not isinstance(desc, dict) or "TableName" not in desc:
            return  # an error answer
        params = (kwargs.get("context") or {}).get(PARAMS, {})
        source = str(params.get("SourceTableName") or "").strip()
        if not source and params.get("SourceTableArn"):
            source = str(params["SourceTableArn"]).rsplit("/", 1)[-1]
        with self._lock:
            deploy = self._deploys.get(source)
        if deploy is None:
            return
        instant = params.get("RestoreDateTime")
        if not isinstance(instant, datetime):
            instant = datetime.now(UTC) - LATEST_LAG  # UseLatestRestorableTime
        if instant.tzinfo is None:
            instant = instant.replace(tzinfo=UTC)
        if instant >= deploy.at:
            return  # after the deploy: moto's copy of the current items is right
        target = desc["TableName"]
        keys = [k["AttributeName"] for k in self._key_schema(target)]
        for item in self._scan(target):
            self.client.delete_item(TableName=target, Key={k: item[k] for k in keys})
        for item in deploy.before:
            self.client.put_item(TableName=target, Item=item)

    def _scan(self, table: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {"TableName": table}
        while True:
            page = self.client.scan(**kwargs)
            items += page.get("Items", [])
            if "LastEvaluatedKey" not in page:
                return items
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def _key_schema(self, table: str) -> list[dict[str, Any]]:
        return list(self.client.describe_table(TableName=table)["Table"]["KeySchema"])


def _plain(value: Any) -> str:
    if isinstance(value, dict) and value:
        return str(next(iter(value.values())))
    return ""


def _key_text(item: dict[str, Any], keys: list[str]) -> str:
    return "/".join(_plain(item.get(k)) for k in keys)


@contextmanager
def simulated_account(
    real: bool, export_s3: str | None = None
) -> Iterator[tuple[Any, BadDeploys | None]]:
    """(the DynamoDB client, the bad deploys it can simulate): moto's, or AWS's (then None).
    Simulated, the bucket of `export_s3` is created and exports are simulated."""
    from bot.aws import Aws, default_aws

    if real:
        yield default_aws().client("dynamodb"), None
        return
    try:
        from moto import mock_aws
    except ImportError:
        sys.exit(
            "pitr-bot console needs moto to simulate AWS: pip install 'pitr-bot[console]'"
            " (or use --aws for your real account)"
        )
    from bot.console.simulated_aws import simulate_creating, widen_window

    fake_env = {
        "AWS_ACCESS_KEY_ID": "console",
        "AWS_SECRET_ACCESS_KEY": "console",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    saved = {k: os.environ.get(k) for k in [*fake_env, "AWS_ENDPOINT_URL"]}
    os.environ.update(fake_env)
    os.environ.pop("AWS_ENDPOINT_URL", None)
    try:
        with mock_aws():
            client = Aws(region="us-east-1").client("dynamodb")
            _sample_tables(client)
            simulate_creating(client, CREATING_SECONDS)
            widen_window(client, latest_lag=LATEST_LAG)
            yield client, BadDeploys(client, _exports(client, export_s3))
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _exports(client: Any, export_s3: str | None) -> ExportSimulator:
    """Incremental exports for `client` (its writes logged from now on), into moto's S3."""
    from bot.aws import Aws

    moto = Aws(region="us-east-1")  # its own clients: what the simulator does is not logged
    exports = ExportSimulator(time.time, lambda: moto.client("dynamodb"), lambda: moto.client("s3"))
    exports.record = True
    exports.duration = EXPORT_SECONDS
    simulate_exports(client, exports)
    try:
        bucket = parse_s3(export_s3).name if export_s3 else None
    except ValueError:
        bucket = None  # check-config's message is the one to see; the export path says so
    if bucket:
        moto.client("s3").create_bucket(Bucket=bucket)
    return exports


def _sample_tables(client: Any) -> None:
    for name, pitr in (("MusicCollection", True), ("Sessions", False)):
        client.create_table(
            TableName=name,
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            BillingMode="PAY_PER_REQUEST",
        )
        if pitr:
            client.update_continuous_backups(
                TableName=name,
                PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True},
            )
    for i, (artist, song) in enumerate(
        [
            ("No One You Know", "Call Me Today"),
            ("Acme Band", "Happy Day"),
            ("Acme Band", "PartiQL Rocks"),
        ]
    ):
        client.put_item(
            TableName="MusicCollection",
            Item={"pk": {"S": f"song-{i}"}, "Artist": {"S": artist}, "SongTitle": {"S": song}},
        )
