"""What every email transport speaks: a batch of envelopes in, one outcome per envelope out.

A transport never raises for a delivery problem: each message gets an :class:`Outcome`, in the order
the messages were given, and the deliverer decides what to do with it (retry a deferral later, mark
a bounce).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from leadflow.messaging.build.outgoing import Outgoing as Outgoing

OutcomeStatus = Literal["sent", "deferred", "bounced"]


@dataclass(frozen=True)
class Outcome:
    """What became of one message.

    ``bounced``: the server refused it permanently (5xx) for that recipient; do not retry.
    ``deferred``: a temporary refusal (4xx) or a connection/configuration problem; retry later.
    """

    status: OutcomeStatus
    code: int | None  # the SMTP reply code when the server gave one
    response: str  # the server's answer, or the reason when there was none


class EmailTransport(Protocol):
    description: str
    """Human text for start-up logs, e.g. ``SMTP smtp://host:25 (pool 4)``; never a password."""

    def send_many(self, messages: Sequence[Outgoing]) -> list[Outcome]:
        """Deliver ``messages``; the outcomes are aligned 1:1 with the input order."""
        ...

    def close(self) -> None:
        """Release connections and threads; the transport is not used afterwards."""
        ...
