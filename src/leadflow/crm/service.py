"""What other domains and the composition root may use of the CRM: the one module they import.

Event names (internal events of the pipeline, usable in segment rules, journey triggers and
webhooks): ``lead.status_changed`` (webhook catalogue: ``lead.status_updated``) and
``lead.owner_assigned``; see :mod:`leadflow.crm.leads`.
"""

from __future__ import annotations

from leadflow.crm.leads import OWNER_ASSIGNED as OWNER_ASSIGNED
from leadflow.crm.leads import STATUS_CHANGED as STATUS_CHANGED
from leadflow.crm.leads import ensure as ensure_lead
from leadflow.crm.leads import export as export
from leadflow.crm.leads import on_contacts_erased as on_contacts_erased
from leadflow.crm.leads import on_contacts_merged as on_contacts_merged
from leadflow.crm.leads import on_contacts_touched as on_contacts_touched

__all__ = [
    "OWNER_ASSIGNED",
    "STATUS_CHANGED",
    "ensure_lead",
    "export",
    "on_contacts_erased",
    "on_contacts_merged",
    "on_contacts_touched",
]
