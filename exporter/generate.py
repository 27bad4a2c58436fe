"""`aura generate rules|dashboards|kubernetes|metrics`: write the generated files that are committed.

Rules, dashboards and the Kubernetes PrometheusRule come from the catalog and a config;
`metrics` is the golden `/metrics` page of a small deterministic simulated fleet
(tests/fixtures/golden/metrics.prom, checked by tests/test_golden_metrics.py and promtool).

`--check` writes nothing: it compares what is committed with fresh output and exits 1 when
they differ, so CI catches a catalog or config change whose generated files were not updated.
"""

from __future__ import annotations

import argparse
import difflib
import logging
import sys
from collections.abc import Callable
from pathlib import Path

from exporter.config import Config, ConfigError, load_config, parse_config
from exporter.util import atomic_write

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUTPUT = {
    "rules": REPO_ROOT / "rules",
    "dashboards": REPO_ROOT / "grafana",
    "kubernetes": REPO_ROOT / "deploy" / "kubernetes",
    "metrics": REPO_ROOT / "tests" / "fixtures" / "golden",
}
GOLDEN_FILE = "metrics.prom"
# The golden fleet: seed, size, the last cycle's time (2026-01-01T00:00:00Z) and cycles run.
GOLDEN_SEED = 7
GOLDEN_ENTITIES = 6
GOLDEN_END = 1_767_225_600.0
GOLDEN_CYCLES = 3
# Families that depend on the process or the Python build, not on AURA's analysis: left out
# of the golden page (node_exporter's end-to-end test filters go_ and process_ the same way).
UNSTABLE_FAMILIES = ("process_", "python_", "aura_build_info")


def default_config() -> Config:
    """The config the committed files are generated for: one `nodes` analysis, `instance`."""
    return parse_config({"analyses": [{"name": "nodes", "preset": "node"}]})


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add `generate`'s positional `what` and its flags (output, config, dashboards, --check)."""
    parser.add_argument("what", choices=["rules", "dashboards", "kubernetes", "metrics"],
                        help="what to generate")
    parser.add_argument(
        "--output-dir",
        dest="output_dir",
        default=None,
        help="directory to write to (default: the repository's rules/ or grafana/)",
    )
    parser.add_argument(
        "--config.file",
        dest="config_file",
        default=None,
        help="generate for this configuration (default: the built-in node preset on `instance`)",
    )
    parser.add_argument(
        "--dashboard.entity-label",
        dest="entity_label",
        default=None,
        help="label the drill-down's entity variable lists "
        "(default: the first analysis' first entity label)",
    )
    parser.add_argument(
        "--dashboard.source-dir",
        dest="source_dir",
        default=None,
        help="directory holding the *.dashboard.py definitions (default: the output directory)",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 when the files in the output directory are stale",
    )


def outputs(
    what: str, cfg: Config, *, entity_label: str | None = None, source_dir: Path | None = None
) -> dict[str, str]:
    """Fresh output for `what`: file name -> text."""
    if what == "rules":
        from exporter.rulegen import RULES_FILE, render_rules

        return {RULES_FILE: render_rules(cfg)}
    if what == "metrics":
        return {GOLDEN_FILE: golden_metrics()}
    if what == "kubernetes":
        from exporter.rulegen import render_prometheus_rule

        return {"prometheusrule.yaml": render_prometheus_rule(cfg)}
    from exporter.dashboards import render_all

    return render_all(cfg, source_dir or DEFAULT_OUTPUT["dashboards"], entity_label=entity_label)


