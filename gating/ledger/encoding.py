"""The ledger's canonical form (entry version 2): RFC 8785 JCS, with a lossless tagged form for what JCS cannot hold."""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Mapping
from datetime import UTC, date, datetime
from enum import Enum
from typing import Any

import rfc8785

# A tag is an object with exactly one key, and that key starts with this prefix. Ordinary data shaped like that is
# escaped (OBJECT), so a reader never mistakes data for a tag.
TAG_PREFIX = "$ledger:"
INT = TAG_PREFIX + "int"  # {"$ledger:int": "-123456789012345678901"}: an integer a double cannot hold exactly
FLOAT = TAG_PREFIX + "float"  # {"$ledger:float": "NaN" | "Infinity" | "-Infinity"}: JCS has no such numbers
STR = TAG_PREFIX + "str-utf16"  # {"$ledger:str-utf16": ["text", 55357, "text"]}: a string with lone surrogates
OBJECT = TAG_PREFIX + "object"  # {"$ledger:object": [[key, value], ...]}: an object JCS cannot write as one

# The integers an IEEE double (what JCS takes a JSON number to be) represents exactly, and so every reader agrees on.
SAFE_INTEGER = 2**53 - 1
_NON_FINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}
_SURROGATE = re.compile("[\ud800-\udfff]")
_BIG_INTEGER = re.compile(r"-?[1-9][0-9]*")


class LedgerEncodingError(ValueError):
    """Stored text that does not follow the encoding: it was not written by the ledger."""


