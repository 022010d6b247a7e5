"""What other domains, the CLI and the API may use of connectors: the one module they import.

Re-exports only; nothing in :mod:`leadflow.connectors` imports it.

- *runtime*: the outbox writer on ``ContactsTouched`` (:func:`outbox_handler`), the erasure
  (:func:`erasure_handler`, on ``ContactsErased``) and merge (:func:`on_contacts_merged`) handlers, and the
  worker loop (:class:`ConnectorWorker`, channel :data:`CHANNEL`);
- *api* and *cli*: connectors CRUD (:func:`create`, :func:`get`, :func:`listing`, :func:`update`,
  :func:`delete`), :func:`test_connection`, :func:`preview`, :func:`sync_now`, :func:`backfill`,
  :func:`audit`, :func:`conflicts`, :func:`health`, :func:`dead_letters`, :func:`replay`;
- the vendor interface for new vendor modules: :mod:`leadflow.connectors.vendor` (:class:`Vendor`,
  :class:`Record`, :class:`Written`, :class:`Change`, :class:`VendorError`), registered in
  :mod:`leadflow.connectors.registry`.
"""

from __future__ import annotations

from leadflow.connectors.config import POLICIES as POLICIES
from leadflow.connectors.config import create as create
from leadflow.connectors.config import delete as delete
from leadflow.connectors.config import get as get
from leadflow.connectors.config import listing as listing
from leadflow.connectors.config import update as update
from leadflow.connectors.manage import audit as audit
from leadflow.connectors.manage import backfill as backfill
from leadflow.connectors.manage import check_alerts as check_alerts
from leadflow.connectors.manage import conflicts as conflicts
from leadflow.connectors.manage import dead_letters as dead_letters
from leadflow.connectors.manage import health as health
from leadflow.connectors.manage import health_all as health_all
from leadflow.connectors.manage import preview as preview
from leadflow.connectors.manage import replay as replay
from leadflow.connectors.manage import sync_now as sync_now
from leadflow.connectors.manage import test_connection as test_connection
from leadflow.connectors.metrics import register as register_metrics
from leadflow.connectors.outbox import CHANNEL as CHANNEL
from leadflow.connectors.outbox import erasure_handler as erasure_handler
from leadflow.connectors.outbox import handler as outbox_handler
from leadflow.connectors.outbox import on_contacts_merged as on_contacts_merged
from leadflow.connectors.outbox import suppressed_handler as suppressed_handler
from leadflow.connectors.registry import VENDORS as VENDORS
from leadflow.connectors.vendor import Vendor as Vendor
from leadflow.connectors.worker import ConnectorWorker as ConnectorWorker

__all__ = ["outbox_handler", "register_metrics"]
