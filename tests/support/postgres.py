"""A throw-away PostgreSQL cluster for the tests: made in a temporary folder, listening on
127.0.0.1 on a free port, stopped and removed afterwards.

Debian's server binaries live in /usr/lib/postgresql/<version>/bin, off the PATH. initdb
refuses to run as root, so as root the cluster belongs to the `postgres` system user
(which Debian's package creates) and its commands run through `runuser`. The cluster
trusts connections from 127.0.0.1 only: it lives for one test run.

Where no server can be had the tests skip with the reason, unless CQRS_REQUIRE_POSTGRES=1
(set by .ci/run), where a server that cannot start fails the run.
"""
from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from dataclasses import dataclass, field

import pytest

from tests.support.ports import free_ports

REQUIRE = os.environ.get("CQRS_REQUIRE_POSTGRES", "") == "1"  # read by the tests only
START_TIMEOUT = 60


def server_bin() -> str | None:
    """The newest installed server's bin folder, or None."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(p.split("/")[4]) if p.split("/")[4].isdigit() else 0)
    if found:
        return os.path.dirname(found[-1])
    initdb = shutil.which("initdb")
    return os.path.dirname(initdb) if initdb else None


def unavailable(why: str) -> None:
    """Skip, or fail where a server is required."""
    if REQUIRE:
        pytest.fail(f"PostgreSQL is required (CQRS_REQUIRE_POSTGRES=1) but {why}")
    pytest.skip(f"no PostgreSQL server: {why}")


@dataclass
class Cluster:
    """One running server. `url(db)` names a database on it for the node's --store."""
    folder: str
    port: int
    bin: str
    owner: str | None  # the system user the server runs as, when we are root
    databases: list[str] = field(default_factory=list)

    @classmethod
    def start(cls) -> "Cluster":
        bin_dir = server_bin()
        if bin_dir is None:
            unavailable("initdb was not found (apt-get install postgresql)")
        owner = None
        if os.geteuid() == 0:
            try:
                pwd.getpwnam("postgres")
            except KeyError:
                unavailable("running as root and there is no 'postgres' user to run it as")
            owner = "postgres"
        folder = tempfile.mkdtemp(prefix="cqrs-pg-")
        if owner:
            info = pwd.getpwnam(owner)
            os.chown(folder, info.pw_uid, info.pw_gid)
        cluster = cls(folder, free_ports(1)[0], bin_dir, owner)
        try:
            cluster._init()
            cluster.start_server()
        except (OSError, subprocess.SubprocessError) as exc:
            log = cluster.log()
            cluster.remove()
            unavailable(f"the server did not start: {exc}\n{log[-2000:]}")
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

    def new_database(self) -> str:
        """A fresh, empty database; its URL."""
        import psycopg

        name = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        self.databases.append(name)
        return self.url(name)

    def url(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def remove(self) -> None:
        try:
            self.stop_server("immediate")
        except (OSError, subprocess.SubprocessError):
            pass
        shutil.rmtree(self.folder, ignore_errors=True)
