"""Random (version 4) UUIDs as canonical strings, without building uuid.UUID objects."""
from __future__ import annotations

import os


def new_uuid() -> str:
    """A random UUID string, like str(uuid.uuid4()), at a fraction of its cost."""
    h = os.urandom(16).hex()
    variant = "89ab"[int(h[16], 16) & 3]
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{variant}{h[17:20]}-{h[20:]}"
