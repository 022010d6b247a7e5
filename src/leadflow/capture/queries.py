"""Every statement the capture domain runs: forms and their submissions."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from leadflow.capture.models import form_submissions, forms
from leadflow.kernel.db import Sample

_f, _s = forms.c, form_submissions.c

FORM_INSERT = forms.insert()
FORM_BY_ID = sa.select(forms).where(_f.id == sa.bindparam("form_id"))
FORM_UPDATE = (
    forms.update()
    .where(_f.id == sa.bindparam("form_id"))
    .values(name=sa.bindparam("name"), definition=sa.bindparam("definition"), updated_at=sa.bindparam("at"))
)
FORM_DELETE = forms.delete().where(_f.id == sa.bindparam("form_id"))
#: A honeypot hit: nothing is stored but this count.
COUNT_SPAM = forms.update().where(_f.id == sa.bindparam("form_id")).values(spam_count=_f.spam_count + 1)

SUBMISSION_INSERT = form_submissions.insert()
SUBMISSION_BY_ID = sa.select(form_submissions).where(_s.id == sa.bindparam("submission_id"))
#: A pending double opt-in confirmed (only once: a second click finds it confirmed already).
CONFIRM = (
    form_submissions.update()
    .where(_s.id == sa.bindparam("submission_id"), _s.status == "pending")
    .values(status="confirmed", confirmed_at=sa.bindparam("at"))
)
MOVE_TO_SURVIVOR = (
    form_submissions.update()
    .where(_s.contact_id == sa.bindparam("loser"))
    .values(contact_id=sa.bindparam("survivor"))
)


def forms_page(after: str | None, limit: int) -> sa.Select[Any]:
    """Forms in id (creation) order, ``limit`` after ``after``."""
    query = sa.select(forms).order_by(_f.id).limit(limit)
    return query.where(_f.id > after) if after else query


def submissions_of(contact_ids: Sequence[str]) -> sa.Select[Any]:
    return sa.select(form_submissions).where(_s.contact_id.in_(contact_ids)).order_by(_s.id)


def delete_submissions_of(contact_ids: Sequence[str]) -> sa.Delete:
    """Erasure: a person's submissions (their consent records) go with them."""
    return form_submissions.delete().where(_s.contact_id.in_(contact_ids))


def submissions_page(form_id: str, after: str | None, limit: int) -> sa.Select[Any]:
    query = sa.select(form_submissions).where(_s.form_id == form_id).order_by(_s.id).limit(limit)
    return query.where(_s.id > after) if after else query


def submission_counts(form_ids: Sequence[str]) -> sa.Select[Any]:
    """How many submissions each of these forms has (one grouped count: the console's form list)."""
    return (
        sa.select(_s.form_id, sa.func.count().label("submissions"))
        .where(_s.form_id.in_(list(form_ids)))
        .group_by(_s.form_id)
    )


def unlinked_submissions(submission_ids: Sequence[str]) -> sa.Select[Any]:
    """Submissions a processed ``form.submitted`` names that no contact holds yet (the event processor
    links them: :mod:`leadflow.capture.processed`)."""
    return sa.select(_s.id, _s.form_id, _s.email, _s.status).where(
        _s.id.in_(list(submission_ids)), _s.contact_id.is_(None)
    )


LINK_SUBMISSION = (
    form_submissions.update()
    .where(_s.id == sa.bindparam("submission_id"), _s.contact_id.is_(None))
    .values(contact_id=sa.bindparam("linked_to"))
)


def forms_of(form_ids: Sequence[str]) -> sa.Select[Any]:
    return sa.select(forms).where(_f.id.in_(list(form_ids)))


def delete_unlinked_submissions_of(emails: Sequence[str]) -> sa.Delete:
    """Erasure: submissions of the person's address the event processor has not linked yet."""
    return form_submissions.delete().where(_s.email.in_(list(emails)), _s.contact_id.is_(None))


SAMPLES: list[Sample] = [
    lambda: forms_page("01J", 10),
    lambda: submissions_of(["c1"]),
    lambda: delete_submissions_of(["c1"]),
    lambda: submissions_page("f1", "01J", 10),
    lambda: submission_counts(["f1"]),
    lambda: unlinked_submissions(["s1"]),
    lambda: forms_of(["f1"]),
    lambda: delete_unlinked_submissions_of(["a@example.com"]),
]
