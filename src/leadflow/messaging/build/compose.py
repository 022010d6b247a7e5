"""Turning queued message rows into finished emails: who they go to, whether they may, what they say.

Decided at the moment of sending, always: the suppression list (unsubscribed, hard bounce, complaint),
the contact's subscription and topic preferences (marketing only), and the text itself (rendered from
the current template with the current profile). A message that may not or cannot go is not sent and
keeps the reason: ``suppressed`` (a rule said no) or ``failed`` (no address, a missing variable).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parseaddr
from typing import Any

from sqlalchemy.engine import Connection

from leadflow.kernel.brand import brand
from leadflow.kernel.context import AppContext
from leadflow.messaging import erased
from leadflow.messaging.build import attachments, dkim, links, mime, profiles, queries, render
from leadflow.messaging.build.outgoing import Outgoing
from leadflow.messaging.build.tokens import Tokens

UNSUBSCRIBE, PREFERENCES = "unsubscribe", "preferences"


@dataclass(frozen=True)
class Verdict:
    """What became of one message before sending: an email to send, or a status with the reason."""

    message: Any
    outgoing: Outgoing | None
    status: str | None = None  # suppressed | failed when not sending
    reason: str | None = None
    recipient: str | None = None
    subject: str | None = None


class StampClock:
    """The time tokens are stamped with: the message's creation, not the moment of sending, so that a
    message sent again after a crash is byte for byte the same."""

    def __init__(self) -> None:
        self.at = datetime.fromtimestamp(0, UTC)

    def now(self) -> datetime:
        return self.at

    def monotonic(self) -> float:
        return self.at.timestamp()

    def sleep(self, seconds: float) -> None:
        """A stamp does not move: nothing paces itself on it."""


class Composer:
    """Per deliverer: the renderer's cache, the token signer, the sender's identity, the DKIM signer."""

    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx
        self.renderer = render.Renderer()
        self.stamp = StampClock()
        self.tokens = Tokens(ctx.secret_key, self.stamp)
        settings = ctx.settings
        self.sender = parseaddr(settings.email_from)[1]
        self.domain = self.sender.rpartition("@")[2] or "localhost"
        self.base_url = settings.public_url
        self.signers = _signers(ctx)
        self.brand = brand(settings).variables()  # the same for every message (rendering never edits it)

    def message_id(self, message_id: str) -> str:
        """Stable per message: a resend after a crash carries the same ``Message-ID``, which receivers
        use to drop the duplicate."""
        return f"{message_id}@{self.domain}"

    def unsubscribe_url(self, message: Any) -> str:
        return f"{self.base_url}/u/{self.tokens.sign(UNSUBSCRIBE, [message.id])}"

    def preferences_url(self, message: Any) -> str:
        return f"{self.base_url}/p/{self.tokens.sign(PREFERENCES, [message.id])}"

    def compose(self, conn: Connection, batch: Sequence[Any], now: datetime) -> list[Verdict]:
        facts = Facts.load(conn, self.ctx, batch)
        return [self._one(message, facts, now) for message in batch]

    def _one(self, message: Any, facts: Facts, now: datetime) -> Verdict:
        self.stamp.at = message.created_at
        contact = facts.contacts.get(message.contact_id) if message.contact_id else None
        recipient = message.to_address or (contact.email if contact is not None else None)
        if not recipient:
            return Verdict(message, None, "failed", "no email address")
        refused = facts.refusal(message, contact, recipient)
        if refused:
            return Verdict(message, None, "suppressed", refused, recipient)
        source = facts.renderable(message.template_id)
        if source is None:
            return Verdict(message, None, "failed", "the email template no longer exists", recipient)
        template, layout = source
        unsubscribe, preferences = self.unsubscribe_url(message), self.preferences_url(message)
        variables = self.variables(message, contact, facts, unsubscribe, preferences)
        try:
            rendered = self.renderer.render(template, variables, layout)
        except render.MissingVariable as exc:
            return Verdict(message, None, "failed", f"missing variable {exc.name} ({exc})", recipient)
        except render.TemplateError as exc:
            return Verdict(message, None, "failed", f"template: {exc}", recipient)
        html = rendered.html
        if message.kind != "internal":
            html = links.track(
                html,
                message_id=message.id,
                base_url=self.base_url,
                tokens=self.tokens,
                skip=(unsubscribe, preferences),
            )
        try:
            parts = attachments.parts_of(message.context)
        except ValueError as exc:
            return Verdict(message, None, "failed", f"attachments: {exc}", recipient)
        data = mime.build(
            from_addr=self.ctx.settings.email_from,
            to_addr=recipient,
            subject=rendered.subject,
            html=html,
            text=rendered.text,
            message_id=self.message_id(message.id),
            date=message.created_at,
            headers=self.headers(message, unsubscribe),
            parts=parts,
        )
        for signer in self.signers:
            data = signer.sign(data)
        outgoing = Outgoing(sender=self.sender, recipient=recipient, data=data, message_id=message.id)
        return Verdict(message, outgoing, recipient=recipient, subject=rendered.subject)

    def headers(self, message: Any, unsubscribe: str) -> list[tuple[str, str]]:
        """RFC 8058 one-click unsubscribe on every marketing message: one HTTPS (here: our public) URI
        and a mailto, plus ``List-Unsubscribe-Post``; both are covered by the DKIM signature."""
        found: list[tuple[str, str]] = []
        if self.ctx.settings.email_reply_to:
            found.append(("Reply-To", self.ctx.settings.email_reply_to))
        if message.kind == "marketing":
            mailto = f"mailto:unsubscribe@{self.domain}?subject=unsubscribe-{message.id}"
            found.append(("List-Unsubscribe", f"<{unsubscribe}>, <{mailto}>"))
            found.append(("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"))
        found.append(("X-Leadflow-Message", message.id))
        return found

    def variables(
        self, message: Any, contact: Any, facts: Facts, unsubscribe: str, preferences: str
    ) -> dict[str, Any]:
        context = message.context or {}
        person = profiles.person(contact, facts.scores.get(contact.id) if contact is not None else None)
        company = (
            facts.companies.get(contact.company_id) if contact is not None and contact.company_id else None
        )
        found = {
            "contact": person,
            "company": profiles.company(company),
            "event": context.get("event") or {},
            "vars": context.get("vars") or {},
            "journey": context.get("journey") or {},
            "brand": self.brand,
            "links": {"unsubscribe": unsubscribe, "preferences": preferences},
            "message": {"id": message.id},
        }
        if message.kind == "internal":
            owner = context.get("owner") or {}  # the CRM user a journey's notify_owner step wrote to
            found["owner"] = {"email": message.to_address, "name": owner.get("name") or message.to_address}
        return found


def _source(row: Any) -> render.Source:
    return render.Source(
        key=row.key, revision=row.revision, subject=row.subject, html=row.html, text=row.text
    )


def _layout(row: Any) -> render.Layout | None:
    if row is None:
        return None
    return render.Layout(key=row.key, revision=row.revision, html=row.html, text=row.text)


@dataclass
class Facts:
    """Everything a batch of messages needs, each loaded in one query."""

    contacts: dict[str, Any]
    companies: dict[str, Any]
    scores: dict[str, Any]
    templates: dict[str, tuple[Any, Any]]
    suppressed: dict[str, str]
    opted_out: set[tuple[str, str]]
    topic_defaults: dict[str, bool]
    _renderable: dict[str, tuple[render.Source, render.Layout | None]] = field(default_factory=dict)

    @classmethod
    def load(cls, conn: Connection, ctx: AppContext, batch: Sequence[Any]) -> Facts:
        ids = sorted({m.contact_id for m in batch if m.contact_id})
        found = profiles.load(conn, ids)
        people = found.contacts
        addresses = sorted(
            {(m.to_address or getattr(people.get(m.contact_id), "email", None) or "").lower() for m in batch}
            - {""}
        )
        blocked = _blocked(conn, ctx.secret_key, addresses)
        choices = queries.preferences(conn, ids)
        prefs = {(r.contact_id, r.topic) for r in choices if not r.subscribed}
        opted_in = {(r.contact_id, r.topic) for r in choices if r.subscribed}
        topics = queries.topic_defaults(conn)
        for contact_id in ids:
            for topic, default in topics.items():
                if not default and (contact_id, topic) not in opted_in:
                    prefs.add((contact_id, topic))
        sources = queries.sources(conn, [m.template_id for m in batch])
        return cls(people, found.companies, found.scores, sources, blocked, prefs, topics)

    def renderable(self, template_id: str) -> tuple[render.Source, render.Layout | None] | None:
        """The template (and its layout) as the renderer takes them, made once per batch."""
        found = self._renderable.get(template_id)
        if found is None:
            rows = self.templates.get(template_id)
            if rows is None:
                return None
            found = self._renderable[template_id] = (_source(rows[0]), _layout(rows[1]))
        return found

    def refusal(self, message: Any, contact: Any, recipient: str) -> str | None:
        """Why this message must not go, or None. Hard bounces and complaints block every kind of
        mail; unsubscribes and topic opt-outs block marketing only."""
        reason = self.suppressed.get(recipient.lower())
        if reason in ("hard_bounce", "complaint", "manual"):
            return reason
        if message.kind != "marketing":
            return None
        if reason in ("unsubscribed", "unconfirmed"):  # unconfirmed: a double opt-in not confirmed yet
            return reason
        if contact is not None and contact.subscription_status != "subscribed":
            return f"contact {contact.subscription_status}"
        if message.topic and contact is not None and (contact.id, message.topic) in self.opted_out:
            return f"unsubscribed from {message.topic}"
        return None


def _blocked(conn: Connection, secret: str, addresses: Sequence[str]) -> dict[str, str]:
    """Suppressed addresses and why, in one query: an address is listed as itself or, once its
    person was erased, as its keyed digest. A block on every kind of mail outweighs an unsubscribe."""
    keys = erased.suppression_keys(secret, addresses)
    blocked: dict[str, str] = {}
    for row in queries.suppressed(conn, sorted(keys)):
        address = keys[row.email]
        if blocked.get(address) in (None, "unsubscribed"):
            blocked[address] = row.reason
    return blocked


def _signers(ctx: AppContext) -> list[Any]:
    """One DKIM signer per configured key (each adds its own ``DKIM-Signature``; none covers another)."""
    return [
        dkim.DkimSigner(
            selector=selector,
            domain=domain,
            private_key_pem=key,
            canonicalization=ctx.settings.dkim_canonicalization,
            clock=ctx.clock,
        )
        for selector, domain, key in dkim.configured(ctx.settings)
    ]
