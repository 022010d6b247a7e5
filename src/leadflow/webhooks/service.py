"""What other domains, the CLI and the API may use of webhooks: the one module they import.

Re-exports only; nothing in :mod:`leadflow.webhooks` imports it.

- *journeys* queue outgoing webhooks in their transaction (:func:`enqueue_many`);
- receivers verify signatures with :func:`signing_secret` (``leadflow webhooks secret``);
- the operator's view: the deliveries log (:func:`listing`, :func:`get`) and sending a failed delivery
  again (:func:`retry`);
- *privacy*: GDPR erasure (:func:`on_contacts_erased`) and export (:func:`export`);
- *messaging*: incoming provider webhooks refuse a signature replayed with other content
  (:class:`Seal`, :func:`digest`, :func:`remember`);
- *runtime*: the fan-out of pipeline events to registered endpoints (:func:`fanout`, on
  ``ContactsTouched``); the catalogue (:data:`SUBSCRIBABLE`, :func:`type_of`) for whoever emits events.
- *runtime*: incoming webhooks lose the erased person's data (:func:`on_inbound_contacts_erased`).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from sqlalchemy.engine import Connection

from leadflow.kernel.context import AppContext
from leadflow.kernel.facts import ContactsTouched
from leadflow.webhooks.catalogue import SUBSCRIBABLE as SUBSCRIBABLE
from leadflow.webhooks.catalogue import type_of as type_of
from leadflow.webhooks.endpoints import listing as _endpoint_listing
from leadflow.webhooks.fanout import handler as fanout_handler
from leadflow.webhooks.inbound import export_inbound as export_inbound
from leadflow.webhooks.inbound import on_inbound_contacts_erased as on_inbound_contacts_erased
from leadflow.webhooks.log import stats as _delivery_stats
from leadflow.webhooks.outbox import CANCELLED as CANCELLED
from leadflow.webhooks.outbox import CHANNEL as CHANNEL
from leadflow.webhooks.outbox import DELIVERED as DELIVERED
from leadflow.webhooks.outbox import FAILED as FAILED
from leadflow.webhooks.outbox import QUEUED as QUEUED
from leadflow.webhooks.outbox import STATUSES as STATUSES
from leadflow.webhooks.outbox import enqueue_many as enqueue_many
from leadflow.webhooks.outbox import export as export
from leadflow.webhooks.outbox import get as get
from leadflow.webhooks.outbox import listing as listing
from leadflow.webhooks.outbox import on_contacts_erased as on_contacts_erased
from leadflow.webhooks.outbox import on_contacts_merged as on_contacts_merged
from leadflow.webhooks.outbox import retry as retry
from leadflow.webhooks.outbox import signing_secret as signing_secret
from leadflow.webhooks.replay import Seal as Seal
from leadflow.webhooks.replay import digest as digest
from leadflow.webhooks.replay import remember as remember


def fanout(ctx: AppContext) -> Callable[[Connection, ContactsTouched], None]:
    """The bus subscriber turning the pipeline's events into deliveries to registered endpoints."""
    return fanout_handler(ctx)


def health(ctx: AppContext, window: timedelta, *, limit: int = 200) -> list[dict[str, Any]]:
    """Each endpoint's deliveries over ``window`` (counts, success rate, latency): read by analytics."""
    return [
        {
            "url": endpoint["url"],
            "active": endpoint["active"],
            **_delivery_stats(ctx, endpoint["id"], window=window),
        }
        for endpoint in _endpoint_listing(ctx, after=None, limit=limit)
    ]
