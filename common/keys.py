"""cqrs-keys: make a CURVE key pair for a node server or a peer.

    cqrs-keys DIR NAME     writes DIR/NAME.key (public) and DIR/NAME.key_secret (secret)

Give servers' secret files to CQRS_CURVE_SERVER_KEY, their public files to
peers as CQRS_CURVE_SERVER_PUBLIC; copy each allowed peer's public file into
the folder named by CQRS_CURVE_ALLOWED.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Sequence

import zmq.auth


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="cqrs-keys", description=__doc__.split("\n\n")[0])
    ap.add_argument("folder")
    ap.add_argument("name")
    args = ap.parse_args(argv)
    os.makedirs(args.folder, exist_ok=True)
    public, secret = zmq.auth.create_certificates(args.folder, args.name)
    os.chmod(secret, 0o600)
    print(f"public: {public}\nsecret: {secret}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
