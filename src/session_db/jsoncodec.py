"""JSON for the hot paths: orjson wherever it gives the stdlib's answer, the stdlib elsewhere.

orjson parses and serialises several times faster than `json`, but it differs from it on a
few inputs, and on those the stdlib decides, so every caller gets the same values as before:

- reading, orjson turns an integer beyond 64 bits into a float; a line holding a run of 19
  or more digits is read by the stdlib decoder instead (a rare line pays the slow path);
- reading, orjson refuses NaN, Infinity, lone surrogates and nesting past 1,024 levels;
  such a text is handed to the caller's stdlib decoder, which has its own policy for them;
- writing, orjson refuses integers beyond 64 bits and nesting past 254 levels; those
  values are written by `json.dumps`.

One choice is orjson's own: NaN and ±Infinity are written as JSON `null` (JSON has no such
numbers; the stdlib would write the invalid `NaN`, which PostgreSQL refuses and SQLite
keeps), so both engines store the same thing.
"""

from __future__ import annotations

import json
import math
from typing import Any

import orjson

# Every digit becomes "0", so one C-speed `in` finds a run of 19: a regex costs 6 µs per KB.
_DIGITS_AS_ZERO = bytes.maketrans(b"123456789", b"0" * 9)
_LONG_RUN = b"0" * 19
_STDLIB_DECODER = json.JSONDecoder()
_DUMPS_OPTIONS = orjson.OPT_NON_STR_KEYS  # keys like 1 or True become "1", "true", as in json


def loads(data: bytes, fallback: json.JSONDecoder = _STDLIB_DECODER) -> Any:
    """Parse JSON bytes; texts orjson refuses or would change go to `fallback`.

    Raises:
        json.JSONDecodeError: The text is not JSON (as `fallback` reports it).
        UnicodeDecodeError: The bytes are not UTF-8.
        RecursionError: The text is nested too deeply for the stdlib decoder.
    """
    if _LONG_RUN not in data.translate(_DIGITS_AS_ZERO):
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:
            pass
    # surrogatepass: a lone surrogate encoded as bytes reaches the decoder as one, for
    # the caller to clean, rather than failing the whole text.
    return fallback.decode(data.decode("utf-8", "surrogatepass"))


def dumps(value: Any) -> str:
    """Serialise `value` as compact JSON text (the engines' JSON columns use this).

    Raises:
        TypeError: A value is not JSON-serialisable.
        ValueError: A value cannot be written (a circular reference).
        RecursionError: The value is nested too deeply to write.
    """
    try:
        return orjson.dumps(value, option=_DUMPS_OPTIONS).decode()
    except orjson.JSONEncodeError:
        return json.dumps(_nan_as_null(value), separators=(",", ":"))


def _nan_as_null(value: Any) -> Any:
    """`value` with NaN and ±Infinity as None, as orjson writes them (for the slow path)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _nan_as_null(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_nan_as_null(item) for item in value]
    return value
