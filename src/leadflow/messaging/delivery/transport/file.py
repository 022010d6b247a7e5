"""Delivery into a directory of ``.eml`` files: development, demos, and inspecting what would go out."""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from collections.abc import Sequence
from pathlib import Path

from leadflow.messaging.delivery.transport.base import Outcome, Outgoing

_UNSAFE = re.compile(r"[^A-Za-z0-9._@+-]")
_MAX_STEM = 150


class FileTransport:
    """Writes each message to ``<directory>/<safe message id>.eml``, atomically.

    A reader never sees a half-written file (the bytes go to a temporary file that is then renamed).
    The same message id always maps to the same file, so a retried message overwrites itself. A write
    that fails (disk full, permissions) is reported ``deferred`` rather than lost.
    """

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.description = f"files in {self.directory}"

    def send_many(self, messages: Sequence[Outgoing]) -> list[Outcome]:
        return [self._write(message) for message in messages]

    def path_for(self, message_id: str) -> Path:
        return self.directory / f"{safe_name(message_id)}.eml"

    def _write(self, message: Outgoing) -> Outcome:
        path = self.path_for(message.message_id)
        try:
            handle, temporary = tempfile.mkstemp(dir=self.directory, prefix=".tmp-", suffix=".eml")
            try:
                with os.fdopen(handle, "wb") as stream:
                    stream.write(message.data)
                os.replace(temporary, path)
            except BaseException:
                Path(temporary).unlink(missing_ok=True)
                raise
        except OSError as error:
            return Outcome("deferred", None, f"cannot write {path}: {error}")
        return Outcome("sent", None, f"written to {path}")

    def close(self) -> None:
        pass


def safe_name(message_id: str) -> str:
    """A file name for a message id: ``<abc@host>`` -> ``abc@host``.

    Characters outside ``[A-Za-z0-9._@+-]`` become ``_`` and a short hash of the id is appended then,
    so two ids that differ only in such characters never share a file.
    """
    bare = message_id.strip().strip("<>")
    stem = _UNSAFE.sub("_", bare).lstrip(".")[:_MAX_STEM]
    if stem != bare or not stem:
        stem = f"{stem}-{hashlib.sha256(message_id.encode()).hexdigest()[:10]}".lstrip("-")
    return stem
