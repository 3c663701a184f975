"""A throw-away PostgreSQL cluster: made in a temporary folder, listening on 127.0.0.1 on a
free port, stopped and removed afterwards. The benchmark runs its PostgreSQL node on one
(bench/cli.py), and the tests theirs (tests/support/postgres.py adds pytest's skip).

Debian's server binaries live in /usr/lib/postgresql/<version>/bin, off the PATH. initdb
refuses to run as root, so as root the cluster belongs to the `postgres` system user
(which Debian's package creates) and its commands run through `runuser`. The cluster
trusts connections from 127.0.0.1 only: it lives for one run. It keeps fsync on, so a
synced commit costs what it would on a real server on this disk.
"""
from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from dataclasses import dataclass, field

START_TIMEOUT = 60


class Unavailable(Exception):
    """No server can be started here; the text says why."""


def server_bin() -> str | None:
    """The newest installed server's bin folder, or None."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(p.split("/")[4]) if p.split("/")[4].isdigit() else 0)
    if found:
        return os.path.dirname(found[-1])
    initdb = shutil.which("initdb")
    return os.path.dirname(initdb) if initdb else None


def free_port() -> int:
    """A loopback port nobody listened on a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Cluster:
    """One running server. `url(db)` names a database on it for the node's --store."""
    folder: str
    port: int
    bin: str
    owner: str | None  # the system user the server runs as, when we are root
    databases: list[str] = field(default_factory=list)

    @classmethod
    def start(cls, port: int | None = None) -> "Cluster":
        """A new cluster, running; Unavailable when none can be had."""
        bin_dir = server_bin()
        if bin_dir is None:
            raise Unavailable("initdb was not found (apt-get install postgresql)")
        owner = None
        if os.geteuid() == 0:
            try:
                pwd.getpwnam("postgres")
            except KeyError:
                raise Unavailable("running as root and there is no 'postgres' user to run "
                                  "it as") from None
            owner = "postgres"
        folder = tempfile.mkdtemp(prefix="cqrs-pg-")
        if owner:
            info = pwd.getpwnam(owner)
            os.chown(folder, info.pw_uid, info.pw_gid)
        cluster = cls(folder, port or free_port(), bin_dir, owner)
        try:
            cluster._init()
            cluster.start_server()
        except (OSError, subprocess.SubprocessError) as exc:
            log = cluster.log()
            cluster.remove()
            raise Unavailable(f"the server did not start: {exc}\n{log[-2000:]}") from None
        return cluster

    def _run(self, *argv: str, timeout: float = START_TIMEOUT) -> subprocess.CompletedProcess:
        command = [os.path.join(self.bin, argv[0]), *argv[1:]]
        if self.owner:
            command = ["runuser", "-u", self.owner, "--", *command]
        return subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                              check=True, cwd=self.folder)

    @property
    def data(self) -> str:
        return os.path.join(self.folder, "data")

    def _init(self) -> None:
        self._run("initdb", "-D", self.data, "-U", "postgres", "--auth=trust",
                  "--encoding=UTF8", "--no-instructions")

    def start_server(self) -> None:
        options = (f"-p {self.port} -c listen_addresses=127.0.0.1 "
                   f"-c unix_socket_directories={self.folder} -c fsync=on")
        self._run("pg_ctl", "-D", self.data, "-o", options, "-l", self.log_path, "-w",
                  "-t", str(START_TIMEOUT), "start")

    def stop_server(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", self.data, "-m", mode, "-w", "stop")

    @property
    def log_path(self) -> str:
        return os.path.join(self.folder, "server.log")

    def log(self) -> str:
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def new_database(self, template: str | None = None, prefix: str = "t_") -> str:
        """A fresh database (empty, or a copy of `template`); its URL."""
        name = f"{prefix}{uuid.uuid4().hex[:12]}"
        copy = f' TEMPLATE "{template}"' if template else ""
        self._admin(f'CREATE DATABASE "{name}"{copy}')
        self.databases.append(name)
        return self.url(name)

    def drop_database(self, name: str) -> None:
        self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def _admin(self, statement: str) -> None:
        import psycopg

        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute(statement)

    def url(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def remove(self) -> None:
        try:
            self.stop_server("immediate")
        except (OSError, subprocess.SubprocessError):
            pass
        shutil.rmtree(self.folder, ignore_errors=True)


# ---- databases for the nodes under test ------------------------------------------------------

MARKER = "postgres-database"  # in a node's data folder: the name of the database it stores in


class Databases:
    """A fresh database for each node the benchmark starts, on one server, tied to the
    node's data folder (where `--data-dir` then keeps only its snapshots): a run on a
    fresh folder gets an empty database, a store copied for a replay gets a copy of the
    database too (CREATE DATABASE ... TEMPLATE), and each goes when its folder does.

    `server` is any URL on the server (its database is only connected to, to make the
    others), as libpq reads it: a password may come from it, PGPASSWORD or ~/.pgpass."""

    def __init__(self, server: str) -> None:
        self.server = server

    def url(self, name: str) -> str:
        from urllib.parse import urlsplit, urlunsplit

        parts = urlsplit(self.server)
        return urlunsplit(parts._replace(path=f"/{name}"))

    def _admin(self, statement: str) -> None:
        import psycopg

        with psycopg.connect(self.server, autocommit=True) as conn:
            conn.execute(statement)

    def _named(self, folder: str) -> str | None:
        try:
            with open(os.path.join(folder, MARKER)) as f:
                return f.read().strip() or None
        except FileNotFoundError:
            return None

    def _make(self, folder: str, template: str | None = None) -> str:
        name = f"bench_{uuid.uuid4().hex[:12]}"
        self._admin(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
        with open(os.path.join(folder, MARKER), "w") as f:
            f.write(name)
        return name

    def for_folder(self, folder: str) -> str:
        """The URL of the folder's database, made (empty) if it has none yet."""
        return self.url(self._named(folder) or self._make(folder))

    def copied(self, folder: str) -> None:
        """`folder` is a copy of another node's folder: give it a copy of the database."""
        original = self._named(folder)
        if original:
            self._make(folder, template=original)

    def drop(self, folder: str) -> None:
        name = self._named(folder)
        if name:
            self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


_cluster: Cluster | None = None


def throwaway_server() -> Databases:
    """Databases on a cluster of this run's own, started on first use and removed when the
    harness exits; Unavailable where no server can be started."""
    global _cluster
    if _cluster is None:
        import atexit

        _cluster = Cluster.start()
        atexit.register(_cluster.remove)
    return Databases(_cluster.url("postgres"))
