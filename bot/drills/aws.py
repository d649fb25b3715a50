"""The DynamoDB calls of a restore drill (a sibling of bot.pitr's gateway, same wording).

Reads a drill needs (raw descriptions, tags, a sample of items) and the one destructive
call, DeleteTable, which the engine makes only after checking the table is its own.
"""

from __future__ import annotations

from typing import Any

from bot.drills.model import DRILL_TAG
from bot.pitr import NOT_FOUND, AwsError, PitrService


class DrillService(PitrService):
    @classmethod
    def from_pitr(cls, pitr: PitrService) -> DrillService:
        """The same account, region and credentials as `pitr`."""
        if pitr.aws is None:  # a ready client handed in (tests, simulators)
            service = cls(pitr.client)
        else:
            service = cls(None, aws=pitr.aws, account=pitr.account, region=pitr.asked_region)
        service.on_error = pitr.on_error
        # ... and the same roads to the policy's other accounts and regions.
        if pitr.places is not None:
            service.places = pitr.places
        return service

    def describe(self, table: str) -> dict[str, Any] | None:
        """DescribeTable's `Table`, or None when it does not exist."""
        try:
            return dict(self._call("DescribeTable", table, TableName=table)["Table"])
        except AwsError as exc:
            if exc.code in NOT_FOUND:
                return None
            raise

    def mark(self, arn: str, table: str, drill_id: str) -> None:
        """Tag the drill table as a drill's, with the drill's id (the drill tag, never the
        restores' marker)."""
        self._call(
            "TagResource", table, ResourceArn=arn, Tags=[{"Key": DRILL_TAG, "Value": drill_id}]
        )

    def marker(self, arn: str, table: str) -> str | None:
        """The value of the drill tag on a table, None if it has none."""
        kwargs: dict[str, Any] = {"ResourceArn": arn}
        while True:
            resp = self._call("ListTagsOfResource", table, **kwargs)
            for tag in resp.get("Tags", []):
                if tag.get("Key") == DRILL_TAG:
                    return str(tag.get("Value"))
            if not resp.get("NextToken"):
                return None
            kwargs["NextToken"] = resp["NextToken"]

    def sample(self, table: str, count: int) -> list[dict[str, Any]]:
        """A few items of `table` (the first page of a Scan)."""
        return list(self._call("Scan", table, TableName=table, Limit=count).get("Items", []))

    def get(self, table: str, key: dict[str, Any]) -> dict[str, Any] | None:
        resp = self._call("GetItem", table, TableName=table, Key=key, ConsistentRead=True)
        return resp.get("Item")

    def delete(self, table: str) -> bool:
        """DeleteTable; False when it was already gone."""
        try:
            self._call("DeleteTable", table, TableName=table)
        except AwsError as exc:
            if exc.code in NOT_FOUND:
                return False
            raise
        return True
