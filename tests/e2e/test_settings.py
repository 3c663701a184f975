"""Settings as a user meets them: run_node.py refuses a bad one before starting anything."""
from __future__ import annotations

import os
import subprocess
import sys

from common import store_url
from tests.support.nodeproc import RUN_NODE

NO_CQRS = {k: v for k, v in os.environ.items() if not k.startswith("CQRS_")}


def test_a_bad_store_url_exits_2_naming_the_schemes_before_any_process_starts(tmp_path):
    runtime = tmp_path / "runtime"
    proc = subprocess.run([sys.executable, RUN_NODE, "--store", "foo://x",
                           "--runtime-dir", str(runtime)],
                          env=NO_CQRS, capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL)
    assert proc.returncode == 2
    assert "--store" in proc.stderr and proc.stdout == ""
    for scheme in store_url.SCHEMES:
        assert scheme in proc.stderr.split("known schemes:")[1]
    # The launcher makes the runtime folder before it starts a child: it never got there.
    assert not runtime.exists()
    assert "events endpoint" not in proc.stderr
