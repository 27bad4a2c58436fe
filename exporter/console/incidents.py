"""Incidents recorded by the Alertmanager webhook (exporter.incident_recorder), newest first.

Read from the recorder's CSV in the state directory (written atomically, so a read never sees
half a file); absent when no state directory is configured. Rows that do not parse are
skipped and counted.
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path
from typing import Any

from exporter.incident_recorder import CSV_NAME

log = logging.getLogger("aura.console")


def recent(state_dir: str | Path | None, limit: int = 50) -> dict[str, Any]:
    """{configured, incidents: [{start, end, kind, labels}], total, skipped} (newest first)."""
    if not state_dir:
        return {"configured": False, "incidents": [], "total": 0, "skipped": 0}
    path = Path(state_dir) / CSV_NAME
    rows: list[dict[str, Any]] = []
    skipped = 0
    try:
        with path.open(newline="") as f:
            for rec in csv.DictReader(f):
                try:
                    labels = {k: v for k, v in rec.items()
                              if k not in ("start", "end", "kind") and k is not None and v}
                    rows.append({"start": float(rec["start"]),
                                 "end": float(rec["end"]) if rec.get("end") else None,
                                 "kind": rec.get("kind") or "", "labels": labels})
                except (KeyError, TypeError, ValueError):
                    skipped += 1
    except FileNotFoundError:
        pass
    except OSError as err:
        log.warning("cannot read incidents path=%s err=%r", path, err)
    if skipped:
        log.warning("incidents rows skipped path=%s count=%d", path, skipped)
    rows.sort(key=lambda r: -r["start"])
    return {"configured": True, "incidents": rows[:limit], "total": len(rows),
            "skipped": skipped}
