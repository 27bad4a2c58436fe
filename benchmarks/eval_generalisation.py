"""Precision and recall on sources the model was never trained on, next to the baselines.

Runs `aura backtest` (the real CLI, one subprocess per source) on

  a. `asd`: the real application servers of ../shared/data/asd (8 servers, 5 m step, 46
     expert-labelled incidents in the 15-day test periods), replayed from 3 days before the
     test periods (`benchmarks/asd/aura-asd.yml`);
  b. `fleetgen-<seed>`: fleets of benchmarks/fleetgen.py, the independent generator written
     without reading AURA's simulator (evaluation only, never training or tuning);
     `fleetgen-long-<seed>`: the same with precursors of 2-8 h instead of 30 min - 6 h, where
     a 2-4 h warning is possible for every predictable failure (the median-lead target);
     `fleetgen3-<seed>`: benchmarks/fleetgen3.py, a third generator written the same way by
     another session (raw units, per-host RAM and disk sizes, fleet-wide surges, rolling
     deploys; its own aura.yml as a new user wrote it);
     `fleetgen4-<seed>`: benchmarks/fleetgen4.py, a fourth, Kubernetes pods at 30 s (pod
     churn from rollouts and autoscaling), written the same way by another session;
     `fleetgen5-<seed>`: benchmarks/fleetgen5.py, a fifth, VM and database hosts over 8 days
     at 1 m (weekly cycle, backups, patch reboots, slow failures), written the same way;
     `fleetgen6-<seed>`: benchmarks/fleetgen6.py, a sixth, microservices at the service
     level (entities `namespace` + `service`, 3 days at 15 s: a call graph, deploys,
     autoscaling, queue backlogs, cascades), written the same way;
  c. `sim-<seed>`: held-out seeds of AURA's own simulator (training used 1000-1059);

and prints, per source, AURA's failure alerts (AuraFailurePredicted ∪ AuraFailureRisk) next
to the `predict_linear` and static-threshold baselines computed in the same run: precision,
recall at lead >= 0 / 30 m / 2 h, predictable incidents detected at any lead (an alert
before or during them), false alerts per entity-day, median lead, the share of
healthy evaluations spent alerting (outside every incident's match window), and sudden
failures alerted before their start. Results go to benchmarks/results/generalisation.json
(merged by source: a run of some sources keeps the others' earlier results, each stamped
with when it was measured).

    .venv/bin/python benchmarks/eval_generalisation.py [--sources asd,fleetgen-101,sim-4243]
        [--quick] [--keep DIR]

--quick: fleets of 16 hosts x 2 days, ASD servers' last 6 test days (a smoke run, minutes).
Not a test: it asserts nothing. Figures are in benchmarks/README.md with the date and load.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
AURA = [sys.executable, "-m", "exporter.cli"]
SYSTEMS = (("AURA", "aura_any_failure_alert"), ("predict_linear", "BaselinePredictLinear"),
           ("static threshold", "BaselineStaticThreshold"))
DEFAULT_SOURCES = "asd,fleetgen-101,fleetgen-202,sim-4243"
FLEET_START = 1791000000


def _run(args: list[str], log: Path) -> None:
    with log.open("w") as f:
        done = subprocess.run(args, cwd=ROOT, stdout=f, stderr=subprocess.STDOUT, check=False)
    if done.returncode != 0:
        tail = log.read_text()[-2000:]
        raise SystemExit(f"command failed ({done.returncode}): {' '.join(args)}\n{tail}")


def _asd(work: Path, quick: bool) -> tuple[Path, Path, Path, dict[str, Any]]:
    """The ASD CSV from 3 days before the test periods (or 3 days before the last 6 days)."""
    src = SHARED / "data" / "asd"
    split = list(csv.DictReader((src / "split.csv").open()))
    test_start = min(float(r["test_start"]) for r in split)
    with gzip.open(src / "data.csv.gz", "rt") as f:
        rows = list(csv.reader(f))
    last = max(float(r[0]) for r in rows[1:])
    scored_from = last - 6 * 86400 if quick else test_start
    begin = scored_from - 3 * 86400
    data = work / "asd.csv"
    with data.open("w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(rows[0])
        w.writerows(r for r in rows[1:] if float(r[0]) >= begin)
    incidents = work / "asd-incidents.csv"
    with incidents.open("w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["start", "end", "server", "kind"])  # the expert's `signals` column dropped
        for r in csv.DictReader((src / "incidents.csv").open()):
            if float(r["start"]) >= scored_from:
                w.writerow([r["start"], r["end"], r["server"], r["kind"]])
    return ROOT / "benchmarks" / "asd" / "aura-asd.yml", data, incidents, {
        "scored_from": scored_from}


def _fleetgen(work: Path, seed: int, quick: bool,
              long: bool = False) -> tuple[Path, Path, Path, dict[str, Any]]:
    name = f"fleetgen-long-{seed}" if long else f"fleetgen-{seed}"
    out = work / name
    hosts, days = ("16", "2") if quick else ("48", "3")
    # "long": precursors of 2-8 h, where a 2-4 h warning is possible for every failure.
    precursor = "2,8" if long else "0.5,6"
    _run([sys.executable, "benchmarks/fleetgen.py", "--seed", str(seed), "--hosts", hosts,
          "--days", days, "--step", "60", "--precursor", precursor, "--out", str(out)],
         work / f"{name}.log")
    return out / "aura.yml", out / "data.csv", out / "incidents.csv", {}


def _own_config_fleet(work: Path, generator: str, seed: int,
                      quick: bool) -> tuple[Path, Path, Path, dict[str, Any]]:
    """benchmarks/<generator>.py's fleet with its own aura.yml as a new user wrote it
    (fleetgen3: 4 days at 1 m; fleetgen4: pods, 3 days at 30 s; fleetgen5: 8 days at 1 m;
    fleetgen6: services, 3 days at 15 s);
    no quick form: the generators' sizes are fixed."""
    out = work / f"{generator}-{seed}"
    _run([sys.executable, f"benchmarks/{generator}.py", str(seed), str(out)],
         work / f"{generator}-{seed}.log")
    return out / "aura.yml", out / "data.csv", out / "incidents.csv", {}


