"""AUROC of a backtest's scores before incidents against far from them.

    .venv/bin/python models/scores_auroc.py OUTPUT_DIR INCIDENTS_CSV [ENTITY_LABEL]

Reads OUTPUT_DIR/scores.csv (`aura backtest`) and the incidents CSV (start,end,<label>,...).
Positive rows: in the 4 h before an incident start of that entity; negative rows: more than
12 h from any incident of that entity (rows in between are left out). Prints the AUROC of
each score column, and the median P(fail within 4h) on each side.
"""

from __future__ import annotations

import csv
import sys

import numpy as np

from exporter.lnn.trainer import auroc

BEFORE, FAR = 4 * 3600.0, 12 * 3600.0


def main(out_dir: str, incidents: str, label: str = "server") -> None:
    inc: dict[str, list[tuple[float, float]]] = {}
    with open(incidents, newline="") as f:
        for r in csv.DictReader(f):
            start = float(r["start"])
            inc.setdefault(r[label], []).append((start, float(r["end"] or start + 1800)))
    with open(f"{out_dir}/scores.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    y = np.full(len(rows), -1)
    for i, r in enumerate(rows):
        t, ev = float(r["timestamp"]), inc.get(r[label], [])
        if any(s - BEFORE <= t < s for s, _ in ev):
            y[i] = 1
        elif all(t < s - FAR or t > e + FAR for s, e in ev):
            y[i] = 0
    keep = y >= 0
    out: dict[str, object] = {"rows": len(rows), "before": int((y == 1).sum()),
                              "far": int((y == 0).sum())}
    for col in ("failure_probability_4h", "failure_probability_2h", "failure_probability_1h",
                "risk", "anomaly_score"):
        v = np.array([float(r[col]) if r.get(col) not in (None, "", "nan", "NaN") else np.nan
                      for r in rows])
        ok = keep & np.isfinite(v)
        out[col] = round(auroc(v[ok], y[ok]), 3)
        if col == "failure_probability_4h":
            out["p4h_median_far"] = round(float(np.nanmedian(v[y == 0])), 3)
            out["p4h_median_before"] = round(float(np.nanmedian(v[y == 1])), 3)
            out["p4h_far_share_ge_0.5"] = round(float(np.nanmean(v[y == 0] >= 0.5)), 3)
    print(out)


if __name__ == "__main__":
    main(*sys.argv[1:4])
