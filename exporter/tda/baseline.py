"""Per-entity healthy baselines of diagrams and the calibrated Wasserstein anomaly score.

What is compared (why the score has its own clouds): the score compares each window's
*coarse score cloud* — `TopologyConfig.score_points` (12) means of consecutive steps of the
raw window, normalised and clipped (embedding.score_clouds), plus the anchor at the baseline
centre — not the 60-point feature cloud. Step-to-step noise dominated the W1 distance between
60-point clouds (the sum of 60 noisy H0 deaths), so the old score ranked noise, not failures;
10-minute means keep where the state sits and where it moves (a leak, a fill, a saturation),
and the anchor turns a departure from the baseline centre into a long H0 bar.

Per entity (keyed by its label tuple, so churn just adds and forgets keys):

- A FIFO reservoir of at most `TopologyConfig.baseline_size` healthy windows: each one's score
  cloud in raw units, its diagram, its raw deciles and its feature cloud's median H0 death. A
  window is admitted at most once per `baseline_admit_every` (consecutive windows overlap
  almost entirely; admitting every cycle would fill the reservoir with copies) and only while
  its calibrated score is <= `baseline_admit_quantile` — windows of a developing failure score
  high and do not contaminate the baseline. Until the first fit every window is admitted.
- Windows less than one window length apart overlap (a 2 h window every 10 min shares 92 %
  of its points with the next) and would look alike for that reason alone, so distances are
  only ever taken between non-overlapping windows: prototypes are admitted >= one window ago,
  and the calibration sample compares each reservoir diagram only with prototypes at least a
  window away. Without that the calibration sample is biased low and healthy scores sit near 1.
- Normalisation: the first window's robust centre/scale until the first fit; then every
  RENORMALISE_EVERY (6 h, phase-staggered per entity) the robust statistics of all the
  reservoir's raw score-cloud points (hours of healthy history instead of one 2 h window,
  which mis-scaled every signal with a daily pattern or a sparse one), and every reservoir
  diagram is recomputed under them (`BaselineStore.renormalise`), so prototypes,
  calibration and live windows always share units (mixing units saturated healthy scores).
- Every `baseline_every` (phase-staggered) the baseline is refitted from the reservoir
  (`EntityBaseline.fit`): `PROTOTYPES` diagrams evenly spaced over the reservoir, the
  calibrated Betti scale (`features.connectivity_scale` of the windows' median H0 deaths), and
  the calibration sample: each reservoir diagram's median distance to the prototypes.
- Raw anomaly = median distance (persistence.diagram_distance: W1 on H0 by sorting + W1 on
  H1) of the current score diagram to the prototypes. Score = the empirical CDF of the
  calibration sample at the raw value (linear between mid-ranks, 0 at 0, reaching 1 at 1.5x
  the largest), and once the entity has MIN_RAW_HISTORY of its own recent raw distances (one
  per admission interval, a day at most) the empirical CDF of those instead: the reservoir
  sample alone left 59 % of healthy windows above 0.95, the entity's own day ~5-9 %
  (eval_topology), so healthy windows spread over 0..1 whatever the entity's scale and scores
  compare across entities. The history is kept across re-normalisations: they move units
  little (the reservoir changes slowly), and resetting it sent every entity back to the
  saturated reservoir calibration (measured: 75 % of healthy scores above 0.95).
- Signal contribution: per signal, the mean absolute difference of the current window's
  normalised deciles from the baseline's (a 1-D Wasserstein distance in robust units);
  rows normalised to sum 1 (equal shares when nothing deviates, NaN without a baseline).

Measured (benchmarks/eval_topology.py; figures in benchmarks/README.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from exporter.tda.embedding import Z_CLIP, Clouds
from exporter.tda.features import connectivity_scale
from exporter.tda.persistence import Diagram, diagram_distance, rips_diagram
from exporter.windows import shard_of

PROTOTYPES = 3
MIN_BASELINE = 4
# Own raw distances kept per entity (at one per admission interval: a day at 10 min) and how
# many are needed before they calibrate the score instead of the reservoir sample.
RAW_HISTORY = 144
MIN_RAW_HISTORY = 18
# How often an entity's normalisation is re-estimated from its reservoir (each time all its
# reservoir diagrams are recomputed, ~0.2 ms each, in the exporter's process).
RENORMALISE_EVERY = 6 * 3600.0
# Version of `BaselineStore.state()`; older saved baselines are refused (and relearned).
STATE_FORMAT = 2
DECILES = np.linspace(10, 90, 9)


class BaselineError(ValueError):
    """A baseline cannot be fitted or restored."""


def window_deciles(values: np.ndarray) -> np.ndarray:
    """Raw deciles [E, S, 9] per entity and signal (NaN where a signal has no sample)."""
    from exporter.tda.embedding import nan_percentile

    return np.moveaxis(nan_percentile(values, DECILES, axis=2), 0, -1)


class EntityBaseline:
    """Estimator: one entity's healthy diagrams -> calibrated anomaly scores.

    `fit(diagrams, deciles)` learns `center_`, `scale_` [S], `zdeciles_` [S, 9],
    `prototypes_`, `calibration_` (sorted) and `betti_scale_`; `transform(raw)` maps raw
    distances to 0..1 and raises when not fitted.
    """

    def __init__(self, prototypes: int = PROTOTYPES):
        self.prototypes = prototypes

    def fit(self, diagrams: list[Diagram], h0_medians: list[float], deciles: list[np.ndarray],
            times: np.ndarray, now: float, window: float, center: np.ndarray,
            scale: np.ndarray) -> EntityBaseline:
        """Fit from the reservoir; `center`/`scale` [S] are the normalisation its diagrams
        were computed with (kept, so calibration and live distances compare like with like)."""
        if not ready(np.asarray(times), now, window):
            raise BaselineError("too little non-overlapping healthy history for a baseline")
        import warnings

        from exporter.tda.embedding import nan_percentile

        self.center_, self.scale_ = np.asarray(center), np.asarray(scale)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            # np.nanmedian on these small arrays goes through masked arrays (~0.7 ms a call);
            # same values.
            typical = nan_percentile(np.stack(deciles), [50.0], axis=0)[0]  # [S, 9]
        self.zdeciles_ = np.clip((typical - self.center_[:, None]) / self.scale_[:, None],
                                 -Z_CLIP, Z_CLIP)
        times = np.asarray(times, dtype=np.float64)
        # Prototypes: windows that do not overlap the present (admitted >= one window ago), so
        # live distances never compare a window with itself shifted by a few steps.
        cand = np.flatnonzero(now - times >= window)
        k = min(self.prototypes, len(cand))
        idx = cand[np.unique(np.round(np.linspace(0, len(cand) - 1, k)).astype(int))]
        self.prototypes_ = [diagrams[i] for i in idx]
        calib = []
        for j, d in enumerate(diagrams):
            # Same rule for the calibration sample: only prototypes not overlapping window j.
            others = [diagrams[i] for i in idx if abs(times[i] - times[j]) >= window]
            if others:
                calib.append(float(np.median([diagram_distance(d, p) for p in others])))
        self.calibration_ = np.sort(np.asarray(calib))
        # SCALE_FACTOR x the median of the windows' median H0 deaths (feature clouds).
        self.betti_scale_ = connectivity_scale(np.asarray(h0_medians, dtype=np.float64))
        return self

    def transform(self, raw: np.ndarray) -> np.ndarray:
        if not hasattr(self, "calibration_"):
            raise BaselineError("EntityBaseline is not fitted: call fit() first")
        return calibrate(np.asarray(raw, dtype=np.float64), self.calibration_)


def ready(times: np.ndarray, now: float, window: float) -> bool:
    """Enough history to fit: a prototype a window old and MIN_BASELINE comparable diagrams."""
    if len(times) < MIN_BASELINE:
        return False
    old = times[now - times >= window]
    if len(old) == 0:
        return False
    comparable = (np.abs(times[:, None] - old[None, :]) >= window).any(axis=1)
    return int(comparable.sum()) >= MIN_BASELINE - 1


def calibrate(raw: np.ndarray, calibration: np.ndarray) -> np.ndarray:
    """Empirical CDF of a sorted calibration sample at raw (mid-ranks, linear in between)."""
    n = len(calibration)
    ranks = (np.arange(n) + 0.5) / n
    xs = np.concatenate([[0.0], calibration, [calibration[-1] * 1.5 + 1e-12]])
    ys = np.concatenate([[0.0], ranks, [1.0]])
    out = np.interp(raw, xs, ys)
    return np.where(np.isnan(raw), np.nan, out)


@dataclass
class _Entry:
    diagrams: list[Diagram] = field(default_factory=list)
    # Each admitted window's coarse score cloud in raw units [n, S] (re-normalisable) and the
    # median H0 death of its feature cloud (for the Betti scale).
    clouds: list[np.ndarray] = field(default_factory=list)
    h0_medians: list[float] = field(default_factory=list)
    deciles: list[np.ndarray] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    model: EntityBaseline | None = None
    last_admit: float = -np.inf
    last_refresh: float = -np.inf
    # Normalisation in use before the first fit: the first window's own robust statistics,
    # frozen so every warm-up diagram is computed alike.
    center: np.ndarray | None = None
    scale: np.ndarray | None = None
    # The entity's own recent raw distances (one per admission interval, healthy or not):
    # once long enough, scores are their empirical CDF (see BaselineStore.score).
    raw_hist: list[float] = field(default_factory=list)
    last_raw: float = -np.inf
    # When center/scale were last re-estimated from the reservoir (-inf: still the first
    # window's); see BaselineStore.renormalise.
    normalised_at: float = -np.inf


class BaselineStore:
    """All entities' reservoirs and fitted baselines of one analysis.

    Parameters
    ----------
    signals: the analysis' signal names (checked on restore).
    size: reservoir size (TopologyConfig.baseline_size).
    refresh_every, admit_every: seconds between refits / admissions.
    admit_quantile: highest score a window may have to be admitted once fitted.
    """

    def __init__(self, signals: tuple[str, ...], size: int, refresh_every: float,
                 admit_every: float, admit_quantile: float = 0.9, window: float = 7200.0):
        self.signals = signals
        self.size = size
        self.refresh_every = refresh_every
        self.admit_every = admit_every
        self.admit_quantile = admit_quantile
        # Windows closer than this in time overlap: never compared for distances.
        self.window = window
        self.entries: dict[tuple[str, ...], _Entry] = {}

    def score(self, keys: tuple[tuple[str, ...], ...], raw: np.ndarray) -> np.ndarray:
        """Calibrated 0..1 scores of raw distances [E] (NaN where no baseline is fitted).

        Reservoir-to-prototype distances alone calibrate badly: ~32 values from a few hours
        put most healthy windows above 0.95 (eval_topology). Once an entity has
        MIN_RAW_HISTORY of its own recent raw distances (a day at most, every admission
        interval), the score is their empirical CDF, so a healthy entity spreads over 0..1
        and a distance beyond anything seen in that day scores near 1.
        """
        out = np.full(len(keys), np.nan)
        for i, key in enumerate(keys):
            entry = self.entries.get(key)
            if entry is None or entry.model is None or not np.isfinite(raw[i]):
                continue
            if len(entry.raw_hist) >= MIN_RAW_HISTORY:
                out[i] = calibrate(raw[i : i + 1], np.sort(np.asarray(entry.raw_hist)))[0]
            else:
                out[i] = entry.model.transform(raw[i : i + 1])[0]
        return out

    def models(self, keys: tuple[tuple[str, ...], ...]) -> list[EntityBaseline | None]:
        return [e.model if (e := self.entries.get(k)) is not None else None for k in keys]

    def provisional(self, keys: tuple[tuple[str, ...], ...], center: np.ndarray,
                    scale: np.ndarray) -> None:
        """Overwrite rows of center/scale [E, S] with each unfitted entity's frozen statistics."""
        for i, key in enumerate(keys):
            entry = self.entries.get(key)
            if entry is not None and entry.model is None and entry.center is not None:
                center[i], scale[i] = entry.center, entry.scale

    def update(self, keys: tuple[tuple[str, ...], ...], diagrams: list[Diagram | None],
               clouds: Clouds, h0_median: np.ndarray, deciles: np.ndarray,
               scores: np.ndarray, now: float, center: np.ndarray, scale: np.ndarray,
               raw: np.ndarray | None = None) -> int:
        """Admit healthy windows, refit due baselines; return how many were refitted.

        diagrams: the score clouds' diagrams; clouds: the same clouds in raw units.
        """
        refits = 0
        for i, key in enumerate(keys):
            dgm = diagrams[i]
            if dgm is None or clouds.counts[i] == 0:
                continue
            entry = self.entries.get(key)
            if (entry is not None and entry.model is not None and raw is not None
                    and np.isfinite(raw[i]) and now - entry.last_raw >= self.admit_every):
                entry.raw_hist.append(float(raw[i]))
                del entry.raw_hist[:-RAW_HISTORY]
                entry.last_raw = now
            if entry is None:
                entry = self.entries[key] = _Entry(center=center[i].copy(),
                                                   scale=scale[i].copy())
            healthy = entry.model is None or (
                np.isfinite(scores[i]) and scores[i] <= self.admit_quantile
            )
            if healthy and now - entry.last_admit >= self.admit_every:
                entry.diagrams.append(dgm)
                entry.clouds.append(clouds.cloud(i).copy())
                entry.h0_medians.append(float(h0_median[i]))
                entry.deciles.append(deciles[i])
                entry.times.append(now)
                for items in (entry.diagrams, entry.clouds, entry.h0_medians, entry.deciles,
                              entry.times):
                    del items[: -self.size]
                entry.last_admit = now
            first = entry.model is None
            due = first and ready(np.asarray(entry.times), now, self.window)
            due |= not first and now - entry.last_refresh >= self.refresh_every
            if not due:
                continue
            # Stagger refits and re-normalisations: a stable per-key phase spreads them over
            # cycles (a fleet started together would otherwise re-normalise in one cycle).
            phase = shard_of(key, 1000) / 1000.0
            if first:
                entry.normalised_at = now - phase * RENORMALISE_EVERY
            elif now - entry.normalised_at >= RENORMALISE_EVERY:
                self.renormalise(entry, now)
            entry.model = EntityBaseline().fit(
                entry.diagrams, entry.h0_medians, entry.deciles, np.asarray(entry.times), now,
                self.window, entry.center, entry.scale,  # type: ignore[arg-type]
            )
            entry.last_refresh = now - phase * self.refresh_every if first else now
            refits += 1
        return refits

    @staticmethod
    def renormalise(entry: _Entry, now: float) -> None:
        """Re-estimate the entity's normalisation from its reservoir and redo its diagrams.

        The first window's robust statistics (2 h) mis-scale every signal with a daily
        pattern or a sparse one; the reservoir's clouds span up to `size` admission intervals
        of healthy history. All reservoir diagrams are recomputed under the new statistics so
        prototypes, calibration and live windows stay in the same units (mixing units
        saturated healthy scores, see the module docstring).
        """
        from exporter.tda.embedding import robust_stats, score_clouds

        pts = np.concatenate(entry.clouds)  # [N, S]
        center, scale = robust_stats(pts.T[None])
        entry.center, entry.scale = center[0], scale[0]
        n = max(len(c) for c in entry.clouds)
        packed = np.zeros((len(entry.clouds), n, pts.shape[1]))
        for j, c in enumerate(entry.clouds):
            packed[j, : len(c)] = c
        counts = np.array([len(c) for c in entry.clouds], dtype=np.int64)
        z = score_clouds(Clouds(packed, counts), np.repeat(center, len(counts), axis=0),
                         np.repeat(scale, len(counts), axis=0))
        entry.diagrams = [rips_diagram(z.cloud(j)) for j in range(len(counts))]
        entry.normalised_at = now

    def forget(self, keep: set[tuple[str, ...]]) -> None:
        """Drop entities not in `keep` (gone from the source)."""
        for key in [k for k in self.entries if k not in keep]:
            del self.entries[key]

    # ---------------------------------------------------------------------------------------
    # Persistence as flat numeric/unicode arrays (no pickle).

    def state(self) -> dict[str, np.ndarray]:
        keys = list(self.entries)
        s = len(self.signals)
        out: dict[str, np.ndarray] = {
            "format": np.array([STATE_FORMAT], dtype=np.int64),
            "signals": np.array(self.signals, dtype=str),
            "keys": np.array(["\xff".join(k) for k in keys], dtype=str)
            if keys else np.array([], dtype=str),
            "key_lengths": np.array([len(k) for k in keys], dtype=np.int64),
            "last_admit": np.array([self.entries[k].last_admit for k in keys]),
            "last_refresh": np.array([self.entries[k].last_refresh for k in keys]),
            "norm_center": np.array([_or_nan(self.entries[k].center, s) for k in keys]
                                    ).reshape(-1, s),
            "norm_scale": np.array([_or_nan(self.entries[k].scale, s) for k in keys]
                                   ).reshape(-1, s),
        }
        res = [d for k in keys for d in self.entries[k].diagrams]
        out["reservoir_counts"] = np.array([len(self.entries[k].diagrams) for k in keys],
                                           dtype=np.int64)
        out.update(_pack("reservoir", res))
        out["reservoir_times"] = np.array([t for k in keys for t in self.entries[k].times])
        clouds = [c for k in keys for c in self.entries[k].clouds]
        out["reservoir_cloud_lengths"] = np.array([len(c) for c in clouds], dtype=np.int64)
        out["reservoir_clouds"] = (np.concatenate(clouds) if clouds else np.empty((0, s)))
        out["reservoir_h0_medians"] = np.array(
            [m for k in keys for m in self.entries[k].h0_medians], dtype=np.float64)
        out["normalised_at"] = np.array([self.entries[k].normalised_at for k in keys])
        out["reservoir_deciles"] = (
            np.stack([q for k in keys for q in self.entries[k].deciles])
            if res else np.empty((0, s, len(DECILES)))
        )
        fitted = [self.entries[k].model for k in keys]
        out["fitted"] = np.array([m is not None for m in fitted], dtype=bool)
        models = [m for m in fitted if m is not None]
        out["center"] = np.array([m.center_ for m in models]).reshape(-1, s)
        out["scale"] = np.array([m.scale_ for m in models]).reshape(-1, s)
        out["zdeciles"] = np.array([m.zdeciles_ for m in models]).reshape(-1, s, len(DECILES))
        out["betti_scale"] = np.array([m.betti_scale_ for m in models])
        out["proto_counts"] = np.array([len(m.prototypes_) for m in models], dtype=np.int64)
        out.update(_pack("proto", [p for m in models for p in m.prototypes_]))
        out["calib_counts"] = np.array([len(m.calibration_) for m in models], dtype=np.int64)
        out["calib"] = (np.concatenate([m.calibration_ for m in models]) if models
                        else np.empty(0))
        out["rawhist_counts"] = np.array([len(self.entries[k].raw_hist) for k in keys],
                                         dtype=np.int64)
        out["rawhist"] = np.array([x for k in keys for x in self.entries[k].raw_hist],
                                  dtype=np.float64)
        out["last_raw"] = np.array([self.entries[k].last_raw for k in keys])
        return out

    def restore(self, arrays: dict[str, np.ndarray]) -> None:
        saved = int(arrays["format"][0]) if "format" in arrays else 1
        if saved != STATE_FORMAT:
            raise BaselineError(f"saved baselines have format {saved}, this version reads "
                                f"{STATE_FORMAT}: they are relearned")
        if tuple(arrays["signals"].tolist()) != self.signals:
            raise BaselineError("saved baselines have other signals")
        keys = [tuple(str(k).split("\xff")) if n else () for k, n in
                zip(arrays["keys"].tolist(), arrays["key_lengths"].tolist(), strict=True)]
        res = _unpack("reservoir", arrays)
        protos = _unpack("proto", arrays)
        dec = arrays["reservoir_deciles"]
        lengths = arrays["reservoir_cloud_lengths"]
        flat = arrays["reservoir_clouds"].reshape(-1, len(self.signals))
        clouds = ([c.copy() for c in np.split(flat, np.cumsum(lengths)[:-1])]
                  if len(lengths) else [])
        entries: dict[tuple[str, ...], _Entry] = {}
        r = p = c = m = h = 0
        for i, key in enumerate(keys):
            n = int(arrays["reservoir_counts"][i])
            entry = _Entry(res[r : r + n], clouds[r : r + n],
                           arrays["reservoir_h0_medians"][r : r + n].tolist(),
                           [dec[j] for j in range(r, r + n)],
                           arrays["reservoir_times"][r : r + n].tolist(),
                           None, float(arrays["last_admit"][i]),
                           float(arrays["last_refresh"][i]),
                           arrays["norm_center"][i].copy(), arrays["norm_scale"][i].copy())
            r += n
            k = int(arrays["rawhist_counts"][i])
            entry.raw_hist = arrays["rawhist"][h : h + k].tolist()
            entry.last_raw = float(arrays["last_raw"][i])
            entry.normalised_at = float(arrays["normalised_at"][i])
            h += k
            if arrays["fitted"][i]:
                model = EntityBaseline()
                model.center_ = arrays["center"][m]
                model.scale_ = arrays["scale"][m]
                model.zdeciles_ = arrays["zdeciles"][m]
                model.betti_scale_ = float(arrays["betti_scale"][m])
                k = int(arrays["proto_counts"][m])
                model.prototypes_ = protos[p : p + k]
                p += k
                k = int(arrays["calib_counts"][m])
                model.calibration_ = arrays["calib"][c : c + k].copy()
                c += k
                m += 1
                entry.model = model
            entries[key] = entry
        self.entries = entries


