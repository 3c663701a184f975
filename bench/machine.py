"""What the benchmark ran on: platform, Python, CPU model, cores and memory."""
from __future__ import annotations

import os
import platform


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() in ("model name", "Hardware", "Processor"):
                    return value.strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _ram_gib() -> float | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) / 1024 / 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _usable_cores() -> int:
    """Cores this process may run on (a container's limit), else all of them."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 0


def describe() -> dict[str, str]:
    """Machine facts as display strings, in a stable order."""
    ram = _ram_gib()
    return {
        "platform": platform.platform(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "cpu": _cpu_model(),
        "cores": f"{_usable_cores()} usable of {os.cpu_count() or '?'}",
        "ram": f"{ram:.1f} GiB" if ram else "unknown",
    }
