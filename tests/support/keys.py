"""CURVE key pairs made with the node's own `cqrs-keys` program, as an operator would."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import zmq.auth

from tests.support.nodeproc import VENV_BIN


def make_keys(folder: Path, name: str) -> tuple[str, str]:
    """`cqrs-keys folder name`: the (public, secret) key files."""
    subprocess.run([os.path.join(VENV_BIN, "cqrs-keys"), str(folder), name], check=True,
                   capture_output=True, timeout=30)
    public, secret = folder / f"{name}.key", folder / f"{name}.key_secret"
    assert public.exists() and secret.exists()
    return str(public), str(secret)


def public_text(key_file: str) -> str:
    """The public key in the Z85 text the node logs."""
    return zmq.auth.load_certificate(key_file)[0].decode()
