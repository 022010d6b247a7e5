"""Fast JSON (orjson) with the conversions the database and API need."""

from __future__ import annotations

from typing import Any

import orjson

OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_UTC_Z | orjson.OPT_NAIVE_UTC


def dumps(value: Any) -> str:
    return orjson.dumps(value, option=OPTIONS).decode()


def dumpb(value: Any) -> bytes:
    return orjson.dumps(value, option=OPTIONS)


loads = orjson.loads
JSONDecodeError = orjson.JSONDecodeError