def golden_metrics() -> str:
    """The `/metrics` page (text format 0.0.4) of a small deterministic fleet, stable families only.

    A real `Pipeline` (shipped model, topology, agents, decision) runs `GOLDEN_CYCLES` one-minute
    cycles over `GOLDEN_ENTITIES` simulated hosts (seed `GOLDEN_SEED`) ending at `GOLDEN_END`,
    host-02 half an hour from a memory leak exhausting it (warning, `raise_memory_limit`); a
    fixed clock makes every duration 0. The families in `UNSTABLE_FAMILIES` are left out.
    Deterministic on one machine; model outputs may differ in the last bits on another CPU
    (the test compares values with a tolerance). Ignores `--config.file`: the fleet is fixed.
    """
    import asyncio

    from exporter.pipeline import Pipeline, load_predictor
    from exporter.source.simulator import (
        FailurePlan,
        SimulatorSource,
        demo_config,
        simulate_fleet,
    )

    cfg = demo_config()
    step, hour = 60.0, 3600.0
    history = 24 * hour + float(cfg.analysis().window) + GOLDEN_CYCLES * step
    leak = FailurePlan(2, "memory_leak", GOLDEN_END + 0.5 * hour, 4 * hour, 30 * 60, "linear")
    fleet = simulate_fleet(GOLDEN_SEED, GOLDEN_ENTITIES, GOLDEN_END - history, history + hour,
                           step, failures=[leak], services=1)
    predictor, info = load_predictor(str(REPO_ROOT / cfg.model.path))
    info = {**info, "model": Path(cfg.model.path).name}  # not the checkout's absolute path
    pipeline = Pipeline(cfg, SimulatorSource(fleet), predictor=predictor, model_info=info,
                        topology_workers=1, clock=lambda: GOLDEN_END)
    try:
        for k in range(GOLDEN_CYCLES):
            asyncio.run(pipeline.run_cycle(GOLDEN_END - (GOLDEN_CYCLES - 1 - k) * step))
        body = pipeline.snapshot.body.decode()
    finally:
        pipeline.close()
    return "".join(line for line in body.splitlines(keepends=True)
                   if not _family(line).startswith(UNSTABLE_FAMILIES))


def _family(line: str) -> str:
    """The metric name a text-format line belongs to (HELP/TYPE comment or sample)."""
    if line.startswith("#"):
        parts = line.split()
        return parts[2] if len(parts) > 2 else ""
    return line.split("{", 1)[0].split(" ", 1)[0]


def check(out_dir: Path, files: dict[str, str], write: Callable[[str], None] = print) -> int:
    """Compare `files` with `out_dir`; report each stale file with a short diff; 1 if any."""
    stale = 0
    for name, text in sorted(files.items()):
        path = out_dir / name
        current = path.read_text() if path.exists() else ""
        if current != text:
            stale += 1
            diff = difflib.unified_diff(
                current.splitlines(), text.splitlines(), str(path), "generated", lineterm="", n=1
            )
            write(f"STALE: {path}")
            for line in list(diff)[:40]:
                write(line)
    return 1 if stale else 0


def run(args: argparse.Namespace) -> int:
    """Write `args.what`'s files atomically into the output directory, or `--check` them.

    Returns 0 on success (or when up to date), 1 for a bad `--config.file` (its problems on
    stderr) or, with `--check`, when a file is stale (a short diff each on stderr).
    """
    try:
        cfg = load_config(args.config_file) if args.config_file else default_config()
    except ConfigError as err:
        for problem in err.problems:
            print(f"{args.config_file}: {problem}", file=sys.stderr)
        return 1
    out_dir = Path(args.output_dir) if args.output_dir else DEFAULT_OUTPUT[args.what]
    source_dir = Path(args.source_dir) if args.source_dir else None
    if args.what == "dashboards" and source_dir is None:
        # Definitions live next to the committed JSON unless told otherwise.
        source_dir = (
            out_dir if any(out_dir.glob("*.dashboard.py")) else DEFAULT_OUTPUT["dashboards"]
        )
    files = outputs(args.what, cfg, entity_label=args.entity_label, source_dir=source_dir)
    if args.check:
        code = check(out_dir, files, lambda line: print(line, file=sys.stderr))
        if code == 0:
            print(f"OK: {len(files)} {args.what} file(s) in {out_dir} are up to date")
        else:
            print(f"run `aura generate {args.what}` to update {out_dir}", file=sys.stderr)
        return code
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, text in sorted(files.items()):
        path = out_dir / name
        atomic_write(path, text)
        log.info("generated what=%s path=%s", args.what, path)
    print(f"wrote {len(files)} {args.what} file(s) to {out_dir}")
    return 0
