from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from support.aws_sim import AwsSimulator
from support.fake_slack import FakeSlack

from e2e.harness import BotUnderTest, start_bot
from e2e.process import Bots


@pytest.fixture
def fake() -> Iterator[FakeSlack]:
    with FakeSlack() as server:
        server.users = {
            "U1": {"name": "requester", "tz": "Europe/Berlin"},
            "U2": {"name": "approver", "tz": "America/New_York"},
            "U3": {"name": "other", "tz": "UTC"},
        }
        yield server


@pytest.fixture(scope="session")
def aws_server() -> Iterator[AwsSimulator]:
    """One moto server and proxy for the session; each test gets it reset."""
    with AwsSimulator() as aws:
        yield aws


@pytest.fixture
def sim(aws_server: AwsSimulator) -> Iterator[AwsSimulator]:
    aws_server.reset()
    aws_server.create_table("MusicCollection", pitr=True, items=5)
    aws_server.create_table("NoPitrTable", pitr=False, items=1)
    yield aws_server
    aws_server.release()  # a test that failed while holding calls must not stall the bot's exit


@pytest.fixture
def make_bot(tmp_path, fake, sim) -> Iterator[Callable[..., BotUnderTest]]:
    bots: list[BotUnderTest] = []

    def make(**kwargs) -> BotUnderTest:
        bot = start_bot(tmp_path, fake, sim, **kwargs)
        bots.append(bot)
        return bot

    yield make
    # A test that failed while holding calls must not stall the bots' shutdown.
    sim.release()
    fake.release()
    for bot in bots:
        bot.stop()


@pytest.fixture
def bot(make_bot) -> BotUnderTest:
    return make_bot()


@pytest.fixture
def bots(request, tmp_path, fake, sim) -> Iterator[Bots]:
    """`serve` processes for one test; the test module names its TOKEN and SECRET."""
    group = Bots(tmp_path, fake, sim.env, request.module.TOKEN, request.module.SECRET)
    try:
        yield group
    finally:
        group.kill_all()