def _sim(work: Path, seed: int, quick: bool) -> tuple[Path, Path, Path, dict[str, Any]]:
    from exporter.source.simulator import fleet_signals

    hosts, duration = ("16", "2d") if quick else ("48", "3d")
    data, incidents = work / f"sim-{seed}.csv", work / f"sim-{seed}-incidents.csv"
    _run([*AURA, "simulate", "--scenario=mixed", f"--entities={hosts}", f"--duration={duration}",
          "--step=1m", f"--seed={seed}", f"--start={FLEET_START}", "--format=csv",
          f"--output={data}", f"--incidents={incidents}"], work / f"sim-{seed}.log")
    signals = [{k: v for k, v in {"name": s.name, "capacity": s.capacity, "kind": s.kind,
                                  "direction": s.direction}.items() if v is not None}
               for s in fleet_signals()]
    config = work / f"sim-{seed}.yml"
    config.write_text(yaml.safe_dump({
        "interval": "1m",
        "analyses": [{"name": "nodes", "entity_labels": ["instance"], "window": "2h",
                      "step": "1m", "horizons": ["1h", "2h", "4h"], "signals": signals}],
    }, sort_keys=False))
    return config, data, incidents, {}


def _healthy_alerting(out: Path, labels: tuple[str, ...],
                      report: dict[str, Any]) -> float | None:
    """Share of healthy evaluations (outside every match window) at level >= 1; an entity is
    identified by its `labels` (the analysis' entity labels)."""
    horizon = float(report["largest_horizon_seconds"])
    windows: dict[tuple[str, ...], list[tuple[float, float]]] = {}
    for inc in report["incidents"]:
        end = inc["end"] if inc["end"] is not None else float("inf")
        key = tuple(inc["entity"][k] for k in labels)
        windows.setdefault(key, []).append((inc["start"] - horizon, end))
    healthy = alerting = 0
    with (out / "scores.csv").open() as f:
        for r in csv.DictReader(f):
            t = float(r["timestamp"])
            if any(a <= t <= b for a, b in windows.get(tuple(r[k] for k in labels), ())):
                continue
            healthy += 1
            alerting += r["level"] in ("1", "2")
    return alerting / healthy if healthy else None


