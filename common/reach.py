"""Has a connecting socket found a node? A ZeroMQ socket monitor says so.

ZeroMQ connects in the background and retries for ever, so a tool pointed at an endpoint
where nothing listens (or whose CURVE keys the node refuses) would wait in silence. The
tools (cqrs-tap, cqrs-client) watch their socket's monitor instead: a completed handshake
(with CURVE on, one that accepted their keys) is the sign that a node is there, found
without sending anything the user did not ask for. Without it by a deadline, they exit 1
with `no_node_message`, which names the endpoint, what was seen, and the likely causes.
"""
from __future__ import annotations

import time

import zmq
from zmq.utils.monitor import recv_monitor_message

from common import config

DEFAULT_CONNECT_TIMEOUT = 10.0  # seconds a tool waits for the first sign of a node

_WATCHED = (zmq.EVENT_CONNECTED | zmq.EVENT_CONNECT_RETRIED | zmq.EVENT_HANDSHAKE_SUCCEEDED
            | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
            | zmq.EVENT_HANDSHAKE_FAILED_AUTH)
_FAILED_HANDSHAKES = (zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL, zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL,
                      zmq.EVENT_HANDSHAKE_FAILED_AUTH)


class ConnectionWatch:
    """What one socket's connection attempts have come to so far."""

    def __init__(self, socket: zmq.Socket) -> None:
        # Before connect(), so the first attempt is seen too.
        self._socket = socket
        self._monitor = socket.get_monitor_socket(_WATCHED)
        self.reached = False    # a handshake completed: a ZeroMQ peer took this socket
        self.connected = False  # a transport connection was made at least once
        self.retries = 0        # attempts that found nothing listening
        self.refused_keys = 0   # handshakes the peer failed (CURVE keys, or no ZeroMQ peer)
        self.auth_refused = False  # ... of which the peer said: this key is not allowed

    def update(self) -> bool:
        """Take in every event queued so far; whether the node has been reached."""
        while self._monitor is not None and self._monitor.poll(0):
            self._take(recv_monitor_message(self._monitor)["event"])
        return self.reached

    def wait(self, deadline: float) -> bool:
        """Wait until the node is reached or the monotonic deadline passes; reached?"""
        while not self.update() and self._monitor is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            self._monitor.poll(int(left * 1000) + 1)
        return self.reached

    def _take(self, event: int) -> None:
        if event == zmq.EVENT_HANDSHAKE_SUCCEEDED:
            self.reached = True
        elif event == zmq.EVENT_CONNECTED:
            self.connected = True
        elif event == zmq.EVENT_CONNECT_RETRIED:
            self.retries += 1
        elif event in _FAILED_HANDSHAKES:
            self.refused_keys += 1
            self.auth_refused |= event == zmq.EVENT_HANDSHAKE_FAILED_AUTH

    def seen(self) -> str:
        """What the attempts came to, in words (for no_node_message)."""
        if self.auth_refused:
            return "a node answered but refused this program's CURVE key"
        if self.refused_keys:
            return ("a connection was made but the ZeroMQ handshake failed (CURVE on one "
                    "side only, or keys that do not match, or not a ZeroMQ socket)")
        if self.connected:
            return "a connection was made but the ZeroMQ handshake never completed"
        return "nothing accepted a connection there"

    def close(self) -> None:
        """Stop watching (the socket itself stays open)."""
        if self._monitor is not None:
            self._socket.disable_monitor()
            self._monitor.close(0)
            self._monitor = None


def no_node_message(program: str, endpoint: str, seconds: float, seen: str,
                    where_to_look: str) -> str:
    """Why a tool gives up: the endpoint, what was seen, and what usually causes it."""
    public = config.setting("curve_server_public").var
    client_key = config.setting("curve_client_key").var
    return (f"{program}: could not reach a node at {endpoint} within {seconds:g} s: {seen}. "
            "Likely causes: "
            f"no node runs there, or it runs on another endpoint ({where_to_look}); or the "
            f"node has CURVE on and this program's keys are wrong or missing ({public} must "
            f"name the node's public key file and {client_key} this program's secret key "
            f"file, allowed on the node). Wait longer with --connect-timeout S.")


def check_seconds(value: float, flag: str) -> str:
    """'' when `value` is a usable number of seconds for `flag`, else why not."""
    if not value > 0 or value == float("inf"):  # `not >` also catches NaN
        return f"{flag} must be a number of seconds greater than 0, not {value:g}"
    return ""
