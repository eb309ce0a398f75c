"""The machine a benchmark ran on, recorded next to its numbers in every results file."""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["machine"]


def machine() -> dict[str, Any]:
    """CPU, cores, versions, and the load when the run started.

    Other jobs share these machines; a load near or above the core count inflates every number,
    so it is recorded rather than hidden.
    """
    import numba

    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        load = None
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "numba": numba.__version__,
        "platform": platform.platform(),
        "load_average_at_start": load,
    }
