"""One way for the benchmarks to end: the load average after the run, then the JSON results."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def write_results(out: dict[str, Any], output: str | Path) -> None:
    """Record `loadavg_after` in `out`, print the load before/after, write `out` to `output`.

    `out["loadavg_before"]`, when present, is the os.getloadavg() taken at the start.
    """
    out["loadavg_after"] = os.getloadavg()
    before = out.get("loadavg_before")
    if before is not None:
        print(f"load average before {before[0]:.1f}, after {out['loadavg_after'][0]:.1f} "
              f"({os.cpu_count()} cpus)")
    Path(output).parent.mkdir(parents=True, exist_ok=True)
    Path(output).write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {output}")
