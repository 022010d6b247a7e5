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
from leadflow.webhooks.catalogue import listing as event_catalogue
from leadflow.webhooks.catalogue import type_of as type_of
from leadflow.webhooks.endpoints import create as create_endpoint
from leadflow.webhooks.endpoints import get as get_endpoint
from leadflow.webhooks.endpoints import listing as _endpoint_listing
from leadflow.webhooks.endpoints import listing as list_endpoints
from leadflow.webhooks.endpoints import replay as replay_delivery
from leadflow.webhooks.endpoints import replay_failed as replay_failed
from leadflow.webhooks.endpoints import rotate as rotate_secret
from leadflow.webhooks.endpoints import send_test as send_test
from leadflow.webhooks.endpoints import update as update_endpoint
from leadflow.webhooks.fanout import handler as fanout_handler
from leadflow.webhooks.inbound import export_inbound as export_inbound
from leadflow.webhooks.inbound import get as get_inbound
from leadflow.webhooks.inbound import listing as list_inbound
from leadflow.webhooks.inbound import on_inbound_contacts_erased as on_inbound_contacts_erased
from leadflow.webhooks.inbound import replay as replay_inbound
from leadflow.webhooks.inbound_sources import listing as inbound_sources
from leadflow.webhooks.log import get as get_delivery
from leadflow.webhooks.log import of_endpoint as endpoint_deliveries
from leadflow.webhooks.log import stats as _delivery_stats
from leadflow.webhooks.log import stats as endpoint_stats
from leadflow.webhooks.notices import notify as notify
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

# re-exported under other names, for the console's Integrations pages (leadflow.web)
__all__ = [
    "create_endpoint",
    "endpoint_deliveries",
    "endpoint_stats",
    "event_catalogue",
    "get_delivery",
    "get_endpoint",
    "get_inbound",
    "inbound_sources",
    "list_endpoints",
    "list_inbound",
    "replay_delivery",
    "replay_inbound",
    "rotate_secret",
    "update_endpoint",
]


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
