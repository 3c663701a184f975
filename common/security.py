"""ZeroMQ CURVE for cross-host deployments, with keys allowed per role.

Off unless its key files are set (one host, ipc or loopback TCP, needs none). The
variables are in common/config.py (ENVIRONMENT); in short:

  CQRS_CURVE_SERVER_KEY     secret key file of the node's servers; set on processes that bind
                            (router, write side). Turns CURVE on for every socket they bind.
  CQRS_CURVE_ALLOWED        folder of the clients' public keys (cqrs-client, cqrs-tap)
  CQRS_CURVE_WRITERS        folder of the write sides' public keys
  CQRS_CURVE_READERS        folder of the read sides' public keys
  CQRS_CURVE_SERVER_PUBLIC  public key file of the node's servers; set on processes that
                            connect (write side, read sides, cqrs-client, cqrs-tap)
  CQRS_CURVE_CLIENT_KEY     this peer's own secret key file, with CQRS_CURVE_SERVER_PUBLIC

Roles: each server socket names the kind of endpoint it is (its ZAP domain), and
accepts only the keys of the roles that may connect there (ACCEPTS). So a client key
can never register as a write side or a read replica, whatever it sends. Key files
are made by `cqrs-keys`. A refused peer is logged once, in words: its key, the endpoint,
and the roles its key has.
"""
from __future__ import annotations

import glob
import logging
import os
import time

import zmq

from common.config import CurveSettings, curve_settings, setting

# zmq.auth pulls in asyncio (about 40 ms of every process's start-up): it is imported
# only where CURVE is in use, inside the functions below.

log = logging.getLogger("security")
_REFUSALS = (zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
             | zmq.EVENT_HANDSHAKE_FAILED_AUTH)

# The roles a key can have, each a folder of public keys (a CurveSettings field), and
# the roles each kind of endpoint accepts.
ROLE_FOLDERS = {"client": "allowed", "writer": "writers", "reader": "readers"}
ROLE_VARIABLES = {role: setting(f"curve_{field}").var for role, field in ROLE_FOLDERS.items()}
ACCEPTS = {
    "client": ("client",),               # the router's client endpoint
    "write": ("writer",),                # the router's endpoint for write sides
    "read": ("reader",),                 # the router's endpoint for read sides
    "events": ("reader", "client"),      # the write side's event stream and catch-up
}
MAX_LOGGED = 4096  # refused keys remembered, so each is logged once
REPORT_EVERY = 10.0  # seconds between two logs of the same failed handshake on an endpoint
_HANDSHAKE_FAILURES = {
    zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL: "the handshake failed: the peer does not speak "
                                          "CURVE, or expects another server key",
    zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL: "the peer broke the CURVE handshake (a client "
                                         "without keys, or not a ZeroMQ peer)",
    zmq.EVENT_HANDSHAKE_FAILED_AUTH: "its key is not allowed on this endpoint",
}


class KeyFolder:
    """The public keys in one folder, re-read when an unknown key knocks (so a key added
    while the node runs is taken)."""

    def __init__(self, folder: str) -> None:
        self.folder = folder
        self.keys = self._load()

    def _load(self) -> set[bytes]:
        keys = set()
        for path in glob.glob(os.path.join(self.folder, "*.key")):
            public, _secret = _auth_module().load_certificate(path)
            keys.add(public)
        return keys

    def __contains__(self, key: bytes) -> bool:
        if key not in self.keys:
            self.keys = self._load()
        return key in self.keys


class EndpointKeys:
    """The ZAP credentials check of one kind of endpoint: a key of an accepted role passes;
    any other is refused and logged once, saying which roles the key does have."""

    def __init__(self, endpoint: str, folders: dict[str, KeyFolder | None]) -> None:
        self.endpoint = endpoint
        self.folders = folders  # role -> its keys; None: that role's folder is not set
        self.logged: set[bytes] = set()

    def callback(self, domain: str, key: bytes) -> bool:
        accepted = ACCEPTS[self.endpoint]
        if any(self.folders[r] is None or key in self.folders[r] for r in accepted):
            return True
        if key not in self.logged:
            if len(self.logged) >= MAX_LOGGED:
                self.logged.clear()
            self.logged.add(key)
            has = [r for r, f in self.folders.items() if f is not None and key in f]
            log.warning("refused CURVE key %s on the %s endpoint: it is %s, and this endpoint "
                        "accepts only %s keys (%s)", key.decode(errors="replace"), self.endpoint,
                        f"a {' and '.join(has)} key" if has else "in no role's folder",
                        " and ".join(accepted),
                        ", ".join(ROLE_VARIABLES[r] for r in accepted))
        return False


