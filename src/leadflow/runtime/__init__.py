"""Composition root: building the context, the worker threads, the server, first start."""
