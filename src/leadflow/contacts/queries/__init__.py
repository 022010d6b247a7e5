"""The contacts domain's statements, one module per part:

- :mod:`.profiles`: profile, company and touchpoint reads (some for other domains, through
  :mod:`leadflow.contacts.service`), every name re-exported here (the domain's modules use them as
  ``queries.NAME``);
- :mod:`.lists`: the contact list's filter, its search by text and its counts, re-exported here too;
- :mod:`.imports`: the CSV import jobs' bookkeeping (used by :mod:`leadflow.contacts.import_jobs`).

Each module has its own ``SAMPLES`` (``tests/unit/test_sql_places.py`` compiles them on both databases).
"""

from __future__ import annotations

from leadflow.contacts.queries.lists import DENSE as DENSE
from leadflow.contacts.queries.lists import PROBE as PROBE
from leadflow.contacts.queries.lists import ContactFilter as ContactFilter
from leadflow.contacts.queries.lists import count_matching as count_matching
from leadflow.contacts.queries.lists import counting as counting
from leadflow.contacts.queries.lists import filtered as filtered
from leadflow.contacts.queries.lists import search as search
from leadflow.contacts.queries.lists import text_page as text_page
from leadflow.contacts.queries.profiles import CONTACT_COLUMNS as CONTACT_COLUMNS
from leadflow.contacts.queries.profiles import CONTACT_COUNT as CONTACT_COUNT
from leadflow.contacts.queries.profiles import TAGS_OF as TAGS_OF
from leadflow.contacts.queries.profiles import by_email as by_email
from leadflow.contacts.queries.profiles import by_id as by_id
from leadflow.contacts.queries.profiles import by_ids as by_ids
from leadflow.contacts.queries.profiles import companies_named as companies_named
from leadflow.contacts.queries.profiles import company as company
from leadflow.contacts.queries.profiles import company_contacts as company_contacts
from leadflow.contacts.queries.profiles import company_exists as company_exists
from leadflow.contacts.queries.profiles import company_peers as company_peers
from leadflow.contacts.queries.profiles import company_rows_of as company_rows_of
from leadflow.contacts.queries.profiles import contact_count as contact_count
from leadflow.contacts.queries.profiles import contact_select as contact_select
from leadflow.contacts.queries.profiles import email_of as email_of
from leadflow.contacts.queries.profiles import full_row as full_row
from leadflow.contacts.queries.profiles import get as get
from leadflow.contacts.queries.profiles import id_for_email as id_for_email
from leadflow.contacts.queries.profiles import id_for_user as id_for_user
from leadflow.contacts.queries.profiles import identities as identities
from leadflow.contacts.queries.profiles import ids_holding as ids_holding
from leadflow.contacts.queries.profiles import lead_profiles as lead_profiles
from leadflow.contacts.queries.profiles import lead_sources as lead_sources
from leadflow.contacts.queries.profiles import list_companies as list_companies
from leadflow.contacts.queries.profiles import live_id as live_id
from leadflow.contacts.queries.profiles import live_ids as live_ids
from leadflow.contacts.queries.profiles import merged_ids as merged_ids
from leadflow.contacts.queries.profiles import rows_of as rows_of
from leadflow.contacts.queries.profiles import time_zones as time_zones
from leadflow.contacts.queries.profiles import to_contact as to_contact
from leadflow.contacts.queries.profiles import to_contacts as to_contacts
from leadflow.contacts.queries.profiles import touchpoint_count as touchpoint_count
from leadflow.contacts.queries.profiles import touchpoints_of as touchpoints_of
from leadflow.contacts.queries.profiles import touchpoints_page as touchpoints_page
from leadflow.contacts.queries.profiles import with_email as with_email
from leadflow.contacts.queries.profiles import with_merged as with_merged