class Curve:
    def __init__(self, ctx: zmq.Context, settings: CurveSettings | None = None) -> None:
        """`settings` default to this process's environment (common.config)."""
        settings = curve_settings() if settings is None else settings
        self.ctx = ctx
        self.settings = settings
        self.server_key = _pair(settings.server_key)
        self.server_public = _pair(settings.server_public)[0]
        self.client_key = _pair(settings.client_key)
        if self.server_public and not self.client_key[1]:
            raise SystemExit("CQRS_CURVE_SERVER_PUBLIC needs CQRS_CURVE_CLIENT_KEY too")
        self._auth = None  # a zmq.auth.thread.ThreadAuthenticator once serving
        self._monitors: list[tuple[zmq.Socket, str]] = []
        self._reported: dict[tuple[str, int], float] = {}  # (endpoint, event) -> logged at

    @property
    def serving(self) -> bool:
        return bool(self.server_key[1])

    def server(self, sock: zmq.Socket, endpoint: str) -> None:
        """Make a socket that will bind a CURVE server for one kind of `endpoint` (a key of
        ACCEPTS), before bind; it will take only the keys of the roles that endpoint accepts."""
        if not self.serving:
            return
        if self._auth is None:
            self._start_auth()
        self._auth.configure_curve_callback(endpoint, credentials_provider=self._keys(endpoint))
        sock.zap_domain = endpoint.encode()
        sock.curve_publickey, sock.curve_secretkey = self.server_key
        sock.curve_server = True
        self._monitors.append((sock.get_monitor_socket(_REFUSALS), endpoint))

    def _keys(self, endpoint: str) -> EndpointKeys:
        """The check for one kind of endpoint. A back-end role's folder is required: without
        it any key could pose as that back end."""
        folders: dict[str, KeyFolder | None] = {}
        for role, field in ROLE_FOLDERS.items():
            folder = getattr(self.settings, field)
            if not folder and role != "client" and role in ACCEPTS[endpoint]:
                raise SystemExit(f"CURVE is on, but {ROLE_VARIABLES[role]} (the folder of the "
                                 f"{role}s' public keys) is not set: the {endpoint} endpoint "
                                 "would accept any key")
            folders[role] = KeyFolder(folder) if folder else None
        if folders["client"] is None and "client" in ACCEPTS[endpoint]:
            log.warning("CQRS_CURVE_ALLOWED is not set: any client key may connect to the %s "
                        "endpoint", endpoint)
        return EndpointKeys(endpoint, folders)

    def client(self, sock: zmq.Socket) -> None:
        """Make a socket that will connect a CURVE client (call before connect)."""
        if self.server_public:
            sock.curve_serverkey = self.server_public
            sock.curve_publickey, sock.curve_secretkey = self.client_key

    def _start_auth(self) -> None:
        from zmq.auth.thread import ThreadAuthenticator
        self._auth = ThreadAuthenticator(self.ctx, log=logging.getLogger("zap"))
        self._auth.start()

    def report_refusals(self) -> None:
        """Log the handshakes the server sockets refused since the last call, in words; each
        kind of refusal on each endpoint at most once every REPORT_EVERY seconds (a refused
        key was already logged, once, by its endpoint's check)."""
        if not self._monitors:
            return
        from zmq.utils.monitor import recv_monitor_message
        for monitor, name in self._monitors:
            while True:
                try:
                    event = recv_monitor_message(monitor, zmq.NOBLOCK)
                except zmq.Again:
                    break
                bound = event["endpoint"].decode(errors="replace")
                now = time.monotonic()
                if now - self._reported.get((bound, event["event"]), -REPORT_EVERY) < REPORT_EVERY:
                    continue
                self._reported[(bound, event["event"])] = now
                log.warning("refused a connection on the %s endpoint %s: %s", name, bound,
                            _HANDSHAKE_FAILURES.get(event["event"], "the handshake failed"))

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
