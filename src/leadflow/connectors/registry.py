"""The vendors leadflow connects to: name → the factory of its client (see
:mod:`leadflow.connectors.vendor`) and its default mapping. A vendor module is added here."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from leadflow.connectors import activecampaign, ga4, hubspot, kit, mailchimp, pipedrive, salesforce
from leadflow.connectors.options import Check
from leadflow.connectors.vendor import Factory
from leadflow.kernel.errors import Invalid


@dataclass(frozen=True)
class VendorKind:
    name: str
    make: Factory
    default_mapping: list[dict[str, Any]]
    #: ready-made mappings by name (ActiveCampaign's ``event_registration``: the badge business's profile)
    presets: Mapping[str, list[dict[str, Any]]] = field(default_factory=dict)
    #: the non-secret settings it reads (connectors.options): name → check
    options: Mapping[str, Check] = field(default_factory=dict)


VENDORS: dict[str, VendorKind] = {
    "activecampaign": VendorKind(
        "activecampaign",
        activecampaign.ActiveCampaignVendor,
        activecampaign.DEFAULT_MAPPING,
        activecampaign.PRESETS,
    ),
    "ga4": VendorKind("ga4", ga4.Ga4Vendor, ga4.DEFAULT_MAPPING),  # conversions (Measurement Protocol)
    "hubspot": VendorKind("hubspot", hubspot.HubSpotVendor, hubspot.DEFAULT_MAPPING),
    "kit": VendorKind("kit", kit.KitVendor, kit.DEFAULT_MAPPING),
    "mailchimp": VendorKind(
        "mailchimp", mailchimp.MailchimpVendor, mailchimp.DEFAULT_MAPPING, options=mailchimp.OPTIONS
    ),
    "pipedrive": VendorKind(
        "pipedrive", pipedrive.PipedriveVendor, pipedrive.DEFAULT_MAPPING, options=pipedrive.OPTIONS
    ),
    "salesforce": VendorKind(
        "salesforce", salesforce.SalesforceVendor, salesforce.DEFAULT_MAPPING, options=salesforce.OPTIONS
    ),
}


def factory(name: Any) -> VendorKind:
    found = VENDORS.get(name) if isinstance(name, str) else None
    if found is None:
        raise Invalid(f"vendor is one of {', '.join(sorted(VENDORS))}", code="unknown_vendor")
    return found
