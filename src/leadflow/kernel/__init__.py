"""Shared foundations: settings, database, clock, ids, errors, JSON."""
