"""The HTTP layer: thin routes over the domains' services."""
