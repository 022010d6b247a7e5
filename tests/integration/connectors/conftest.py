"""A HubSpot peer on the test's virtual clock, and helpers to connect it and run the worker."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import pytest

from leadflow.connectors import service as connectors
from leadflow.connectors.worker import ConnectorWorker
from leadflow.contacts.processor import EventProcessor
from leadflow.kernel.clock import VirtualClock
from leadflow.kernel.context import AppContext
from tests.peers.hubspot import TOKEN, HubSpotPeer
from tests.support.events import send

_MESSAGES = itertools.count()


@pytest.fixture
def peer(clock: VirtualClock) -> Iterator[HubSpotPeer]:
    with HubSpotPeer(clock=clock.monotonic, now=clock.now) as running:
        yield running


@pytest.fixture
def worker(ctx: AppContext) -> Iterator[ConnectorWorker]:
    made = ConnectorWorker(ctx, rand=lambda: 0.5)  # jitter drawn at the middle: exact delays
    yield made
    made.close()


def connect(ctx: AppContext, peer: HubSpotPeer, **settings: Any) -> str:
    values = {
        "vendor": "hubspot",
        "name": "HubSpot",
        "credentials": {"access_token": TOKEN},
        "host": peer.url,
    }
    return str(connectors.create(ctx, {**values, **settings}, actor="test")["id"])


def identify(ctx: AppContext, processor: EventProcessor, user: str, **traits: Any) -> None:
    send(
        ctx,
        {
            "type": "identify",
            "userId": user,
            "traits": traits,
            "messageId": f"m-{user}-{next(_MESSAGES)}",  # id(traits) was reused: a change dropped as a repeat
        },
    )
    processor.drain()


def drain(worker: ConnectorWorker, rounds: int = 5) -> int:
    """Run passes until one claims nothing (at most ``rounds``)."""
    total = 0
    for _ in range(rounds):
        done = worker.run_once()
        total += done
        if not done:
            break
    return total
