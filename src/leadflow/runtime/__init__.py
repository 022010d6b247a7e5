"""Composition root: building the context, the worker threads, first start (the HTTP server is
:mod:`leadflow.api.server`)."""
