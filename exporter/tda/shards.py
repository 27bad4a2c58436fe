"""One analysis' topology stage split by entity over processes, for replays (`aura backtest
--jobs N`).

Everything the topology stage keeps is per entity (baselines, reservoirs, histories) except
the fleet terms (fleet outliers, fleet Betti) and the one-signal score embedding (Takens
parameters chosen from the first window seen). So each of N child processes runs its own
`TopologyStage` (persistence inline) on the entities whose `shard_of(key, N)` is its index,
for whole batches of windows; the parent chooses the Takens parameters from the first full
window and sends them to every child, merges the children's rows back into each window's
entity order and computes the fleet terms on the merged features exactly as `TopologyStage`
does (`FleetTopology`, same order keys). The results are those of one `TopologyStage`
(tests/test_backtest_batched.py). Children start with the `forkserver` method, as the
persistence pool's workers do.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from exporter.config import AnalysisConfig
from exporter.results import TopologyResult
from exporter.tda.fleet import FleetTopology
from exporter.windows import Window, shard_of

log = logging.getLogger(__name__)


def _serve(conn: Any, analysis: AnalysisConfig) -> None:
    """Child loop: one `TopologyStage` of this shard's entities, driven over `conn`."""
    from exporter.tda.persistence import _init_worker
    from exporter.tda.stage import TopologyStage

    _init_worker()
    stage = TopologyStage(analysis, workers=1)
    try:
        while True:
            msg = conn.recv()
            if msg is None:
                return
            op, args = msg
            try:
                out: Any = None
                if op == "takens":
                    stage._takens = args
                elif op == "learn":
                    stage.learn(*args)
                elif op == "batch":
                    out = _batch(stage, *args)
                conn.send(("ok", out))
            except Exception as err:  # reported to the parent, which raises TopologyError
                conn.send(("error", repr(err)))
    finally:
        stage.close()


def _batch(stage: Any, windows: list[Window], nows: list[float],
           options: dict[str, bool]) -> list[TopologyResult | None]:
    """`run_batch` over runs of non-empty windows; a window without this shard's entities
    counts towards forgetting them all, as the whole stage would (its entities are missing
    from the source: `BaselineStore.forget`)."""
    out: list[TopologyResult | None] = [None] * len(windows)
    k = 0
    while k < len(windows):
        if not windows[k].entities:
            if stage._store is not None:
                stage._store.forget(set(), nows[k])
            k += 1
            continue
        j = k
        while j < len(windows) and windows[j].entities:
            j += 1
        out[k:j] = stage.run_batch(windows[k:j], nows[k:j], **options)
        k = j
    return out


