"""Double opt-in: an address waiting for its owner's confirmation gets no marketing email.

The block is a suppression with the reason ``unconfirmed``, keyed by the address like every other, so
the composer decides it in the query it already runs for each batch, whatever a profile change, a merge
or an ``identify`` later says about the contact. It blocks marketing only: the confirmation email itself
(transactional) goes. Rules:

* **Holding** adds the entry unless the address is suppressed already (any other entry blocks marketing
  anyway and is kept as it is).
* **Releasing** (the person confirmed) removes the ``unconfirmed`` entry and an ``unsubscribed`` one: a
  confirmed opt-in is a new, proven subscription. A hard bounce, complaint or manual block stays.
* An erased person's pending block becomes a digest like any suppression (:mod:`.erasure`), so a later
  sign-up of the same address waits for its own confirmation.
"""

from __future__ import annotations

from sqlalchemy.engine import Connection

from leadflow.kernel.context import AppContext
from leadflow.kernel.db import insert_new
from leadflow.messaging import queries
from leadflow.messaging.erased import suppression_keys
from leadflow.messaging.models import suppressions

UNCONFIRMED = "unconfirmed"
LIFTED_BY_CONFIRMATION = (UNCONFIRMED, "unsubscribed")


def hold_for_confirmation(conn: Connection, ctx: AppContext, address: str) -> bool:
    """Block marketing to ``address`` until it is confirmed; whether a new entry was written."""
    row = {
        "email": address.strip().lower(),
        "reason": UNCONFIRMED,
        "detail": "waiting for the double opt-in confirmation",
        "message_id": None,
        "created_at": ctx.clock.now(),
    }
    return bool(insert_new(conn, suppressions, [row], conflict=["email"], returning="email"))


def release_confirmation(conn: Connection, ctx: AppContext, address: str) -> int:
    """The owner confirmed ``address``: lift its pending (and unsubscribed) block; how many went."""
    keys = sorted(suppression_keys(ctx.secret_key, [address.strip().lower()]))
    lifted = [
        r.email for r in conn.execute(queries.suppressions_under(keys)) if r.reason in LIFTED_BY_CONFIRMATION
    ]
    if lifted:
        conn.execute(queries.delete_suppressions(lifted))
    return len(lifted)


def held_for_confirmation(conn: Connection, ctx: AppContext, address: str) -> bool:
    """Whether ``address`` waits for its double opt-in confirmation."""
    keys = sorted(suppression_keys(ctx.secret_key, [address.strip().lower()]))
    return any(r.reason == UNCONFIRMED for r in conn.execute(queries.suppressions_under(keys)))
