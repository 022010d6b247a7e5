"""Lifecycle automation: the MQL definition (a segment rule) and moving qualifying contacts forward."""