def _pack(prefix: str, diagrams: list[Diagram]) -> dict[str, np.ndarray]:
    return {
        f"{prefix}_h0_lengths": np.array([len(d[0]) for d in diagrams], dtype=np.int64),
        f"{prefix}_h0": np.concatenate([d[0] for d in diagrams]) if diagrams else np.empty(0),
        f"{prefix}_h1_lengths": np.array([len(d[1]) for d in diagrams], dtype=np.int64),
        f"{prefix}_h1": np.concatenate([d[1] for d in diagrams]).reshape(-1, 2)
        if diagrams else np.empty((0, 2)),
    }


def _unpack(prefix: str, arrays: dict[str, np.ndarray]) -> list[Diagram]:
    l0 = arrays[f"{prefix}_h0_lengths"]
    l1 = arrays[f"{prefix}_h1_lengths"]
    h0 = np.split(arrays[f"{prefix}_h0"], np.cumsum(l0)[:-1]) if len(l0) else []
    h1 = np.split(arrays[f"{prefix}_h1"].reshape(-1, 2), np.cumsum(l1)[:-1]) if len(l1) else []
    return [(a.copy(), b.copy()) for a, b in zip(h0, h1, strict=True)]


def _or_nan(a: np.ndarray | None, n: int) -> np.ndarray:
    return a if a is not None else np.full(n, np.nan)
