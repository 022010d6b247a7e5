"""What other domains and the API may use of contacts: the one module they import.

Re-exports and thin functions over the contacts modules; nothing in :mod:`leadflow.contacts` imports it
(it sits above every other module of the package).
"""

from __future__ import annotations

from leadflow.contacts import stages, store, tags
from leadflow.contacts.apply import Applied as Applied
from leadflow.contacts.batch import ProfileBatch as ProfileBatch
from leadflow.contacts.changes import ProfileChanges as ProfileChanges
from leadflow.contacts.erasure import Held as Held
from leadflow.contacts.erasure import erase as erase
from leadflow.contacts.erasure import held as held
from leadflow.contacts.import_console import MAP_HELP as MAP_HELP
from leadflow.contacts.import_console import run_import as run_import
from leadflow.contacts.lists import use_static_lists as use_static_lists
from leadflow.contacts.models import touchpoints as touchpoints  # read by analytics (first touch)
from leadflow.contacts.preferences import use_preferences as use_preferences
from leadflow.contacts.processor import EventProcessor as EventProcessor
from leadflow.contacts.queries import ContactFilter as ContactFilter
from leadflow.contacts.queries import by_ids as by_ids
from leadflow.contacts.queries import company_rows_of as company_rows_of
from leadflow.contacts.queries import contact_count as contact_count
from leadflow.contacts.queries import count_matching as count_matching
from leadflow.contacts.queries import email_of as email_of
from leadflow.contacts.queries import get as get
from leadflow.contacts.queries import id_for_user as id_for_user
from leadflow.contacts.queries import ids_holding as ids_holding
from leadflow.contacts.queries import lead_profiles as lead_profiles
from leadflow.contacts.queries import lead_sources as lead_sources
from leadflow.contacts.queries import live_id as live_id
from leadflow.contacts.queries import live_ids as live_ids
from leadflow.contacts.queries import rows_of as rows_of
from leadflow.contacts.queries import search as search
from leadflow.contacts.queries import time_zones as time_zones
from leadflow.contacts.queries import with_email as with_email
from leadflow.contacts.queries import with_merged as with_merged
from leadflow.contacts.schemas import Contact as Contact
from leadflow.contacts.schemas import ContactPatch as ContactPatch
from leadflow.contacts.schemas import ContactUpsert as ContactUpsert
from leadflow.contacts.stages import STAGES as STAGES
from leadflow.contacts.stages import forward as forward
from leadflow.contacts.tags import change_many as change_many
from leadflow.contacts.writes import advance_stage as advance_stage
from leadflow.contacts.writes import apply_batch as apply_batch
from leadflow.contacts.writes import canonical_email as canonical_email
from leadflow.contacts.writes import changes_from as changes_from
from leadflow.contacts.writes import contact_id_for_email as contact_id_for_email
from leadflow.contacts.writes import patch as patch
from leadflow.contacts.writes import profile_lock as profile_lock
from leadflow.contacts.writes import publish_changes as publish_changes
from leadflow.contacts.writes import upsert as upsert
from leadflow.contacts.writes import upsert_in as upsert_in
from leadflow.kernel.context import AppContext


def stage_rank(stage: str) -> int:
    """A lifecycle stage's position in :data:`STAGES` (visitor 0 … advocate 5)."""
    return stages.rank(stage)


def update_tags(
    ctx: AppContext, contact_id: str, add: list[str], remove: list[str], *, actor: str
) -> list[str]:
    """Add and remove a contact's tags, audited (the API's change, and the console's); its tags after."""
    return tags.update(ctx, contact_id, add, remove, actor=actor)


def recount_contacts(ctx: AppContext) -> int:
    """Recount the kept total of contacts from the contacts themselves (``leadflow analytics rebuild``;
    after rows were loaded around the engine), under the profile lock; answers the count."""
    with ctx.db.write() as conn:
        profile_lock(conn)
        return store.recount_total(conn)
