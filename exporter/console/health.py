"""The exporter's own health, read from the snapshot's exposition bytes.

The console shows exactly what `/metrics` says (`aura_up`, cycle duration, last successful
cycle, cycles run, stage failures), so it needs no handle on the pipeline: the self metrics are
found in the cached body by name (from `exporter.catalog`) with one regular-expression pass.
"""

from __future__ import annotations

import math
import re
from typing import Any

from exporter import catalog

_WANTED = (catalog.UP, catalog.CYCLE_DURATION, catalog.LAST_SUCCESS, catalog.CYCLES,
           catalog.CYCLE_FAILURES)
_LINE = re.compile(
    rb"^(" + b"|".join(re.escape(m.name.encode()) for m in _WANTED) + rb")(\{[^}\n]*\})? (\S+)$",
    re.MULTILINE,
)


def exporter_health(body: bytes, created: float, ready: bool) -> dict[str, Any]:
    """{up, cycle_seconds, last_success, cycles, failures, created, ready} from the exposition.

    Missing metrics are None; `failures` sums `aura_cycle_failures_total` over stages.
    """
    found: dict[str, float] = {}
    failures = 0.0
    for name, labels, value in _LINE.findall(body):
        try:
            number = float(value)
        except ValueError:
            continue
        key = name.decode()
        if key == catalog.CYCLE_FAILURES.name:
            failures += number if math.isfinite(number) else 0.0
        elif labels == b"" or labels is None:
            found[key] = number
    return {
        "up": found.get(catalog.UP.name),
        "cycle_seconds": found.get(catalog.CYCLE_DURATION.name),
        "last_success": found.get(catalog.LAST_SUCCESS.name),
        "cycles": found.get(catalog.CYCLES.name),
        "failures": failures,
        "created": created,
        "ready": bool(ready),
    }
