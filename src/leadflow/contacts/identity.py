"""Identity resolution: which contact an event belongs to, and when two profiles are one person."""

from __future__ import annotations

from leadflow.contacts.batch import ProfileBatch
from leadflow.contacts.state import ContactState


def _claimable(contact: ContactState | None, user_id: str) -> ContactState | None:
    """A contact a user id may attach to: one with no user id yet, or that same one."""
    if contact is not None and contact.user_id in (None, user_id):
        return contact
    return None


def resolve(
    batch: ProfileBatch, *, user_id: str | None, anonymous_id: str | None, email: str | None
) -> ContactState:
    """Find or create the contact for an event, merging the profiles it proves to be one person.

    - A known ``userId`` decides. An unknown one attaches to the contact holding the event's email, else
      to the anonymous profile of its ``anonymousId`` (when those have no other user id), else to a new
      contact.
    - The anonymous profile of ``anonymousId`` and a profile holding the event's email are merged into
      that contact when they have no user id of their own, so anonymous history joins the known person.
      One carrying a *different* user id is another person on a shared device: left alone.
    - Without a ``userId``, the ``anonymousId`` decides; an email held by an existing contact pulls an
      anonymous profile into it.
    """
    by_anon = batch.find("anon", anonymous_id)
    by_email = batch.find_email(email)
    if user_id:
        target = _known(batch, user_id, by_anon, by_email)
    else:
        target = _anonymous(batch, by_anon, by_email)
    if anonymous_id and by_anon is None:
        batch.link(target, "anon", anonymous_id)
    return target


def _known(
    batch: ProfileBatch, user_id: str, by_anon: ContactState | None, by_email: ContactState | None
) -> ContactState:
    by_user = batch.find("user", user_id)
    target = by_user or _claimable(by_email, user_id) or _claimable(by_anon, user_id) or batch.create()
    batch.link(target, "user", user_id)
    for other in (by_anon, by_email):
        current = batch.contact(other.id) if other is not None else None
        if current is not None and current.id != target.id and current.user_id is None:
            batch.merge(current, target)
    return target


def _anonymous(
    batch: ProfileBatch, by_anon: ContactState | None, by_email: ContactState | None
) -> ContactState:
    if by_email is None:
        return by_anon or batch.create()
    if by_anon is None:
        return by_email
    if by_anon.id != by_email.id and by_anon.user_id is None:
        batch.merge(by_anon, by_email)
        return by_email
    return by_anon


def alias(batch: ProfileBatch, *, previous_id: str, user_id: str) -> ContactState:
    """``alias(previousId → userId)``: both ids are one person, now known as ``userId``.

    ``previousId`` may be an earlier user id or an anonymous id. If both name existing contacts they
    are merged into ``userId``'s contact; if only the previous one exists it takes ``userId`` as its
    user id; either way every later event with either id lands on the same contact.
    """
    current = batch.find("user", user_id)
    previous = batch.find("user", previous_id) or batch.find("anon", previous_id)
    if current is None:
        current = previous or batch.create()
        batch.link(current, "user", user_id, primary=True)
    elif previous is not None and previous.id != current.id:
        batch.merge(previous, current)
    for kind in ("user", "anon"):
        batch.link(current, kind, previous_id)
    return current
