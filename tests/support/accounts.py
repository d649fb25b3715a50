"""Tables in another AWS account of the session's moto server (moto keeps accounts apart by
the account id of the assumed role's credentials)."""

from __future__ import annotations

from typing import Any

import boto3

PROD = "111111111111"


def prod_dynamodb(sim: Any, region: str = "us-east-1") -> Any:
    """A DynamoDB client in account 111111111111, straight to moto."""
    creds = boto3.client(
        "sts",
        region_name="us-east-1",
        endpoint_url=sim.moto_url,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",  # noqa: S106
    ).assume_role(RoleArn=f"arn:aws:iam::{PROD}:role/pitr-bot", RoleSessionName="e2e-setup")[
        "Credentials"
    ]
    return boto3.client(
        "dynamodb",
        region_name=region,
        endpoint_url=sim.moto_url,
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"],
    )


def make_table(client: Any, name: str, items: int = 1, pitr: bool = True) -> None:
    """An on-demand table (hash key "pk" S) with `items` items, PITR on unless told."""
    client.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    if pitr:
        client.update_continuous_backups(
            TableName=name, PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True}
        )
    for i in range(items):
        client.put_item(TableName=name, Item={"pk": {"S": "a" if i == 0 else f"a{i}"}})
