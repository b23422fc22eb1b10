"""Helpers shared by the benchmarks: what machine they ran on, and a services stack of their own."""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
for entry in (str(ROOT), str(ROOT / "platform")):
    if entry not in sys.path:
        sys.path.insert(0, entry)


def cpu_model() -> str:
    from scoring.provenance import cpu_model as recorded_cpu_model

    return recorded_cpu_model()


def machine() -> str:
    """CPU model, cores, memory, kernel, Python."""
    memory = ""
    try:
        with open("/proc/meminfo") as handle:
            kib = int(next(line.split()[1] for line in handle if line.startswith("MemTotal")))
        memory = f", {kib / 1024 / 1024:.0f} GiB RAM"
    except (OSError, StopIteration, ValueError):
        pass
    return (f"{cpu_model()}, {os.cpu_count()} logical CPUs{memory}; {platform.system()} {platform.release()}; "
            f"Python {platform.python_version()}")


def load_average() -> str:
    return "load avg " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def free_redis_db(url: str = "redis://127.0.0.1:6379") -> str:
    """A Redis database index (1..14) that holds no keys, so that a benchmark's broker shares nothing
    with the stacks other people's tests are running on this machine; raises if none is empty."""
    import redis

    for index in range(14, 0, -1):
        if redis.Redis.from_url(f"{url}/{index}").dbsize() == 0:
            return f"{url}/{index}"
    raise RuntimeError("no empty Redis database among 1..14")


def services_stack(workdir: Path, weights_dir: Path, extra_env: dict[str, str] | None = None):
    """tests.support.stack.LiveStack("services", ...) on an empty Redis database of its own.

    LiveStack flushes the Redis database ``1 + pid % 14``, which may be one that another test's
    stack is using at that moment; here the flush is skipped and an empty database is chosen.
    """
    from unittest import mock

    from tests.support.stack import REDIS_URL, LiveStack

    broker = free_redis_db(REDIS_URL)

    class _NoFlush:
        def flushdb(self) -> None:
            pass

    with mock.patch("redis.Redis.from_url", return_value=_NoFlush()):
        return LiveStack("services", workdir, weights_dir, extra_env={"CELERY_BROKER_URL": broker,
                                                                       **(extra_env or {})})
