"""Contacts: profiles, identity resolution, companies, touchpoints, consent, lifecycle, import/export."""
