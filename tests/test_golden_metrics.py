"""The golden `/metrics` page: a small deterministic fleet rendered end to end, names to values.

tests/fixtures/golden/metrics.prom is what `exporter.generate.golden_metrics` renders (a real
pipeline over six simulated hosts, the shipped model, a fixed clock). A change to any metric
name, label, HELP text, series set or analysis figure shows up here as a diff; regenerate with
`.venv/bin/aura generate metrics` when the change is meant, and say why in the commit.
"""

from __future__ import annotations

import math
import shutil
import subprocess

import pytest

from exporter import catalog
from exporter.generate import DEFAULT_OUTPUT, GOLDEN_FILE, UNSTABLE_FAMILIES, golden_metrics

GOLDEN = DEFAULT_OUTPUT["metrics"] / GOLDEN_FILE
REGENERATE = "run `.venv/bin/aura generate metrics` if the change is meant"
# torch and BLAS may round the model's outputs differently on another CPU; nothing AURA means
# by a figure changes at this tolerance, while any real change of a series moves it further.
RTOL, ATOL = 1e-6, 1e-9

pytest.importorskip("torch")


def _split(text: str) -> list[tuple[str, str]]:
    """Lines as (series or comment, value): comments keep the whole line and an empty value."""
    out = []
    for line in text.splitlines():
        if line.startswith("#"):
            out.append((line, ""))
        else:
            series, _, value = line.rpartition(" ")
            out.append((series, value))
    return out


def _value(text: str) -> float:
    return float(text.replace("+Inf", "inf").replace("-Inf", "-inf"))


@pytest.fixture(scope="module")
def fresh() -> str:
    return golden_metrics()


def test_fresh_render_matches_the_golden_page(fresh: str) -> None:
    want, got = _split(GOLDEN.read_text()), _split(fresh)
    assert [s for s, _ in got] == [s for s, _ in want], f"series or HELP changed: {REGENERATE}"
    for (series, a), (_, b) in zip(got, want, strict=True):
        if a or b:
            assert math.isclose(_value(a), _value(b), rel_tol=RTOL, abs_tol=ATOL), (
                f"{series}: {a} != golden {b}: {REGENERATE}")


def test_golden_page_covers_the_catalog_and_nothing_unstable() -> None:
    text = GOLDEN.read_text()
    names = {line.split()[2] for line in text.splitlines() if line.startswith("# TYPE ")}
    stable = {m.name for m in catalog.ALL if not m.name.startswith(UNSTABLE_FAMILIES)}
    assert names == stable, names ^ stable
    # The leaking host is warned about, with its action; the healthy ones are not.
    assert 'aura_risk_level{analysis="fleet",instance="host-02:9100"} 2.0' in text
    assert 'instance="host-02:9100",action="raise_memory_limit"} 1.0' in text
    assert 'aura_risk_level{analysis="fleet",instance="host-00:9100"} 0.0' in text


@pytest.mark.stack
def test_promtool_check_metrics_on_the_golden_page() -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool missing: scripts/setup.sh --stack installs it"
    out = subprocess.run([promtool, "check", "metrics"], input=GOLDEN.read_bytes(),
                         capture_output=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.strip() == b"" and out.stderr.strip() == b"", out.stdout + out.stderr