class TopologyShards:
    """`TopologyStage.run_batch` / `learn` of one analysis over `jobs` processes.

    Parameters
    ----------
    analysis: the analysis.
    jobs: child processes (>= 2; entities are split by `shard_of(key, jobs)`).

    Offline only: no `run`, and `state()` is empty (a backtest keeps no state).
    """

    def __init__(self, analysis: AnalysisConfig, jobs: int):
        import multiprocessing

        from exporter.tda.stage import TopologyError

        if jobs < 2:
            raise TopologyError(f"TopologyShards needs jobs >= 2, got {jobs}")
        self.analysis = analysis
        self.jobs = jobs
        self._takens: tuple[int, int] | None = None
        ctx = multiprocessing.get_context("forkserver")
        self._conns = []
        self._procs = []
        for _ in range(jobs):
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_serve, args=(child, analysis), daemon=True)
            proc.start()
            child.close()
            self._conns.append(parent)
            self._procs.append(proc)
        log.info("msg=%s jobs=%d", "topology shards started", jobs)

    def _split(self, window: Window) -> list[np.ndarray]:
        shard = np.array([shard_of(e, self.jobs) for e in window.entities], dtype=np.int64)
        return [np.flatnonzero(shard == j) for j in range(self.jobs)]

    def _ask(self, requests: list[tuple[str, Any] | None]) -> list[Any]:
        """Send each child its request (None: nothing), then collect the answers."""
        from exporter.tda.stage import TopologyError

        try:
            for conn, req in zip(self._conns, requests, strict=True):
                if req is not None:
                    conn.send(req)
            out: list[Any] = []
            for conn, req in zip(self._conns, requests, strict=True):
                if req is None:
                    out.append(None)
                    continue
                status, value = conn.recv()
                if status != "ok":
                    raise TopologyError(f"topology shard failed: {value}")
                out.append(value)
            return out
        except (OSError, EOFError) as err:
            self.close()
            raise TopologyError(f"topology shard lost: {err!r}") from err

    def _ensure_takens(self, window: Window) -> None:
        if self._takens is None:
            from exporter.tda.stage import score_embedding

            self._takens = score_embedding(np.asarray(window.values, dtype=np.float64))
            self._ask([("takens", self._takens)] * self.jobs)

    def learn(self, window: Window, now: float) -> None:
        """`TopologyStage.learn` of each shard's rows (the cold-start bootstrap)."""
        self._ensure_takens(window)
        parts = self._split(window)
        self._ask([("learn", (window.select(rows), now)) if len(rows) else None
                   for rows in parts])

    def run_batch(self, windows: Sequence[Window], nows: Sequence[float], *,
                  features: bool = True, fleet_betti: bool = True) -> list[TopologyResult]:
        """`TopologyStage.run_batch(windows, nows, ...)`: the same results (see the module
        docstring)."""
        from exporter.tda.stage import TopologyError

        if len(windows) != len(nows):
            raise TopologyError(f"run_batch got {len(windows)} windows and {len(nows)} times")
        if not windows:
            return []
        self._ensure_takens(windows[0])
        splits = [self._split(w) for w in windows]
        times = [float(t) for t in nows]
        options = {"features": features, "fleet_betti": False}
        answers = self._ask([
            ("batch", ([w.select(s[j]) for w, s in zip(windows, splits, strict=True)], times,
                       options))
            for j in range(self.jobs)])
        return [self._merge(w, s, [a[k] for a in answers], fleet_betti)
                for k, (w, s) in enumerate(zip(windows, splits, strict=True))]

    @staticmethod
    def _merge(window: Window, splits: list[np.ndarray], parts: list[TopologyResult | None],
               fleet_betti: bool) -> TopologyResult:
        e, s = len(window.entities), len(window.signals)
        first = next(p for p in parts if p is not None)
        k = first.features.shape[1]
        score, betti, entropy = np.full(e, np.nan), np.full((e, 2), np.nan), np.full((e, 2), np.nan)
        feats, contribution = np.full((e, k), np.nan), np.full((e, s), np.nan)
        history, held = np.zeros(e), np.full(e, np.nan)
        for rows, part in zip(splits, parts, strict=True):
            if part is None or not len(rows):
                continue
            score[rows], betti[rows], entropy[rows] = part.anomaly_score, part.betti, part.entropy
            feats[rows], contribution[rows] = part.features, part.signal_contribution
            held[rows] = part.sustained()
            if part.history_seconds is not None:
                history[rows] = part.history_seconds
        order = np.array([shard_of(key, 2**31) for key in window.entities], dtype=np.int64)
        fleet_b, outlier = FleetTopology(betti=fleet_betti).fit(feats, order).transform()
        return TopologyResult(anomaly_score=score, betti=betti, entropy=entropy, features=feats,
                              feature_names=first.feature_names, signal_contribution=contribution,
                              fleet_betti=fleet_b, fleet_outlier=outlier,
                              history_seconds=history, sustained_score=held)

    def state(self) -> dict[str, np.ndarray]:
        """Nothing: the shards' baselines are not persisted (offline replays only)."""
        return {}

    def close(self) -> None:
        """Stop the child processes."""
        for conn in self._conns:
            try:
                conn.send(None)
            except (OSError, EOFError):
                pass
        for proc in self._procs:
            proc.join(timeout=10)
            if proc.is_alive():
                proc.terminate()
        for conn in self._conns:
            conn.close()
        self._conns, self._procs = [], []
