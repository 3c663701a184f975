"""cqrs-keys: make a CURVE key pair for the node's servers or for one peer of a role.

    cqrs-keys DIR NAME [--role server|client|writer|reader] [--force]

writes DIR/NAME.key (public) and DIR/NAME.key_secret (secret, mode 0600). With a
peer role, the public key is also copied into DIR/clients/, DIR/writers/ or
DIR/readers/: the folders the binding processes are given as CQRS_CURVE_ALLOWED,
CQRS_CURVE_WRITERS and CQRS_CURVE_READERS. An existing key file is never replaced
unless --force is given: a lost secret key cannot be made again.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
from typing import Sequence

from common.config import setting

# Where each role's public keys go, and the setting that names that folder.
ROLE_FOLDERS = {"client": ("clients", setting("curve_allowed").var),
                "writer": ("writers", setting("curve_writers").var),
                "reader": ("readers", setting("curve_readers").var)}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="cqrs-keys", description=__doc__.split("\n\n")[0])
    ap.add_argument("folder", help="folder for the key files (made if missing)")
    ap.add_argument("name", help="the key's name: files NAME.key and NAME.key_secret")
    ap.add_argument("--role", choices=("server", *ROLE_FOLDERS), default="server",
                    help="server: the key pair of the binding processes (router, write side); "
                         "client, writer, reader: a peer's key, whose public half is also "
                         "copied into FOLDER/clients, writers or readers (default: server)")
    ap.add_argument("--force", action="store_true",
                    help="replace existing key files of that name (their old secret is lost)")
    return ap.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    public = os.path.join(args.folder, f"{args.name}.key")
    secret = public + "_secret"
    existing = [p for p in (public, secret) if os.path.exists(p)]
    if existing and not args.force:
        sys.stderr.write(f"cqrs-keys: {', '.join(existing)} already exists; not replacing it "
                         "(give --force to make a new pair and lose the old one)\n")
        return 1
    import zmq.auth  # here, not at the top: --help and refusals need no pyzmq

    os.makedirs(args.folder, mode=0o700, exist_ok=True)
    public, secret = zmq.auth.create_certificates(args.folder, args.name)
    os.chmod(secret, 0o600)
    print(f"public: {public}\nsecret: {secret}")
    if args.role in ROLE_FOLDERS:
        sub, variable = ROLE_FOLDERS[args.role]
        folder = os.path.join(args.folder, sub)
        os.makedirs(folder, exist_ok=True)
        shutil.copy(public, folder)
        print(f"allowed as a {args.role}: {folder} (give it to the router and write side as "
              f"{variable}); this peer uses CQRS_CURVE_CLIENT_KEY={secret}")
    else:
        print(f"servers: CQRS_CURVE_SERVER_KEY={secret}; peers: "
              f"CQRS_CURVE_SERVER_PUBLIC={public}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
