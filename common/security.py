"""ZeroMQ CURVE for cross-host deployments, configured from the environment.

Off unless its variables are set (one host, ipc or loopback TCP, needs none):

  CQRS_CURVE_SERVER_KEY     secret key file of the node's servers; set on processes that bind
                            (router, write side). Turns CURVE on for every socket they bind.
  CQRS_CURVE_ALLOWED        folder of public key files (*.key) of the peers allowed to connect
  CQRS_CURVE_SERVER_PUBLIC  public key file of the node's servers; set on processes that
                            connect (write side, read sides, cqrs-client, cqrs-tap)
  CQRS_CURVE_CLIENT_KEY     this peer's own secret key file, with CQRS_CURVE_SERVER_PUBLIC

Key files are made by `cqrs-keys`. A peer whose key is not allowed, or that
does not speak CURVE at all, is refused and the refusal is logged.
"""
from __future__ import annotations

import glob
import logging
import os
from typing import Mapping

import zmq

# zmq.auth pulls in asyncio (about 40 ms of every process's start-up): it is imported
# only where CURVE is in use, inside the functions below.

log = logging.getLogger("security")
_REFUSALS = (zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
             | zmq.EVENT_HANDSHAKE_FAILED_AUTH)


class AllowList:
    """The public keys allowed to connect, re-read from their folder when a key is unknown."""

    def __init__(self, folder: str) -> None:
        self.folder = folder
        self.keys = self._load()

    def _load(self) -> set[bytes]:
        keys = set()
        for path in glob.glob(os.path.join(self.folder, "*.key")):
            public, _secret = _auth_module().load_certificate(path)
            keys.add(public)
        return keys

    def callback(self, domain: str, key: bytes) -> bool:
        if key not in self.keys:
            self.keys = self._load()
        if key in self.keys:
            return True
        log.warning("refused a peer with an unknown CURVE key %s", key.decode(errors="replace"))
        return False


class Curve:
    def __init__(self, ctx: zmq.Context, env: Mapping[str, str] | None = None) -> None:
        env = os.environ if env is None else env
        self.ctx = ctx
        self.server_key = _pair(env.get("CQRS_CURVE_SERVER_KEY", ""))
        self.allowed = env.get("CQRS_CURVE_ALLOWED", "")
        self.server_public = _pair(env.get("CQRS_CURVE_SERVER_PUBLIC", ""))[0]
        self.client_key = _pair(env.get("CQRS_CURVE_CLIENT_KEY", ""))
        if self.server_public and not self.client_key[1]:
            raise SystemExit("CQRS_CURVE_SERVER_PUBLIC needs CQRS_CURVE_CLIENT_KEY too")
        self._auth = None  # a zmq.auth.thread.ThreadAuthenticator once serving
        self._monitors: list[tuple[zmq.Socket, str]] = []

    @property
    def serving(self) -> bool:
        return bool(self.server_key[1])

    def server(self, sock: zmq.Socket, name: str = "") -> None:
        """Make a socket that will bind a CURVE server (call before bind)."""
        if not self.serving:
            return
        if self._auth is None:
            self._start_auth()
        sock.curve_publickey, sock.curve_secretkey = self.server_key
        sock.curve_server = True
        self._monitors.append((sock.get_monitor_socket(_REFUSALS), name or str(sock.type)))

    def client(self, sock: zmq.Socket) -> None:
        """Make a socket that will connect a CURVE client (call before connect)."""
        if self.server_public:
            sock.curve_serverkey = self.server_public
            sock.curve_publickey, sock.curve_secretkey = self.client_key

    def _start_auth(self) -> None:
        from zmq.auth.thread import ThreadAuthenticator
        self._auth = ThreadAuthenticator(self.ctx, log=logging.getLogger("zap"))
        self._auth.start()
        if self.allowed:
            self._auth.configure_curve_callback("*", credentials_provider=AllowList(self.allowed))
        else:
            log.warning("CQRS_CURVE_ALLOWED is not set: any peer with a CURVE key may connect")
            self._auth.configure_curve(domain="*", location=_auth_module().CURVE_ALLOW_ANY)

    def report_refusals(self) -> None:
        """Log every handshake a server socket refused since the last call."""
        if not self._monitors:
            return
        from zmq.utils.monitor import recv_monitor_message
        for monitor, name in self._monitors:
            while True:
                try:
                    event = recv_monitor_message(monitor, zmq.NOBLOCK)
                except zmq.Again:
                    break
                log.warning("refused a connection on %s: handshake failed (%s, code %s)", name,
                            event["endpoint"].decode(errors="replace"), event["value"])

    def close(self) -> None:
        for monitor, _name in self._monitors:
            monitor.close(0)
        if self._auth is not None:
            self._auth.stop()


def _pair(path: str) -> tuple[bytes | None, bytes | None]:
    if not path:
        return None, None
    try:
        return _auth_module().load_certificate(path)
    except (OSError, ValueError) as exc:
        raise SystemExit(f"cannot read CURVE key file {path}: {exc}") from exc


def _auth_module():
    """zmq.auth, imported on first use (see the note at the imports)."""
    import zmq.auth
    return zmq.auth
