"""Logging to stderr only: stdout belongs to the protocol."""
from __future__ import annotations

import logging
import sys

from common import config


def setup(role: str) -> logging.Logger:
    level = str(config.value("log_level")).upper()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(f"%(asctime)s {role}[%(process)d] %(levelname)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(getattr(logging, level, logging.INFO))
    return logging.getLogger(role)
