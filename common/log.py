"""Logging to stderr only: stdout belongs to the protocol."""
from __future__ import annotations

import logging
import os
import sys


def setup(role: str) -> logging.Logger:
    level = os.environ.get("CQRS_LOG_LEVEL", "INFO").upper()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(f"%(asctime)s {role}[%(process)d] %(levelname)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(getattr(logging, level, logging.INFO))
    return logging.getLogger(role)
