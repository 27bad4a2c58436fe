"""Benign behaviour never pages (issue 13, item 2): each named benign family of the independent
fleet generator (benchmarks/fleetgen.py, evaluation only), alone on healthy hosts for three
days at 1 m, replayed by the real `aura backtest`, gets no AuraFailure* alert.

One seed per family (31); measured on it before the test was written. The informational
AuraTopologyAnomaly may fire (it never pages).
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from exporter.cli import main
from tests.fleetgen_module import load_fleetgen

fg = load_fleetgen()

# A drift that levels off below capacity still pages when it rises fast: fleetgen-909's
# connections went 15 % -> 85 % of the limit within the hour, and the capacity agent projects
# exhaustion before the curve is significant (benchmarks/README.md, "Drifts levelling off").
KNOWN_TO_PAGE = {"plateau_drift"}


@pytest.mark.parametrize("family", [
    pytest.param(f, marks=pytest.mark.xfail(strict=True, reason="pages on a fast drift"))
    if f in KNOWN_TO_PAGE else f for f in fg.FAMILIES])
def test_a_benign_family_alone_never_pages(tmp_path: Path, family: str) -> None:
    gen = tmp_path / "gen"
    assert fg.main(["--seed", "31", "--hosts", "3", "--days", "3", "--step", "60",
                    "--families", family, "--benign-only", "--out", str(gen)]) == 0
    out = tmp_path / "bt"
    assert main(["backtest", f"--config.file={gen / 'aura.yml'}", f"--input={gen / 'data.csv'}",
                 f"--output-dir={out}", "--no-plots", "--log.level=warn"]) == 0
    with (out / "alerts.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert rows, "the backtest wrote no alerts at all: the baselines always fire somewhere"
    paging = [(r["alertname"], r["instance"], r["top_signal"], r["agents"]) for r in rows
              if r["alertname"].startswith("AuraFailure")]
    assert paging == []