def format_time(value: datetime) -> str:
    """ISO-8601 in UTC with a Z; naive datetimes are refused because their zone is a guess."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise TypeError(f"naive datetime {value.isoformat()} cannot be hashed: give it a time zone (UTC)")
    text = value.astimezone(UTC).replace(tzinfo=None).isoformat()
    return text + "Z"


def _utf16(text: str) -> bytes:
    # JCS orders keys by UTF-16 code units; surrogatepass gives a lone surrogate its own unit.
    return text.encode("utf-16-be", "surrogatepass")


def _encode_str(text: str) -> Any:
    if not _SURROGATE.search(text):
        return text
    segments: list[str | int] = []
    start = 0
    for match in _SURROGATE.finditer(text):
        if match.start() > start:
            segments.append(text[start : match.start()])
        segments.append(ord(match.group()))
        start = match.end()
    if start < len(text):
        segments.append(text[start:])
    return {STR: segments}


def _encode_object(obj: Mapping[Any, Any], path: str) -> Any:
    items: list[tuple[str, Any]] = []
    for key, value in obj.items():
        if not isinstance(key, str):
            raise TypeError(f"{path}: key {key!r} is not a string")
        items.append((key, encode(value, f"{path}.{key}")))
    looks_tagged = len(items) == 1 and items[0][0].startswith(TAG_PREFIX)
    if looks_tagged or any(_SURROGATE.search(key) for key, _ in items):
        pairs = sorted(items, key=lambda item: _utf16(item[0]))
        return {OBJECT: [[_encode_str(key), value] for key, value in pairs]}
    return dict(items)


def encode(obj: Any, path: str = "$") -> Any:
    """The value as JSON that JCS represents exactly: datetimes become UTC ISO-8601, the rest is tagged as needed.

    Raises TypeError for what is not JSON at all (a set, a dataclass, a naive datetime), naming where it is.
    """
    # Enum before str and int: a str or int Enum is recorded as its value. bool before int: it is an int subclass.
    if isinstance(obj, Enum):
        return encode(obj.value, path)
    if obj is None or isinstance(obj, bool):
        return obj
    if isinstance(obj, str):
        return _encode_str(str(obj))
    if isinstance(obj, int):
        number = int(obj)
        return number if -SAFE_INTEGER <= number <= SAFE_INTEGER else {INT: str(number)}
    if isinstance(obj, float):
        if math.isfinite(obj):
            return float(obj)
        return {FLOAT: "NaN" if math.isnan(obj) else ("Infinity" if obj > 0 else "-Infinity")}
    if isinstance(obj, datetime):
        return format_time(obj)
    if isinstance(obj, date):
        return obj.isoformat()
    if isinstance(obj, Mapping):
        return _encode_object(obj, path)
    if isinstance(obj, list | tuple):
        return [encode(value, f"{path}[{i}]") for i, value in enumerate(obj)]
    raise TypeError(f"{path}: {type(obj).__name__} is not JSON (convert dataclasses with dataclasses.asdict)")


def escape_lone_surrogates(json_text: str) -> str:
    """JSON text with each lone surrogate written as its \\uXXXX escape: the same JSON, now writable as UTF-8."""
    return _SURROGATE.sub(lambda match: f"\\u{ord(match.group()):04x}", json_text)


def displayable(text: str) -> str:
    """Text for a page or a terminal: a lone surrogate, which no UTF-8 page can carry, shown as U+FFFD."""
    return _SURROGATE.sub("\ufffd", text)


def jcs(value: Any) -> str:
    """RFC 8785 text of a value that is already JCS-representable (what `encode` returns, or parsed stored text)."""
    return rfc8785.dumps(value).decode("utf-8")


def canonical_json(obj: Any) -> str:
    """The text the ledger hashes: JCS of `encode(obj)` (UTF-8, keys in UTF-16 order, numbers as ECMAScript's)."""
    return jcs(encode(obj))


# -- reading back --------------------------------------------------------------------------------------------------


def _decode_str(value: Any) -> str:
    """A key or string: plain, or the STR tag."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and len(value) == 1 and STR in value:
        return _decode_segments(value[STR])
    raise LedgerEncodingError(f"{value!r} is not a string")


def _decode_segments(segments: Any) -> str:
    if not isinstance(segments, list) or not any(isinstance(s, int) for s in segments):
        raise LedgerEncodingError(f"{STR} needs a list holding at least one lone surrogate, not {segments!r}")
    parts: list[str] = []
    previous_text = False
    for segment in segments:
        if isinstance(segment, str) and segment and not previous_text and not _SURROGATE.search(segment):
            parts.append(segment)
            previous_text = True
        elif type(segment) is int and 0xD800 <= segment <= 0xDFFF:
            parts.append(chr(segment))
            previous_text = False
        else:
            raise LedgerEncodingError(f"{STR} segment {segment!r} is neither one run of text nor a lone surrogate")
    return "".join(parts)


def _decode_object(pairs: Any) -> dict[str, Any]:
    if not isinstance(pairs, list) or not all(isinstance(p, list) and len(p) == 2 for p in pairs):
        raise LedgerEncodingError(f"{OBJECT} needs a list of [key, value] pairs, not {pairs!r}")
    keys = [_decode_str(key) for key, _ in pairs]
    order = [_utf16(key) for key in keys]
    if any(a >= b for a, b in itertools.pairwise(order)):
        raise LedgerEncodingError(f"{OBJECT} keys must be unique and in UTF-16 order: {keys!r}")
    looks_tagged = len(keys) == 1 and keys[0].startswith(TAG_PREFIX)
    if not looks_tagged and not any(_SURROGATE.search(key) for key in keys):
        raise LedgerEncodingError(f"{OBJECT} holds an object that needs no escape: {keys!r}")
    return {key: decode(value) for key, (_, value) in zip(keys, pairs, strict=True)}


def _decode_tag(tag: str, value: Any) -> Any:
    if tag == INT:
        if not isinstance(value, str) or not _BIG_INTEGER.fullmatch(value) or abs(int(value)) <= SAFE_INTEGER:
            raise LedgerEncodingError(f"{INT} needs the decimal digits of an integer beyond ±2^53-1, not {value!r}")
        return int(value)
    if tag == FLOAT:
        if not isinstance(value, str) or value not in _NON_FINITE:
            raise LedgerEncodingError(f"{FLOAT} needs NaN, Infinity or -Infinity, not {value!r}")
        return _NON_FINITE[value]
    if tag == STR:
        return _decode_segments(value)
    if tag == OBJECT:
        return _decode_object(value)
    raise LedgerEncodingError(f"unknown tag {tag!r}")


def decode(value: Any) -> Any:
    """The original value from parsed v2 text: the inverse of `encode` (datetimes stay strings)."""
    if isinstance(value, list):
        return [decode(item) for item in value]
    if isinstance(value, dict):
        if len(value) == 1:
            ((key, inner),) = value.items()
            if key.startswith(TAG_PREFIX):
                return _decode_tag(key, inner)
        return {key: decode(inner) for key, inner in value.items()}
    return value
