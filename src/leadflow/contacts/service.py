"""What other domains and the API may use of contacts: the one module they import.

Re-exports and thin functions over the contacts modules; nothing in :mod:`leadflow.contacts` imports it
(it sits above every other module of the package).
"""

from __future__ import annotations

from leadflow.contacts.apply import Applied as Applied
from leadflow.contacts.writes import PROFILE_LOCK as PROFILE_LOCK
from leadflow.contacts.writes import apply_batch as apply_batch
from leadflow.contacts.writes import canonical_email as canonical_email
from leadflow.contacts.writes import changes_from as changes_from
from leadflow.contacts.writes import contact_id_for_email as contact_id_for_email
from leadflow.contacts.writes import patch as patch
from leadflow.contacts.writes import profile_lock as profile_lock
from leadflow.contacts.writes import publish_changes as publish_changes
from leadflow.contacts.writes import upsert as upsert
