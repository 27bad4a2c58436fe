"""benchmarks/eval_generalisation.py's results file: a run of some sources keeps the others."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location(
    "eval_generalisation", ROOT / "benchmarks" / "eval_generalisation.py")
eg = importlib.util.module_from_spec(_spec)
sys.modules["eval_generalisation"] = eg
_spec.loader.exec_module(eg)


def test_a_run_replaces_its_sources_and_keeps_the_others(tmp_path):
    dest = tmp_path / "generalisation.json"
    dest.write_text(json.dumps({"quick": False, "load": [1.0, 2.0], "results": [
        {"source": "asd", "precision": 0.4}, {"source": "fleetgen6-61", "precision": 0.1}]}))
    out = eg.merge_results(dest, [{"source": "fleetgen6-61", "precision": 0.3}], False,
                           [0.5, 0.7])
    assert [(r["source"], r["precision"]) for r in out["results"]] == \
        [("asd", 0.4), ("fleetgen6-61", 0.3)]
    new = out["results"][1]
    assert new["load"] == [0.5, 0.7] and new["measured_at"].endswith("Z")
    assert "measured_at" not in out["results"][0]  # an earlier result keeps what it had
    # A quick run does not mix with full ones; an unreadable file is replaced.
    quick = eg.merge_results(dest, [{"source": "asd"}], True, [0.0, 0.0])
    assert [r["source"] for r in quick["results"]] == ["asd"] and quick["quick"]
    dest.write_text("{not json")
    assert [r["source"] for r in eg.merge_results(dest, [{"source": "x"}], False,
                                                  [0.0, 0.0])["results"]] == ["x"]