def evaluate(name: str, work: Path, quick: bool) -> dict[str, Any]:
    kind, _, seed = name.rpartition("-") if name != "asd" else ("asd", "", "")
    if kind == "asd":
        config, data, incidents, extra = _asd(work, quick)
        labels: tuple[str, ...] = ("server",)
    elif kind in ("fleetgen", "fleetgen-long") and seed.isdigit():
        config, data, incidents, extra = _fleetgen(work, int(seed), quick, kind != "fleetgen")
        labels = ("instance",)
    elif kind in ("fleetgen3", "fleetgen4", "fleetgen5", "fleetgen6") and seed.isdigit():
        config, data, incidents, extra = _own_config_fleet(work, kind, int(seed), quick)
        labels = {"fleetgen4": ("pod",), "fleetgen6": ("namespace", "service")}.get(
            kind, ("instance",))
    elif kind == "sim" and seed.isdigit():
        config, data, incidents, extra = _sim(work, int(seed), quick)
        labels = ("instance",)
    else:
        raise SystemExit(f"unknown source {name!r} (asd, fleetgen-SEED, fleetgen-long-SEED, "
                         "fleetgen3-SEED, fleetgen4-SEED, fleetgen5-SEED, fleetgen6-SEED, sim-SEED)")
    out = work / f"bt-{name}"
    started = time.monotonic()
    _run([*AURA, "backtest", f"--config.file={config}", f"--input={data}",
          f"--incidents={incidents}", f"--output-dir={out}", "--no-plots"],
         work / f"bt-{name}.log")
    report = json.loads((out / "report.json").read_text())
    figures: dict[str, Any] = {
        "source": name, "seconds": round(time.monotonic() - started, 1),
        "entity_days": report["entity_days"], "incidents": report["incidents_scored"],
        "sudden": report["sudden_incidents"],
        "healthy_alerting": _healthy_alerting(out, labels, report),
        "model_status": report.get("model", {}).get("status"),
        "false_alert_causes": report.get("false_alert_causes", [])[:5], **extra,
    }
    for title, key in SYSTEMS:
        s = report["systems"][key]
        figures[title] = {
            "alerts": s["alerts"], "precision": s["precision"],
            "recall": s["recall"], "false_alerts_per_entity_day": s["false_alerts_per_entity_day"],
            "median_lead_seconds": s["lead_time_seconds_quantiles"]["p50"],
            # Predictable incidents with an alert anywhere in [start - horizon, end]: before
            # or during (a detection after the start still counts; recall counts lead >= x).
            "detected": s["detected"], "predictable": s["incidents"],
            "sudden_alerted_before_start": s["sudden"]["alerted_before_start"],
        }
    return figures


def _fmt(v: float | None, digits: int = 2) -> str:
    return "—" if v is None else f"{v:.{digits}f}"


def print_table(results: list[dict[str, Any]]) -> None:
    print("| source | system | alerts | precision | recall ≥0 / ≥30m / ≥2h | detected "
          "| false/entity-day | median lead | sudden alerted early |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in results:
        for title, _ in SYSTEMS:
            s = r[title]
            rec = " / ".join(_fmt(s["recall"][k]) for k in ("lead_ge_0s", "lead_ge_30m",
                                                            "lead_ge_2h"))
            lead = s["median_lead_seconds"]
            print(f"| {r['source']} ({r['incidents']} inc, {r['entity_days']:.0f} entity-days) "
                  f"| {title} | {s['alerts']} | {_fmt(s['precision'])} | {rec} | "
                  f"{s['detected']}/{s['predictable']} | "
                  f"{_fmt(s['false_alerts_per_entity_day'], 3)} | "
                  f"{'—' if lead is None else f'{lead / 60:.0f} min'} | "
                  f"{s['sudden_alerted_before_start']}/{r['sudden']} |")
    print()
    for r in results:
        share = r["healthy_alerting"]
        print(f"{r['source']}: AURA alerting in {_fmt(None if share is None else 100 * share)} % "
              f"of healthy evaluations; model status {r['model_status']}; {r['seconds']} s")
        for c in r["false_alert_causes"]:
            print(f"    false alerts {c['false_alerts']:4d} on {c['entities']:3d} entities: "
                  f"{c['cause']}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sources", default=DEFAULT_SOURCES)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--keep", default=None, help="keep the backtest outputs in this directory")
    args = p.parse_args(argv)
    load = os.getloadavg()
    results = []
    with tempfile.TemporaryDirectory(prefix="aura-gen-") as tmp:
        work = Path(args.keep or tmp)
        work.mkdir(parents=True, exist_ok=True)
        for name in args.sources.split(","):
            results.append(evaluate(name.strip(), work, args.quick))
            print(f"done {name}: {results[-1]['seconds']} s", file=sys.stderr)
    print_table(results)
    after = os.getloadavg()
    print(f"\nload average before {load[0]:.1f}, after {after[0]:.1f}")
    dest = ROOT / "benchmarks" / "results" / "generalisation.json"
    dest.write_text(json.dumps(merge_results(dest, results, args.quick, [load[0], after[0]]),
                               indent=1, default=float))
    return 0


def merge_results(dest: Path, results: list[dict[str, Any]], quick: bool,
                  load: list[float]) -> dict[str, Any]:
    """The results file after this run: its sources replaced, every other source of an
    earlier run of the same kind (`quick` or not) kept, each result stamped with when it was
    measured and the load then (a run of one source used to overwrite the other nineteen).
    An unreadable file, or one of the other kind, is replaced."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    for r in results:
        r.setdefault("measured_at", stamp)
        r.setdefault("load", load)
    try:
        old = json.loads(dest.read_text())
        kept = old["results"] if old.get("quick") == quick else []
    except (OSError, ValueError, KeyError, TypeError):
        kept = []
    run = {r["source"] for r in results}
    merged = [r for r in kept if r.get("source") not in run] + results
    return {"quick": quick, "load": load, "results": merged}


if __name__ == "__main__":
    sys.exit(main())
