"""GDPR for messaging: erasure and export, and the keyed form an erased address keeps on the
suppression list. Other domains reach these through :mod:`leadflow.messaging.service`.

Erasure (see :mod:`leadflow.privacy` for the whole list):

- a message keeps its id, kind, status, template, journey/broadcast and times, so send statistics
  stay true; it loses to whom it went and what it said (recipient, to_address, subject, context, the
  server's answers). Messages still waiting are ``suppressed`` (``contact erased``) and never sent;
- the outbox's ``.eml`` file of each of the person's messages is removed once the erasure commits;
- a suppression of the person's address (unsubscribed, hard bounce, complaint) is kept as a keyed
  digest, ``hmac:`` + HMAC-SHA256(installation secret, address): that address is still never mailed
  (the composer looks up both forms in one query), but the address itself is gone;
- topic preferences go.

``error = 'contact erased'`` marks the person's messages: what arrives about them later (a send that
was on its way, a bounce, a complaint, an open, a click, an unsubscribe) writes nothing of them back
and emits no event; a bounce or complaint still suppresses the address, as a digest.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Connection

from leadflow.kernel.context import AppContext
from leadflow.kernel.db import on_commit
from leadflow.messaging import queries
from leadflow.messaging.delivery.transport.file import safe_name
from leadflow.messaging.erased import ERASED, suppression_key, suppression_keys

log = logging.getLogger(__name__)

PERSONAL = queries.PERSONAL


def erasure_handler(ctx: AppContext) -> Callable[[Connection, Any], None]:
    """The ``ContactsErased`` subscriber. :func:`leadflow.contacts.erasure.erase` reads the installation
    secret before its transaction begins, so reading it here never writes."""

    def on_contacts_erased(conn: Connection, message: Any) -> None:
        erase(conn, ctx, list(message.contact_ids), list(message.emails))

    return on_contacts_erased


def erase(conn: Connection, ctx: AppContext, contact_ids: Sequence[str], emails: Sequence[str]) -> None:
    """Redact the people's messages, cancel those waiting, digest their suppressions, drop their
    preferences; their outbox files go after the commit. Set-based: a handful of statements."""
    if not contact_ids:
        return
    sent_to = conn.execute(queries.recipients_of(contact_ids)).scalars()
    addresses = {a.strip().lower() for a in (*emails, *sent_to) if a}
    ids = list(conn.execute(queries.message_ids_of(contact_ids)).scalars())
    conn.execute(queries.redact_messages(contact_ids, ERASED))  # the mark (module doc)
    conn.execute(queries.suppress_waiting(contact_ids, ERASED))
    _digest_suppressions(conn, ctx.secret_key, sorted(addresses))
    conn.execute(queries.delete_preferences(contact_ids))
    if ids:
        outbox = Path(ctx.settings.email_outbox_dir)
        on_commit(conn, lambda: _remove_files(outbox, ids))


def _digest_suppressions(conn: Connection, secret: str, addresses: list[str]) -> None:
    """Each suppression of these addresses becomes its digest's. A digest already kept (the address was
    erased before) is upgraded as a new suppression would be: a hard bounce, complaint or manual block
    replaces an unsubscribe, never the other way round."""
    if not addresses:
        return
    keyed: dict[str, dict[str, Any]] = {}
    for row in conn.execute(queries.suppressions_of(conn.dialect.name, addresses)):
        key = suppression_key(secret, row.email)
        if key in keyed and row.reason == "unsubscribed":
            continue
        keyed[key] = {
            "email": key,
            "reason": row.reason,
            "detail": None,
            "message_id": row.message_id,
            "created_at": row.created_at,
        }
    if not keyed:
        return
    conn.execute(queries.digest_suppressions(conn), list(keyed.values()))
    conn.execute(queries.delete_suppressions(addresses))


def _remove_files(outbox: Path, message_ids: Sequence[str]) -> None:
    """The file transport names each message's file after its id (``FileTransport.path_for``). A file
    that cannot be removed is logged with its path (the erasure itself has committed)."""
    for message_id in message_ids:
        path = outbox / f"{safe_name(message_id)}.eml"
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:
            log.error("erasure: cannot remove %s: %s", path, exc)


def export(
    conn: Connection, secret: str, contact_ids: Sequence[str], emails: Sequence[str]
) -> dict[str, Any]:
    """The people's messages, suppressions of their addresses (also kept as digests) and preferences."""
    found = [dict(row._mapping) for row in conn.execute(queries.messages_for_export(contact_ids))]
    wanted = {a for a in emails if a} | {
        r["recipient"] for r in found if r["recipient"] and r["kind"] in PERSONAL
    }
    keys = suppression_keys(secret, sorted(wanted))
    blocked = conn.execute(queries.suppressions_of(conn.dialect.name, sorted(keys))).all()
    prefs = conn.execute(queries.preferences_for_export(contact_ids))
    return {
        "messages": found,
        "suppressions": [{**row._mapping, "email": keys[row.email]} for row in blocked],
        "email_preferences": [dict(row._mapping) for row in prefs],
    }
