"""Capture: hosted lead forms (definitions, the rendered form and its embed snippets, submissions with
consent records and double opt-in)."""
