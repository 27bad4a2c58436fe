"""The exporter's own health, read from the snapshot's exposition bytes.

The console shows exactly what `/metrics` says (`aura_up`, cycle duration, last successful
cycle, cycles run, stage failures), so it needs no handle on the pipeline: the self metrics are
found in the cached body by name (from `exporter.catalog`).
"""

from __future__ import annotations

import math
from typing import Any

from exporter import catalog


def _values(body: bytes, name: str) -> list[float]:
    """Values of every sample of metric `name` (with or without labels): the lines right after
    its `# TYPE` line, as the text format groups a metric's samples.

    One `bytes.find` of the distinctive `# TYPE name ` per metric: a regular expression over a
    7 MB exposition held the GIL for ~180 ms, a search for a newline-led name ~60 ms.
    """
    out: list[float] = []
    # rfind: the renderer writes the self metrics last, so this search is short.
    at = body.rfind(f"# TYPE {name} ".encode())
    if at == -1:
        return out
    at = body.find(b"\n", at) + 1
    key = name.encode()
    while 0 < at < len(body):
        end = body.find(b"\n", at)
        end = len(body) if end == -1 else end
        line = body[at:end]
        if not (line.startswith(key) and line[len(key):len(key) + 1] in (b" ", b"{")):
            break
        try:
            out.append(float(line.rsplit(b" ", 1)[1]))
        except (ValueError, IndexError):
            pass
        at = end + 1
    return out


def exporter_health(body: bytes, created: float, ready: bool) -> dict[str, Any]:
    """{up, cycle_seconds, last_success, cycles, failures, created, ready} from the exposition.

    Missing metrics are None; `failures` sums `aura_cycle_failures_total` over stages.
    """
    def one(metric: catalog.Metric) -> float | None:
        values = _values(body, metric.name)
        return values[0] if values else None

    failures = sum(v for v in _values(body, catalog.CYCLE_FAILURES.name) if math.isfinite(v))
    return {
        "up": one(catalog.UP),
        "cycle_seconds": one(catalog.CYCLE_DURATION),
        "last_success": one(catalog.LAST_SUCCESS),
        "cycles": one(catalog.CYCLES),
        "failures": failures,
        "created": created,
        "ready": bool(ready),
    }
