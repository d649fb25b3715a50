"""Compare items / Copy back reach a table where it lives: commands.items.router turns a stored
table reference into its (account, region)'s DynamoDB client and its bare name."""

from __future__ import annotations

import pytest

from bot.aws import Aws
from bot.items.engine import ItemsError
from bot.pitr import PitrService
from commands.items import item_lease, router


@pytest.fixture(autouse=True)
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")


def test_a_plain_name_stays_with_the_bots_own_client_and_a_region_gets_its_own():
    pitr = PitrService(aws=Aws(region="us-east-1"))
    route = router(pitr)
    client, name = route("orders")
    assert client is pitr.client and name == "orders"
    eu, name = route("orders-copy@eu-west-1")
    assert name == "orders-copy" and eu.meta.region_name == "eu-west-1"


def test_an_account_without_a_role_is_said_in_plain_words():
    route = router(PitrService(aws=Aws(region="us-east-1")))
    with pytest.raises(ItemsError, match="no role for account `prod`"):
        route("prod:orders")


@pytest.mark.parametrize(("poll", "seconds"), [(0.3, 6), (10, 60), (600, 300)])
def test_the_lease_follows_the_polling_within_bounds(poll, seconds):
    assert item_lease(poll).total_seconds() == seconds
