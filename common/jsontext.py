"""JSON text exactly as json.dumps writes it (", " and ": ", ASCII escapes), faster.

Replies are compared as text, so every process that renders part of a reply uses
this one function.
"""
from __future__ import annotations

import json
from json import encoder as _json_encoder
from typing import Any


class Rendered(str):
    """JSON text already rendered, to be spliced into a reply line as it is."""


def _default(value: Any) -> Any:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


# json.dumps builds a fresh C encoder on every call; with the same settings as its
# defaults, one kept encoder writes the same text in about half the time. (Values come
# from JSON and msgpack, so they hold no cycles and need no cycle check.)
_c_encoder = _json_encoder.c_make_encoder
if _c_encoder is not None:
    _encode_chunks = _c_encoder(None, _default, _json_encoder.encode_basestring_ascii, None,
                                ": ", ", ", False, False, True)

    def dumps(value: Any) -> str:
        """json.dumps(value), faster."""
        return "".join(_encode_chunks(value, 0))
else:  # an interpreter without the C accelerator
    dumps = json.dumps
