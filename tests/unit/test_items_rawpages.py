"""The comparison's pages, Items decoded from the raw body: exactly what botocore gives.

Every attribute type (S N B BOOL NULL M L SS NS BS, nested), a binary sort key (so
LastEvaluatedKey holds binary and pages follow each other), Scan and Query, against moto.
"""

from __future__ import annotations

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from bot.items.rawpages import install, raw_items

REGION = "us-east-1"
TABLE = "every-type"


@pytest.fixture(autouse=True)
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.setenv(name, "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_DYNAMODB"):
        monkeypatch.delenv(name, raising=False)


def every_type(i: int) -> dict:
    return {
        "pk": {"S": f"p{i % 3}"},
        "sk": {"B": bytes([i, 0, 255, 10])},
        "s": {"S": 'text "B": with a binary-looking marker, ünïcode'},
        "n": {"N": f"{i}.50"},
        "b": {"B": b"\x00\x01binary\xff" * (i + 1)},
        "yes": {"BOOL": i % 2 == 0},
        "nothing": {"NULL": True},
        "ss": {"SS": ["a", "b", f"c{i}"]},
        "ns": {"NS": ["1", "2.5", str(i + 3)]},
        "bs": {"BS": [b"\x00", b"\xfe\xff", bytes([i + 1])]},
        "m": {
            "M": {
                "B": {"S": "a map key named B"},
                "inner_b": {"B": b"\x10\x20"},
                "deep": {"L": [{"BS": [b"x", b"y"]}, {"M": {"n": {"N": "7"}}}, {"NULL": True}]},
            }
        },
        "l": {"L": [{"S": "x"}, {"B": b"\xaa"}, {"L": [{"N": "1"}, {"BOOL": False}]}]},
    }


@pytest.fixture
def clients():
    """(plain, with the handler): two clients on the same moto, so each parses its own way."""
    with mock_aws():
        plain = boto3.client("dynamodb", region_name=REGION)
        plain.create_table(
            TableName=TABLE,
            KeySchema=[
                {"AttributeName": "pk", "KeyType": "HASH"},
                {"AttributeName": "sk", "KeyType": "RANGE"},
            ],
            AttributeDefinitions=[
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "B"},
            ],
            BillingMode="PAY_PER_REQUEST",
        )
        for i in range(12):
            plain.put_item(TableName=TABLE, Item=every_type(i))
        fast = boto3.client("dynamodb", region_name=REGION)
        install(fast)
        install(fast)  # idempotent
        bodies: list[bytes] = []
        # Registered after ours: sees the body botocore is about to parse.
        for operation in ("Scan", "Query"):
            fast.meta.events.register(
                f"before-parse.dynamodb.{operation}",
                lambda response_dict, **_: bodies.append(response_dict["body"]),
            )
        yield plain, fast, bodies


def pages(client, operation: str, **kwargs) -> list[dict]:
    out = []
    while True:
        resp = getattr(client, operation)(TableName=TABLE, Limit=3, **kwargs)
        resp.pop("ResponseMetadata")
        out.append(resp)
        if "LastEvaluatedKey" not in resp:
            return out
        kwargs["ExclusiveStartKey"] = resp["LastEvaluatedKey"]


QUERY = {
    "KeyConditionExpression": "pk = :p",
    "ExpressionAttributeValues": {":p": {"S": "p1"}},
}


@pytest.mark.parametrize(("operation", "kwargs"), [("scan", {}), ("query", QUERY)])
def test_items_are_exactly_what_botocore_gives(clients, operation, kwargs):
    plain, fast, bodies = clients
    expected = pages(plain, operation, **dict(kwargs))
    with raw_items():
        got = pages(fast, operation, **dict(kwargs))
    assert got == expected
    assert sum(len(p["Items"]) for p in got) == (12 if operation == "scan" else 4)
    assert len(got) > 1  # paged: LastEvaluatedKey (binary) went back and forth
    assert any(isinstance(i["b"]["B"], bytes) for p in got for i in p["Items"])
    # ... and botocore did not parse those Items: they were gone from the body it was given.
    assert bodies and all(b'"Items"' not in body for body in bodies)


def test_outside_raw_items_botocore_parses_as_usual(clients):
    plain, fast, bodies = clients
    assert pages(fast, "scan") == pages(plain, "scan")
    assert bodies and all(b'"Items"' in body for body in bodies)


def test_an_error_reaches_botocore_untouched(clients):
    _, fast, _ = clients
    with raw_items(), pytest.raises(ClientError) as raised:
        fast.scan(TableName="no-such-table")
    assert raised.value.response["Error"]["Code"] == "ResourceNotFoundException"
