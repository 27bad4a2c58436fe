"""benchmarks/fleetgen3.py: the third evaluation fleet is readable by AURA as a new user's
files, and its incidents say which failures are sudden (so reports score them apart)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from exporter.config import load_config
from exporter.incidents import Incident
from exporter.source.csvfile import CsvSource, read_incidents

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def fleet(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("fg3") / "f"
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "fleetgen3.py"), "31", str(out)],
                   check=True, capture_output=True)
    return out


def test_files_load_as_aura_reads_them(fleet: Path) -> None:
    cfg = load_config(fleet / "aura.yml")
    an = cfg.analyses[0]
    src = CsvSource(fleet / "data.csv", an)
    assert len(src.entities) == 36 and src.step == 60.0
    assert src.values.shape == (36, len(an.signals), 4 * 1440)
    incidents = read_incidents(fleet / "incidents.csv", an.entity_labels)
    assert len(incidents) == 9
    assert {i.entity for i in incidents} <= set(src.entities)


def test_sudden_failures_are_marked_as_the_truth_says(fleet: Path) -> None:
    truth = json.loads((fleet / "truth.json").read_text())
    sudden = {(h, float(f["start"])) for h, v in truth["hosts"].items()
              for f in v["failures"] if f["sudden"]}
    incidents: list[Incident] = read_incidents(fleet / "incidents.csv", ("instance",))
    assert len(sudden) == 3
    assert {(i.entity[0], i.start) for i in incidents if i.sudden} == sudden
    assert all(i.kind.startswith("sudden_") == i.sudden for i in incidents)
