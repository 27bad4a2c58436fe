"""`aura train` on a user's CSV history + incidents, then fine-tuning from that model (tiny, CPU)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import yaml

pytest.importorskip("torch")

from exporter.cli import main  # noqa: E402


def _write_history(tmp_path: Path) -> tuple[Path, Path, Path]:
    from exporter.source.simulator import simulate_fleet

    fleet = simulate_fleet(11, 8, 1_700_000_000.0, 86400.0, step=60,
                           families=["memory_leak", "disk_fill"], failure_fraction=0.5)
    data = tmp_path / "data.csv"
    sig = ("cpu", "memory", "disk")
    idx = [fleet.signals.index(s) for s in sig]
    with open(data, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["timestamp", "instance", *sig])
        for k, t in enumerate(fleet.timestamps):
            for e, ent in enumerate(fleet.entities):
                vals = fleet.values[e, idx, k]
                w.writerow([f"{t:.0f}", ent[0], *("" if np.isnan(v) else f"{v:.5f}"
                                                  for v in vals)])
    inc = tmp_path / "incidents.csv"
    with open(inc, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["start", "end", "instance", "kind"])
        for i in fleet.incidents:
            w.writerow([f"{i.start:.0f}", "" if i.end is None else f"{i.end:.0f}", i.entity[0],
                        i.kind])
    assert fleet.incidents
    cfg = tmp_path / "aura.yml"
    cfg.write_text(yaml.safe_dump({"analyses": [{
        "name": "hosts", "entity_labels": ["instance"], "window": "2h", "step": "1m",
        "signals": [
            {"name": "cpu", "query": "cpu", "kind": "saturation", "capacity": 1.0},
            {"name": "memory", "query": "memory", "kind": "resource", "capacity": 1.0},
            {"name": "disk", "query": "disk", "kind": "resource", "capacity": 1.0},
        ]}]}))
    return data, inc, cfg


def test_train_from_csv_and_fine_tune(tmp_path):
    from exporter.config import load_config
    from exporter.lnn.predictor import FailurePredictor
    from exporter.source.csvfile import CsvSource

    data, inc, cfg = _write_history(tmp_path)
    out = tmp_path / "models" / "mine"
    common = [f"--config.file={cfg}", f"--input={data}", f"--incidents={inc}", "--seed=3",
              "--epochs=2", "--units=8", "--max-minutes=2", "--stride=15"]
    assert main(["train", *common, f"--output={out}"]) == 0
    card = yaml.safe_load((out / "model.yaml").read_text())
    assert card["name"] == "mine" and card["training"]["seed"] == 3
    assert "CSV" in card["training"]["data"]
    assert set(card["metrics"]["test"]["horizons"]) == {"15m", "30m", "1h", "2h", "4h"}
    assert (out / "model.pt").stat().st_size < 1_000_000

    tuned = tmp_path / "models" / "tuned"
    assert main(["train", *common, f"--output={tuned}", f"--base={out}"]) == 0
    assert yaml.safe_load((tuned / "model.yaml").read_text())["training"]["base"] == str(out)

    analysis = load_config(cfg).analysis()
    src = CsvSource(data, analysis)
    import asyncio

    lo, hi = src.time_range()
    window = asyncio.run(src.fetch(analysis, hi - 7140, hi)).block
    f = FailurePredictor.load(tuned).predict(window, analysis, None)
    assert f.probability.shape == (len(window.entities), 3)
    assert np.isfinite(f.probability).all()
    assert (np.diff(f.probability, axis=1) >= 0).all()


def test_train_refuses_history_without_incidents(tmp_path, capsys):
    data, _inc, cfg = _write_history(tmp_path)
    rc = main(["train", f"--config.file={cfg}", f"--input={data}",
               f"--output={tmp_path / 'm'}"])
    assert rc == 2
    assert "incidents" in capsys.readouterr().out
    assert not (tmp_path / "m").exists()


def test_randomised_corpus_covers_every_step_and_benign_family():
    from dataclasses import replace

    from exporter.lnn.corpus import CORPUS_STEPS, corpus_plan, simulator_corpus
    from exporter.lnn.dataset import build_samples
    from exporter.lnn.trainer import MODEL_HORIZONS
    from exporter.source.simulator import BENIGN_FAMILIES

    # The shipped command's corpus (60 fleets, seed 1): every step, fleets with and without
    # the extra benign families, benign-only fleets.
    plan = corpus_plan(60, 1)
    assert {p.step for p in plan} == set(CORPUS_STEPS)
    assert {p.benign for p in plan} == {BENIGN_FAMILIES, ()}
    assert any(p.families == () for p in plan) and all(p.randomise for p in plan)
    assert {p.step for p in corpus_plan(6, 1, randomise=False)} == {60.0}

    # Small fleets, one per step: each history keeps its own step, re-expressed signals.
    small = [replace(p, entities=4, duration=6 * 3600.0, step=s, benign=BENIGN_FAMILIES)
             for p, s in zip(plan, CORPUS_STEPS, strict=False)]
    corpus = simulator_corpus(0, 1, plans=small)
    assert corpus.trained_for() == {"window": ["2h", "2h"], "step": ["15s", "5m"]}
    assert [float(a.step) for a in corpus.analyses] == list(CORPUS_STEPS)
    assert corpus.domain["benign_families"] == list(BENIGN_FAMILIES)
    assert corpus.domain["signal_changes_fleets"]  # units, noise, subsets... were applied
    for i, (h, a) in enumerate(zip(corpus.histories, corpus.analyses, strict=True)):
        assert h.values.shape[1] == len(a.signals) >= 3
        assert np.allclose(np.diff(h.timestamps), float(a.step))
        s = build_samples(h, a, MODEL_HORIZONS, stride=corpus.strides[i])
        assert len(s) and np.isfinite(s.x).all()
        # Replayed every 10 minutes of simulated time, whatever the step.
        assert np.median(np.diff(np.unique(s.t))) == 600.0


def test_shipped_model_admits_steps_15s_to_5m_at_a_2h_window():
    from exporter.lnn.artifacts import incompatibility, read_card

    card = read_card(Path(__file__).resolve().parents[1] / "models" / "default")
    for step in (15.0, 60.0, 300.0):
        assert incompatibility(card, 7200.0, step) is None
    assert incompatibility(card, 1800.0, 60.0)  # a 30 m window is not what it was trained at
    assert incompatibility(card, 7200.0, 600.0)


def test_time_flags_read_utc_whatever_the_local_zone(monkeypatch) -> None:
    import time

    from exporter.train import TrainError, _time_arg

    monkeypatch.setenv("TZ", "EST+05")
    time.tzset()
    try:
        assert _time_arg("--start", "2023-11-14T00:00:00") == 1699920000.0
        assert _time_arg("--start", "2023-11-14T00:00:00+01:00") == 1699916400.0
        assert _time_arg("--end", "1699920000.5") == 1699920000.5
        with pytest.raises(TrainError, match="--end"):
            _time_arg("--end", "yesterday")
    finally:
        monkeypatch.undo()
        time.tzset()
