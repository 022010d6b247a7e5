"""What other domains and the composition root may do with messaging: the one module they import.

Re-exports and thin functions; nothing in :mod:`leadflow.messaging` imports it (it sits above every
other module of the package).

- *contacts* show each contact's topic preferences (:func:`preferences_column`) and messages;
- *privacy* erases and exports a person's messaging data (:func:`erasure_handler`, :func:`export`);
- *connectors* read which addresses are suppressed (:func:`suppressed`);
- *journeys* render a webhook's Liquid data with an email's variables (:func:`compile_data`,
  :func:`check_data`, :func:`people`), queue email (:func:`enqueue_many`, :func:`over_cap`,
  :func:`template_ids`), install ready-made templates (:func:`save_layout`, :func:`save_topic`,
  :func:`create_template`), and simulate a journey with a deliverer that captures what it would send
  (:class:`Deliverer`, :class:`CaptureTransport`, :func:`copy_configuration`, :func:`next_due`,
  :func:`all_messages`);
- the *console* (web) lists and edits templates and layouts, previews a template for a contact
  (:func:`preview`), sends a test (:func:`send_test`), lists broadcasts and who engaged (:func:`engaged`).
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib import resources

import yaml
from sqlalchemy.engine import Connection

from leadflow.messaging import erased, queries
from leadflow.messaging.build.attachments import attachment as attachment
from leadflow.messaging.build.liquid_data import check as check_data
from leadflow.messaging.build.liquid_data import compile_data as compile_data
from leadflow.messaging.build.liquid_data import people as people
from leadflow.messaging.build.render import TemplateError as TemplateError
from leadflow.messaging.build.tokens import BadToken as BadToken
from leadflow.messaging.build.tokens import Tokens as Tokens
from leadflow.messaging.confirmation import UNCONFIRMED as UNCONFIRMED
from leadflow.messaging.confirmation import held_for_confirmation as held_for_confirmation
from leadflow.messaging.confirmation import hold_for_confirmation as hold_for_confirmation
from leadflow.messaging.confirmation import release_confirmation as release_confirmation
from leadflow.messaging.contact_view import ContactMessage as ContactMessage
from leadflow.messaging.contact_view import messages_of as messages_of
from leadflow.messaging.delivery.broadcasts import Broadcast as Broadcast
from leadflow.messaging.delivery.broadcasts import get as get_broadcast
from leadflow.messaging.delivery.broadcasts import listing as broadcasts
from leadflow.messaging.delivery.deliverer import Deliverer as Deliverer
from leadflow.messaging.delivery.outbox import MissingTemplate as MissingTemplate
from leadflow.messaging.delivery.outbox import enqueue_many as enqueue_many
from leadflow.messaging.delivery.outbox import over_cap as over_cap
from leadflow.messaging.delivery.outbox import template_ids as template_ids
from leadflow.messaging.delivery.transport.capture import CaptureTransport as CaptureTransport
from leadflow.messaging.erased import suppression_key as suppression_key
from leadflow.messaging.erased import suppression_keys as suppression_keys
from leadflow.messaging.erasure import erasure_handler as erasure_handler
from leadflow.messaging.erasure import export as export
from leadflow.messaging.preview import Engaged as Engaged
from leadflow.messaging.preview import Preview as Preview
from leadflow.messaging.preview import contact_of as contact_of
from leadflow.messaging.preview import engaged as engaged
from leadflow.messaging.preview import preview as preview
from leadflow.messaging.preview import send_test as send_test
from leadflow.messaging.queries import all_messages as all_messages
from leadflow.messaging.queries import next_due as next_due
from leadflow.messaging.queries import preferences_column as preferences_column
from leadflow.messaging.templates import Layout as Layout
from leadflow.messaging.templates import LayoutFields as LayoutFields
from leadflow.messaging.templates import Template as Template
from leadflow.messaging.templates import TemplateCreate as TemplateCreate
from leadflow.messaging.templates import TemplateFields as TemplateFields
from leadflow.messaging.templates import Topic as Topic
from leadflow.messaging.templates import create as create_template
from leadflow.messaging.templates import get as get_template
from leadflow.messaging.templates import get_layout as get_layout
from leadflow.messaging.templates import layouts as layouts
from leadflow.messaging.templates import listing as templates
from leadflow.messaging.templates import save_layout as save_layout
from leadflow.messaging.templates import save_layout_as as save_layout_as
from leadflow.messaging.templates import save_topic as save_topic
from leadflow.messaging.templates import topics as topics
from leadflow.messaging.templates import update as update_template

__all__ = [
    "UNCONFIRMED",
    "BadToken",
    "Broadcast",
    "CaptureTransport",
    "ContactMessage",
    "Deliverer",
    "Engaged",
    "Layout",
    "LayoutFields",
    "MissingTemplate",
    "Preview",
    "Template",
    "TemplateCreate",
    "TemplateError",
    "TemplateFields",
    "Tokens",
    "Topic",
    "all_messages",
    "attachment",
    "broadcasts",
    "check_data",
    "compile_data",
    "contact_of",
    "copy_configuration",
    "create_template",
    "default_layout",
    "engaged",
    "enqueue_many",
    "erasure_handler",
    "export",
    "get_broadcast",
    "get_layout",
    "get_template",
    "held_for_confirmation",
    "hold_for_confirmation",
    "layouts",
    "messages_of",
    "next_due",
    "over_cap",
    "people",
    "preferences_column",
    "preview",
    "release_confirmation",
    "save_layout",
    "save_layout_as",
    "save_topic",
    "send_test",
    "suppressed",
    "suppression_key",
    "suppression_keys",
    "template_ids",
    "templates",
    "topics",
    "update_template",
]


def copy_configuration(
    source: Connection, target: Connection, secret: str, emails: Sequence[str] = ()
) -> None:
    """Layouts, templates and topics, and the suppressions of ``emails`` (as themselves or, once their
    person was erased, as their keyed digests), from one database to another: the journey simulator's
    scratch copy, where an address the installation never mails is not mailed either."""
    keys = sorted(erased.suppression_keys(secret, [email for email in emails if email]))
    queries.copy_configuration(source, target, keys)


def suppressed(conn: Connection, emails: Sequence[str]) -> set[str]:
    """Which of these addresses are suppressed for good (bounced, complained, unsubscribed, by hand), in
    one query: connectors keep a vendor's marketing status in step with it. A double opt-in still
    waiting (``unconfirmed``) is not: it is lifted by the confirmation."""
    wanted = sorted({email for email in emails if email})
    if not wanted:
        return set()
    rows = conn.execute(queries.suppressions_of(conn.dialect.name, wanted))
    return {row.email for row in rows if row.reason != "unconfirmed"}


def default_layout() -> LayoutFields:
    """The layout leadflow ships (``messaging/layouts/default.yaml``), which ready-made journeys install."""
    text = resources.files("leadflow.messaging.layouts").joinpath("default.yaml").read_text("utf-8")
    return LayoutFields(**yaml.safe_load(text))
