"""What computed a score: library versions and the numeric environment (CPU, SIMD level, BLAS, GPU).

Stored with every score and printed by ``score --json``, so a number that differs between two
machines can be traced to what differed. docs/numerics.md says how far numbers agree.
"""

from __future__ import annotations

import functools
import os
import platform as _platform
import re
from typing import Any

from scoring import __version__

# torch and numpy are imported inside the functions: web processes import this module for
# ``describe`` alone and never load torch.


@functools.cache
def cpu_model() -> str:
    """The CPU's model name as the kernel reports it, or what the platform module knows."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return _platform.processor() or _platform.machine() or "unknown"


@functools.cache
def torch_blas() -> str:
    """torch's BLAS and LAPACK as its build reports them, with MKL's version where it is MKL."""
    import torch

    config = torch.__config__.show()
    found = dict(re.findall(r"\b(BLAS_INFO|LAPACK_INFO)=(\w+)", config))
    mkl = re.search(r"Math Kernel Library Version ([\w.\-]+)", config)
    blas = found.get("BLAS_INFO", "unknown")
    if blas == "mkl" and mkl:
        blas = f"mkl {mkl.group(1)}"
    return f"{blas}; lapack {found.get('LAPACK_INFO', 'unknown')}"


@functools.cache
def numpy_blas() -> str:
    """numpy's BLAS (used by the identity fit and FID), with OpenBLAS's forced core type if any."""
    import numpy as np

    try:
        info = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        name = f"{info.get('name', 'unknown')} {info.get('version', '')}".strip()
    except Exception:  # noqa: BLE001 - an old numpy without mode="dicts": say so rather than fail
        name = "unknown"
    core = os.environ.get("OPENBLAS_CORETYPE")
    return f"{name} (OPENBLAS_CORETYPE={core})" if core else name


def provenance(device: Any = "cpu") -> dict[str, str]:
    """Versions and numeric environment of this process, for ``device`` (a torch device or its name)."""
    import numpy as np
    import pyiqa
    import torch

    dev = torch.device(device)
    info = {
        "scoring": __version__,
        "pyiqa": getattr(pyiqa, "__version__", "unknown"),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "python": _platform.python_version(),
        "cpu": cpu_model(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "torch_blas": torch_blas(),
        "numpy_blas": numpy_blas(),
    }
    if dev.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(dev)
        info["cuda"] = str(torch.version.cuda)
    return info


# Labels for pages and reports, in display order.
LABELS = {
    "scoring": "scoring",
    "pyiqa": "pyiqa",
    "torch": "torch",
    "numpy": "numpy",
    "python": "Python",
    "cpu": "CPU",
    "cpu_capability": "torch CPU kernels",
    "torch_blas": "torch BLAS",
    "numpy_blas": "numpy BLAS",
    "gpu": "GPU",
    "cuda": "CUDA",
}


def describe(recorded: dict[str, str]) -> list[tuple[str, str]]:
    """(label, value) pairs of a stored record, known keys first in display order."""
    known = [(label, recorded[key]) for key, label in LABELS.items() if key in recorded]
    return known + [(key, value) for key, value in sorted(recorded.items()) if key not in LABELS]
