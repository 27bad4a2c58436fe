"""Fault injection: the state directory full, unwritable or deleted mid-run; wall-clock jumps.

Every fault must cost at most the state save of that cycle: counted in
`aura_cycle_failures_total{stage="state"}`, logged once, the snapshot still swapped and ready.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import shutil

import numpy as np

from exporter.config import parse_config
from exporter.pipeline import Pipeline
from exporter.state import StateError, StateStore
from tests.arrays import ArraySource

STEP = 60.0
T0 = STEP * 30_000


def _cfg(state_dir):
    return parse_config({
        "interval": "1m", "state_dir": str(state_dir),
        "analyses": [{"name": "fleet", "window": "30m", "step": "1m",
                      "topology": {"bootstrap": "0s"}, "signals": [
                          {"name": "memory", "query": "m", "capacity": 1.0, "kind": "resource"},
                          {"name": "cpu", "query": "c", "capacity": 1.0, "kind": "saturation"}]}],
    })


def _source(n_steps=400):
    rng = np.random.default_rng(0)
    ts = T0 + STEP * np.arange(n_steps)
    values = 0.3 + 0.05 * rng.standard_normal((3, 2, n_steps))
    return ArraySource([(f"h{i}",) for i in range(3)], ("memory", "cpu"), ts, values)


def _state_failures(pipe: Pipeline) -> float:
    for line in pipe.snapshot.body.decode().splitlines():
        if line.startswith('aura_cycle_failures_total{stage="state"}'):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError("aura_cycle_failures_total{stage=\"state\"} missing")


class FullDisk(StateStore):
    """A real store whose writes fail as on a full file system while `full` is set."""

    full = True

    def save(self, name, arrays):
        if self.full:
            raise StateError(f"cannot write state {self.path(name)}: "
                             f"{errno.errorcode[errno.ENOSPC]} No space left on device")
        super().save(name, arrays)


def _cycle(pipe: Pipeline, k: int) -> None:
    asyncio.run(pipe.run_cycle(T0 + STEP * (100 + k)))


def test_state_dir_full_is_counted_logged_once_and_recovers(tmp_path, caplog):
    store = FullDisk(tmp_path / "state")
    pipe = Pipeline(_cfg(tmp_path / "state"), _source(), state=store, topology_workers=1)
    with caplog.at_level(logging.INFO):
        for k in range(3):
            _cycle(pipe, k)
        assert pipe.snapshot.ready and pipe.stats.cycles_total == 3
        assert _state_failures(pipe) == 3
        assert len(pipe.snapshot.results[0].entities) == 3  # the analysis itself is intact
        store.full = False
        _cycle(pipe, 3)
    pipe.close()
    messages = [r.getMessage() for r in caplog.records]
    assert sum("cannot save state" in m for m in messages) == 1  # logged once, not per cycle
    assert sum("state saved again" in m for m in messages) == 1
    assert _state_failures(pipe) == 3 and (tmp_path / "state" / "fleet.npz").is_file()
    assert pipe.stats.last_success is not None


def test_state_dir_unwritable_never_blocks_readiness(tmp_path):
    # Running as root, permissions do not stop writes: a file where the directory should be
    # fails the same way a read-only mount does (the save cannot create its file).
    blocked = tmp_path / "state"
    blocked.write_text("not a directory")
    pipe = Pipeline(_cfg(blocked), _source(), state=StateStore(blocked), topology_workers=1)
    _cycle(pipe, 0)
    pipe.close()
    assert pipe.snapshot.ready and _state_failures(pipe) == 1
    assert b'aura_analysis_entities{analysis="fleet"} 3' in pipe.snapshot.body


def test_state_dir_deleted_mid_run_is_recreated(tmp_path):
    state_dir = tmp_path / "state"
    pipe = Pipeline(_cfg(state_dir), _source(), state=StateStore(state_dir), topology_workers=1)
    _cycle(pipe, 0)
    assert (state_dir / "fleet.npz").is_file()
    shutil.rmtree(state_dir)
    _cycle(pipe, 1)
    pipe.close()
    assert _state_failures(pipe) == 0 and (state_dir / "fleet.npz").is_file()
    # The recreated state restores: a restart fetches only the newest steps.
    src = _source()
    again = Pipeline(_cfg(state_dir), src, state=StateStore(state_dir), topology_workers=1)
    asyncio.run(again.run_cycle(T0 + STEP * 102))
    again.close()
    (start, end), = src.calls
    assert end - start < 10 * STEP


def test_wall_clock_jump_back_refetches_and_keeps_serving(tmp_path):
    src = _source()
    pipe = Pipeline(_cfg(tmp_path / "s"), src, topology_workers=1)
    late = T0 + STEP * 300
    asyncio.run(pipe.run_cycle(late))
    src.calls.clear()
    early = T0 + STEP * 200  # the clock is set back 100 minutes
    asyncio.run(pipe.run_cycle(early))
    (start, end), = src.calls
    assert end == early and end - start >= 29 * STEP  # the whole window again
    window = pipe.snapshot.results[0].window
    assert window.timestamps[-1] == early
    np.testing.assert_array_equal(window.values, src.values[:, :, 171:201])
    assert pipe.snapshot.ready and pipe.stats.failures_total.get("ingest", 0) == 0
    pipe.close()


def test_wall_clock_jump_forward_starts_a_fresh_window(tmp_path):
    src = _source()
    pipe = Pipeline(_cfg(tmp_path / "s"), src, topology_workers=1)
    asyncio.run(pipe.run_cycle(T0 + STEP * 100))
    src.calls.clear()
    later = T0 + STEP * 350  # 250 minutes later: nothing held is inside the new window
    asyncio.run(pipe.run_cycle(later))
    (start, end), = src.calls
    assert end == later and end - start >= 29 * STEP
    window = pipe.snapshot.results[0].window
    np.testing.assert_array_equal(window.values, src.values[:, :, 321:351])
    pipe.close()


def test_webhook_with_unwritable_state_dir_answers_503_not_500(tmp_path):
    import json

    from exporter.config import IncidentsConfig
    from exporter.incident_recorder import IncidentRecorder, IncidentStoreError
    from tests.test_fuzz_inputs import VALID_WEBHOOK

    blocked = tmp_path / "state"
    blocked.write_text("not a directory")
    recorder = IncidentRecorder(blocked, IncidentsConfig(), {"nodes": ("instance",)})
    try:
        recorder.record(json.dumps(VALID_WEBHOOK).encode())
    except IncidentStoreError as err:
        assert "cannot write" in str(err)
    else:
        raise AssertionError("an unwritable state dir must be reported")
