"""Machine, versions, BLAS and thread facts recorded next to every result (so numbers can be
compared only with numbers taken under the same conditions)."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ENV_VARS = (
    "OPENBLAS_CORETYPE", "OPENBLAS_NUM_THREADS", "OPENBLAS_VERBOSE", "OMP_NUM_THREADS",
    "MKL_NUM_THREADS", "MKL_ENABLE_INSTRUCTIONS", "NUMEXPR_NUM_THREADS", "VECLIB_MAXIMUM_THREADS",
    "GOTO_NUM_THREADS", "KMP_AFFINITY", "OMP_PROC_BIND", "TINYGRAD_MNIST_DATA",
)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine() -> dict:
    info = {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_model": cpu_model(),
        "logical_cores": os.cpu_count(),
    }
    if hasattr(os, "sched_getaffinity"):
        info["usable_cores"] = len(os.sched_getaffinity(0))
    try:
        import psutil

        info["physical_cores"] = psutil.cpu_count(logical=False)
        info["memory_bytes"] = psutil.virtual_memory().total
    except ImportError:
        pass
    return info


def _version(module_name: str) -> str | None:
    try:
        mod = __import__(module_name)
    except Exception:  # not installed, or (the engine) not importable yet
        mod = None
    v = getattr(mod, "__version__", None)
    if v is None:
        try:
            from importlib.metadata import version

            v = version(module_name)
        except Exception:
            v = None
    return v


def versions() -> dict:
    return {
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "torch": _version("torch") if "torch" in sys.modules else None,
        "tinygrad_mnist": _version("tinygrad_mnist"),
    }


def blas_info() -> list[dict]:
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return [{"error": "threadpoolctl not installed"}]
    return threadpool_info()


def numpy_blas_threads() -> int | None:
    """Threads of the BLAS NumPy is linked against (threadpoolctl), None if unknown."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return None
    numpy_dir = str(Path(np.__file__).resolve().parent.parent)
    blas = [i for i in threadpool_info() if i.get("user_api") == "blas"]
    # prefer the BLAS that lives in numpy's install (numpy.libs) over one another package loaded
    mine = [i for i in blas if i.get("filepath", "").startswith(numpy_dir)]
    chosen = (mine or blas or [None])[0]
    return None if chosen is None else chosen.get("num_threads")


def git_commit(repo: Path) -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def environment() -> dict:
    return {k: os.environ[k] for k in ENV_VARS if k in os.environ}


def _cpu_jiffies() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs from /proc/stat."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    total = sum(fields[:8])  # guest time is already counted in user
    return total - idle, total


def load(sample_s: float = 0.5) -> dict:
    """How much else is running: CPUs kept busy by other processes while this one sleeps for
    `sample_s`, plus load average and CPU pressure."""
    out = {}
    try:
        b0, t0 = _cpu_jiffies()
        time.sleep(sample_s)
        b1, t1 = _cpu_jiffies()
        out["others_busy_cpus"] = round((b1 - b0) / max(t1 - t0, 1) * (os.cpu_count() or 1), 2)
    except (OSError, ValueError, IndexError):
        pass
    try:
        out["loadavg_1min"], out["loadavg_5min"], _ = os.getloadavg()
    except OSError:
        pass
    try:  # Linux PSI: share of time some runnable task waited for a CPU
        line = Path("/proc/pressure/cpu").read_text().splitlines()[0]
        out["cpu_pressure_some_avg10"] = float(line.split("avg10=")[1].split()[0])
    except (OSError, IndexError, ValueError):
        pass
    return out
