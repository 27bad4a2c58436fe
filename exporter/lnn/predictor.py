"""Failure forecasts for every entity of a window: one batched forward per cycle.

The analysis' horizons are read off the model's cumulative-hazard curve: a horizon the model
has is used as is, one between two model horizons (or below the first) is interpolated
linearly on the cumulative hazard -log(1 - P), and one beyond the model's largest horizon is
not guessed: its column is NaN and `info["status"]` says so.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

import numpy as np

from exporter.config import AnalysisConfig, format_duration
from exporter.lnn.artifacts import ModelError, incompatibility, load_model
from exporter.lnn.features import step_features
from exporter.results import Forecast, TopologyResult
from exporter.windows import Window

log = logging.getLogger(__name__)

_threads_set = False
# An entity with no sample in the newest quarter of its window is down or gone: abstain.
RECENT_SHARE = 0.25


def absent_as_zero(window: Window, analysis: AnalysisConfig | None = None) -> Window:
    """The window with every signal an entity has no sample of over the whole window (a host
    that does not export it) read as a flat 0: an idle resource, no errors, no latency (a
    signal whose bad direction is "down" and that has a capacity, free space or credits, reads
    as its capacity instead: all free; `analysis` gives them, None: every signal 0).
    Entities without any sample and partly missing signals are left as they are (`predict`
    abstains on the former; the features count the latter's missing share).

    Why: the network was trained on windows where every signal has samples, and read a signal
    missing throughout as trouble: with one column empty, healthy hosts got P(fail within 4 h)
    0.96 and a combined risk of 0.91 (`aura backtest` of a 2-host fleet; 0.06-0.09 and
    0.04-0.07 read as 0, <= 0.06 with the column present). The topology stage leaves such a
    signal out too (exporter/tda/embedding.py `pack_clouds`). Shapes: window.values [E, S, T];
    a copy only where something is filled.
    """
    values = np.asarray(window.values)
    seen = np.isfinite(values).any(axis=2)  # [E, S]
    gone = ~seen & seen.any(axis=1, keepdims=True)
    if not gone.any():
        return window
    fill = np.zeros(values.shape[1])
    if analysis is not None:
        by_name = {sig.name: sig for sig in analysis.signals}
        for k, name in enumerate(window.signals):
            sig = by_name.get(name)
            if sig is not None and sig.direction == "down" and sig.capacity:
                fill[k] = float(sig.capacity)
    out = np.array(values, dtype=np.float64)
    rows, cols = np.nonzero(gone)
    out[rows, cols, :] = fill[cols, None]
    return dataclasses.replace(window, values=out)


def set_torch_threads(threads: int | None = None) -> None:
    """Set torch's intra-op threads once per process (later calls are no-ops).

    Default 1: the forward is ~10 us per entity on one thread at 10 000 entities, and on a
    2-core host shared with the topology workers a second OpenMP thread measured 10-20x
    slower (it spins waiting for a busy core). See benchmarks/bench_lnn.py.
    """
    global _threads_set
    if _threads_set:
        return
    import torch

    torch.set_num_threads(max(1, threads or 1))
    _threads_set = True


def map_horizons(p: np.ndarray, model_h: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """P [E, Hm] on the model's horizons -> [E, Hw] on `wanted` (NaN beyond the model's range)."""
    cum = -np.log1p(-np.clip(p, 0.0, 1.0 - 1e-12))
    knots_t = np.concatenate([[0.0], model_h])
    knots_c = np.concatenate([np.zeros((len(p), 1)), cum], axis=1)
    out = np.full((len(p), len(wanted)), np.nan)
    for j, h in enumerate(wanted):
        if h > model_h[-1] * (1 + 1e-9):
            continue
        k = int(np.searchsorted(knots_t, h, side="left"))
        if k < len(knots_t) and abs(knots_t[k] - h) <= 1e-6 * max(h, 1.0):
            c = knots_c[:, k]
        else:
            t0, t1 = knots_t[k - 1], knots_t[k]
            a = (h - t0) / (t1 - t0)
            c = (1 - a) * knots_c[:, k - 1] + a * knots_c[:, k]
        out[:, j] = -np.expm1(-c)
    return out


class FailurePredictor:
    """A loaded failure model. Build with `FailurePredictor.load(model_dir)`."""

    def __init__(self, net: Any, card: dict[str, Any], path: Path):
        self.net_ = net
        self.card = card
        self.path = path
        self.horizons_ = np.asarray(card["horizons_seconds"], dtype=np.float64)
        self.ttf_threshold = float(card.get("ttf_threshold", 0.5))
        self.info: dict[str, Any] = {
            "model": str(card["name"]),
            "version": str(card["version"]),
            "status": "ok",
        }
        self._status: dict[str, str] = {}  # analysis -> why it (partly) abstains

    @classmethod
    def load(cls, model_dir: str | Path, threads: int | None = None) -> FailurePredictor:
        """Load and verify a model directory; raise ModelError when unusable."""
        set_torch_threads(threads)
        net, card = load_model(model_dir)
        return cls(net, card, Path(model_dir))

    def predict(self, window: Window, analysis: AnalysisConfig,
                topology: TopologyResult | None = None) -> Forecast:
        """Forecast every entity of `window` (rows in window order).

        topology: accepted for the pipeline's `Predictor` protocol and not read: the model
        takes no topology inputs (`lnn.features`, README "Design notes").

        Returns a Forecast on the analysis' horizons; rows of entities without recent samples
        and columns beyond the model's largest horizon are NaN (the latter said in
        `info["status"]`). A signal
        an entity has no sample of in the whole window is read as 0 (`absent_as_zero`).
        """
        import torch

        wanted = np.asarray([float(h) for h in analysis.horizons], dtype=np.float64)
        n = len(window.entities)
        unfit = incompatibility(self.card, float(analysis.window), float(analysis.step))
        if unfit is not None:
            # Inputs unlike any the network saw: a number would look like a forecast but mean
            # nothing (a steady fleet read as critical). Abstain, and say so in the status.
            status = f"abstaining on analysis {analysis.name}: {unfit}"
            if self._status.get(analysis.name) != status:
                # Once per analysis, in every driver (run, backtest): never a quiet change.
                log.warning("msg=\"forecast abstains: the model was not trained for this window "
                            "or step\" analysis=%s model=%s reason=%r", analysis.name,
                            self.info["model"], unfit)
            self._set_status(analysis.name, status)
            return Forecast(tuple(float(h) for h in wanted), np.full((n, len(wanted)), np.nan),
                            np.full(n, np.nan))
        if n == 0:
            return Forecast(tuple(wanted), np.empty((0, len(wanted))), np.empty(0))
        x = step_features(absent_as_zero(window, analysis), analysis,
                          horizon_scale=float(self.horizons_[-1]))
        with torch.inference_mode():
            p_t, ttf_t = self.net_(torch.from_numpy(x))
        p = p_t.numpy().astype(np.float64)
        ttf = ttf_t.numpy().astype(np.float64)

        probability = map_horizons(p, self.horizons_, wanted)
        problems = []
        beyond = wanted > self.horizons_[-1] * (1 + 1e-9)
        if beyond.any():
            problems.append(
                "abstaining on horizons beyond the model's largest "
                f"({format_duration(self.horizons_[-1])}): "
                + ",".join(format_duration(h) for h in wanted[beyond])
            )
        t = window.values.shape[2]
        recent = window.values[:, :, t - max(1, int(t * RECENT_SHARE)):]
        # Entities without recent samples (a scrape gap, a host down) get no forecast: their
        # probabilities are absent, and the console shows them "no data". Not a status of the
        # model: a count in `aura_model_info{status}` made a new series and a warning at every
        # scrape gap (the demo's fleet logged one every few minutes).
        silent = ~np.isfinite(recent).any(axis=(1, 2))
        probability[silent] = np.nan
        projected = (p[:, -1] >= self.ttf_threshold) & ~silent
        time_to_failure = np.where(projected, np.clip(ttf, 0.0, self.horizons_[-1]), np.nan)
        self._set_status(analysis.name, "; ".join(problems))
        return Forecast(tuple(float(h) for h in wanted), probability, time_to_failure)

    def _set_status(self, analysis: str, problem: str) -> None:
        """Record one analysis' problem ("" when none); `info["status"]` joins them all."""
        if problem:
            self._status[analysis] = problem
        else:
            self._status.pop(analysis, None)
        self.info["status"] = "; ".join(self._status[a] for a in sorted(self._status)) or "ok"

    def incompatibility(self, analysis: AnalysisConfig) -> str | None:
        """Why `analysis` cannot use this model (window or step not trained for), or None."""
        return incompatibility(self.card, float(analysis.window), float(analysis.step))


__all__ = ["FailurePredictor", "ModelError", "map_horizons"]
