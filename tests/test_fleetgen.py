"""benchmarks/fleetgen.py: the independent evaluation fleet honours its contracts and its truth."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from exporter.config import load_config
from exporter.source.csvfile import CsvSource, read_incidents
from tests.fleetgen_module import load_fleetgen

fg = load_fleetgen()


def _gen(out: Path, *extra: str, seed: int = 3, hosts: int = 14, step: int = 300) -> Path:
    rc = fg.main(["--seed", str(seed), "--hosts", str(hosts), "--days", "1", "--step", str(step),
                  "--out", str(out), *extra])
    assert rc == 0
    return out


def _load(out: Path) -> tuple[list[str], list[list[str]], dict]:
    with (out / "data.csv").open() as fh:
        rows = list(csv.reader(fh))
    return rows[0], rows[1:], json.loads((out / "truth.json").read_text())


@pytest.fixture(scope="module")
def fleet(tmp_path_factory) -> Path:
    # Every predictable kind (6) and both sudden kinds on a small fleet.
    return _gen(tmp_path_factory.mktemp("fleet"), "--failures", "6", "--sudden", "2", hosts=24)


def _series(rows: list[list[str]], header: list[str], instance: str, signal: str
            ) -> tuple[np.ndarray, np.ndarray]:
    j = header.index(signal)
    mine = [r for r in rows if r[1] == instance]
    t = np.array([float(r[0]) for r in mine])
    v = np.array([float(r[j]) if r[j] else np.nan for r in mine])
    return t, v


def test_csv_contract_and_project_reader(fleet: Path) -> None:
    header, rows, truth = _load(fleet)
    assert header == ["timestamp", "instance", *fg.SIGNAL_NAMES]
    assert all(len(r) == len(header) for r in rows)
    ts = np.array([float(r[0]) for r in rows])
    assert np.all(np.diff(ts) >= 0)
    assert np.allclose((ts - truth["start"]) % truth["step"], 0)
    assert len({(r[0], r[1]) for r in rows}) == len(rows)      # one row per instance per step
    cells = [c for r in rows for c in r[2:]]
    assert "" in cells                                          # scrape gaps are empty cells
    assert all(c == "" or np.isfinite(float(c)) for c in cells)
    for name in ("cpu", "memory", "disk"):
        _, v = _series(rows, header, rows[0][1], name)
        assert np.nanmin(v) >= 0 and np.nanmax(v) <= 1
    cfg = load_config(fleet / "aura.yml")
    src = CsvSource(fleet / "data.csv", cfg.analysis())
    assert len(src.entities) == len({r[1] for r in rows})
    incs = read_incidents(fleet / "incidents.csv", ["instance"])
    assert len(incs) == 8 and sum("sudden" in i.kind for i in incs) == 2
    assert {i.kind for i in incs} >= set(fg.PREDICTABLE)


def test_config_is_valid_for_the_csv(fleet: Path) -> None:
    cfg = load_config(fleet / "aura.yml")
    a = cfg.analysis()
    assert a.name == "hosts" and a.entity_labels == ("instance",)
    assert float(a.step) == 300 and float(a.window) == 7200
    assert [s.name for s in a.signals] == list(fg.SIGNAL_NAMES)
    caps = {s.name: s.capacity for s in a.signals}
    assert caps["cpu"] == caps["memory"] == caps["disk"] == 1.0
    assert caps["open_connections"] == fg.CONN_LIMIT
    assert {s.kind for s in a.signals} == {"resource", "latency", "errors", "network",
                                           "saturation", "other"}


def test_deterministic_per_seed(tmp_path: Path) -> None:
    a = _gen(tmp_path / "a", hosts=6)
    b = _gen(tmp_path / "b", hosts=6)
    c = _gen(tmp_path / "c", hosts=6, seed=4)
    for name in ("data.csv", "incidents.csv", "truth.json", "aura.yml"):
        assert (a / name).read_bytes() == (b / name).read_bytes()
    assert (a / "data.csv").read_bytes() != (c / "data.csv").read_bytes()


def test_predictable_failures_reach_their_limit_after_a_precursor(fleet: Path) -> None:
    header, rows, truth = _load(fleet)
    failures = [f for h in truth["hosts"] for f in h["failures"] if not f["sudden"]]
    assert {f["kind"] for f in failures} == set(fg.PREDICTABLE)
    for f in failures:
        t, v = _series(rows, header, f["instance"], f["signal"])
        pre = f["start"] - f["precursor_start"]
        assert 30 * 60 - 300 <= pre <= 6 * 3600 + 300, f
        assert f["precursor_start"] >= truth["start"] + 6 * 3600
        at = v[t == f["start"]][0]
        before = np.nanmedian(v[(t < f["precursor_start"]) & (t >= f["precursor_start"] - 7200)])
        capacity = truth["signals"][f["signal"]]["capacity"]
        if capacity is not None:
            assert f["threshold"] == capacity and at >= 0.999 * capacity, f
            assert before < 0.95 * capacity, f
        else:   # a rate over a 2-5 min window lags the level the service fell over at
            assert at >= 0.7 * f["threshold"] and before < 0.3 * f["threshold"], (f, at, before)
        # ... and the service restarts: uptime starts again after the outage.
        tu, up = _series(rows, header, f["instance"], "uptime_seconds")
        after = up[(tu > f["end"]) & np.isfinite(up)]
        assert after[0] < 3600


def test_sudden_failures_have_no_precursor(fleet: Path) -> None:
    header, rows, truth = _load(fleet)
    sudden = [f for h in truth["hosts"] for f in h["failures"] if f["sudden"]]
    assert {f["kind"] for f in sudden} == set(fg.SUDDEN)
    for f in sudden:
        assert f["precursor_start"] == f["start"]
        for name, limit in (("memory", 0.92), ("disk", 0.92), ("open_connections", 0.86 * 1024)):
            t, v = _series(rows, header, f["instance"], name)
            assert np.nanmax(v[(t >= f["start"] - 7200) & (t < f["start"])]) < limit, (f, name)
        t, v = _series(rows, header, f["instance"], "uptime_seconds")
        assert np.isnan(v[t == f["start"]][0])   # the process (or the host) is gone


def test_every_benign_family_present_and_never_fills(tmp_path: Path) -> None:
    out = _gen(tmp_path, "--benign-only", hosts=13)
    header, rows, truth = _load(out)
    assert (out / "incidents.csv").read_text() == "start,end,instance,kind\n"
    assert all(not h["failures"] for h in truth["hosts"])
    present = {f for h in truth["hosts"] for f in h["benign"]}
    assert present == set(fg.FAMILIES)
    cols = {name: header.index(name) for name in ("memory", "disk", "open_connections")}
    for name, j in cols.items():
        v = np.array([float(r[j]) for r in rows if r[j]])
        assert v.max() <= fg.SOFT_CAP[name], name
    # Rollouts bring new instance label values; old ones vanish before the end.
    roll = [h for h in truth["hosts"] if "rollout" in h["benign"]]
    assert roll and all(len(h["instances"]) >= 2 for h in roll)
    assert roll[0]["instances"][0]["to"] < truth["end"]


@pytest.mark.parametrize("family", ["gc_sawtooth", "log_rotation", "rollout"])
def test_single_family_fleet(tmp_path: Path, family: str) -> None:
    out = _gen(tmp_path, "--benign-only", "--families", family, hosts=3, step=600)
    _, _, truth = _load(out)
    assert all(h["benign"] == [family] for h in truth["hosts"])


def test_unknown_family_is_refused(tmp_path: Path, capsys) -> None:
    rc = fg.main(["--seed", "1", "--out", str(tmp_path), "--families", "typo"])
    assert rc == 2 and "unknown family 'typo'" in capsys.readouterr().err
    assert not (tmp_path / "data.csv").exists()


def test_precursor_range_is_honoured_and_checked(tmp_path: Path, capsys) -> None:
    out = _gen(tmp_path / "long", "--failures", "4", "--sudden", "0", "--precursor", "2,8",
               hosts=12)
    _, _, truth = _load(out)
    pre = [f["start"] - f["precursor_start"] for h in truth["hosts"] for f in h["failures"]]
    assert len(pre) == 4 and all(2 * 3600 - 60 <= p <= 8 * 3600 + 60 for p in pre), pre
    rc = fg.main(["--seed", "1", "--out", str(tmp_path / "bad"), "--precursor", "3,1"])
    assert rc == 2 and "--precursor must be MIN,MAX hours" in capsys.readouterr().err
    rc = fg.main(["--seed", "1", "--out", str(tmp_path / "bad"), "--precursor", "two"])
    assert rc == 2 and "expected MIN,MAX hours" in capsys.readouterr().err
    rc = fg.main(["--seed", "1", "--days", "0.5", "--out", str(tmp_path / "bad"),
                  "--precursor", "8,12"])
    assert rc == 2 and "does not fit a 0.5-day fleet" in capsys.readouterr().err


@pytest.mark.parametrize("step", [15, 300])
def test_configs_at_the_models_outer_steps_use_the_shipped_model(tmp_path: Path, step: int) -> None:
    # benchmarks/README.md says fleets at 15 s and 5 m run with the forecast, not abstaining:
    # `aura check-config`'s model check finds nothing to refuse at either end of the card's
    # `trained_for` steps.
    from exporter.checkconfig import model_problems

    out = _gen(tmp_path / f"s{step}", hosts=2, step=step)
    cfg = load_config(out / "aura.yml")
    assert float(cfg.analysis().step) == step
    assert model_problems(cfg) == []
