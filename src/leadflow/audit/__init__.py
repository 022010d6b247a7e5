"""The audit log: every mutation made through the API or the CLI."""
