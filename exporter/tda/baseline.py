"""Per-entity baselines (normalisation, reservoir) and the calibrated topology anomaly score.

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
  its calibrated 30-min average (ADMIT; `BaselineStore.score`'s `admit`) is <=
  `baseline_admit_quantile` — windows of a developing failure score high and do not
  contaminate the baseline. Until the first fit every window is admitted.
- Windows less than one window length apart overlap (a 2 h window every 10 min shares 92 %
  of its points with the next) and would look alike for that reason alone, so distances are
  only ever taken between non-overlapping windows: prototypes are admitted >= one window ago,
  and the score's references are at least a window old (`BaselineStore.distance`).
- Normalisation: the first window's robust centre/scale until the first fit; then every
  RENORMALISE_EVERY (6 h, phase-staggered per entity) the robust statistics of all the
  reservoir's raw score-cloud points (hours of healthy history instead of one 2 h window,
  which mis-scaled every signal with a daily pattern or a sparse one), and every reservoir
  diagram is recomputed under them (`BaselineStore.renormalise`), so prototypes
  and live windows always share units (mixing units saturated healthy scores).
- Every `baseline_every` (phase-staggered) the baseline is refitted from the reservoir
  (`EntityBaseline.fit`): `PROTOTYPES` diagrams evenly spaced over the reservoir, the
  calibrated Betti scale (`features.connectivity_scale` of the windows' median H0 deaths) and
  the typical healthy deciles (signal contributions).
- Raw anomaly (since issue 14; the W1 distance to 3 reservoir prototypes before): the
  score diagram's fixed-normalisation summary (features.summaries: Betti curves at fixed
  radii in robust units, total persistence, the longest H0 bars, and the H0 bars of the
  newest three points with the anchor, a second window scale) compared by L1 with the
  entity's own past summaries (one per window/score_points, three days at most) that do not
  overlap the window, at the same time of day (+-1 h) once a day of history exists: the
  mean distance to the 3 nearest of the newest 36. Score (`BaselineStore.score`, since the
  second issue-14 session): that distance's tail probability under the entity's own recent
  raw distances, fused (Fisher's method) with the tail probability of a seasonal level
  deviation (exporter/tda/seasonal.py). Exported: the fused statistic's own p-value (the
  onset, since the sixth session; alone, with the level on its pooled scale, since the
  seventh), 0.99 = as rare as 1 window in 100 of its own. The sustained form, what the
  decisions read: the statistic's 30-min moving average and its CUSUM (slow drift, fourth
  session), each re-calibrated on the entity's own history of it, combined by Tippett's
  minimum p;
  exported once MIN_RAW_HISTORY raw distances exist (`BaselineStore.warming`). Degenerate windows (every signal constant or two-state, or
  missing) have no summary: no score, and nothing enters the history. Measured on real
  servers (benchmarks/eval_anomaly.py, ASD, ablation in benchmarks/README.md); the
  reservoir's prototypes no longer feed the score (nor does the calibration sample of
  reservoir x prototype distances they once had: removed, issue 17).
- Signal contribution: per signal, the mean absolute difference of the current window's
  normalised deciles from the baseline's (a 1-D Wasserstein distance in robust units);
  rows normalised to sum 1 (equal shares when nothing deviates, NaN without a baseline).

Measured (benchmarks/eval_topology.py, benchmarks/eval_anomaly.py; figures in
benchmarks/README.md).
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import overload

import numpy as np

import exporter.tda.seasonal as seasonal
from exporter.numeric import clipped_z, nan_percentile
from exporter.tda.embedding import Z_CLIP, Clouds
from exporter.tda.features import SUMMARY_SIZE, connectivity_scale, summaries
from exporter.tda.persistence import Diagram
from exporter.tda.seasonal import (
    BATCH_MIN,
    SLOTS,
    SeasonalLevels,
    add_levels,
    deviations,
    drift,
    fisher,
    survival,
    tail_fit,
    tippett,
)
from exporter.windows import decode_entity_key, encode_entity_key, shard_of

PROTOTYPES = 3
MIN_BASELINE = 4
# Own raw distances kept per entity (one per window/score_points, 10 min at the defaults: three
# days) and how many are needed before the score is calibrated on them and exported.
RAW_HISTORY = 432
MIN_RAW_HISTORY = 18
# How often an entity's normalisation is re-estimated from its reservoir (each time all its
# reservoir diagrams are recomputed, ~0.2 ms each, in the exporter's process).
RENORMALISE_EVERY = 6 * 3600.0
# Summaries (and the raw distances between them) are in the entity's robust units: radii and
# persistence scale with them. A re-estimate that moves any signal's scale by more than this
# factor (either way) makes the summaries taken before it no references for later windows
# (`_Entry.comparable_since`): in an entity's first day its reservoir grows from a few
# windows to a day of them and the scale moved 1.5-3x at each re-estimate (a daily pattern
# coming into view), and the second day's same-time-of-day comparisons with the first day's
# summaries ran hot (healthy synthetic entities above 0.95 on 25-31 % of cycles in hours
# 24-36, 0-3.5 % without those references; tests/test_tda_seasonal.py). Later re-estimates
# move it by a few to ~25 %, and only those while the reservoir fills count (`renormalise`:
# applied to every re-estimate, ASD's whole servers lost AUROC 0.642 -> 0.606, their scales
# move with their bursts). 0: off.
UNITS_TOLERANCE = 1.5
REPLAY_REFIT_EVERY = 7200.0
# An entity missing from the window (no sample for a window's length: a scrape gap, a host down
# for maintenance) keeps its baselines this long (`BaselineStore.forget`). Forgotten at once, a
# two-hour gap cost three days of history: no score for ~6 h after it, then a fresh entity's
# (helper-57). 6 h bounds what a rollout that renames every pod leaves behind (~87 KB each).
FORGET_AFTER = 6 * 3600.0
# Version of `BaselineStore.state()`; older saved baselines are refused (and relearned).
STATE_FORMAT = 4
DAY = 86400.0
# Raw distance: L1 between the window's diagram summary (features.summaries) and the entity's
# own past summaries at the same time of day (+-PHASE_TOLERANCE) once its history spans a day
# (all non-overlapping ones before): the mean of the NEIGHBOURS nearest.
PHASE_TOLERANCE = 3600.0
NEIGHBOURS = 3
# At most this many (the newest) references: the nearest-neighbour distance shrinks as the
# pool grows, so a fixed pool keeps raw distances comparable over time (and with the
# calibration history); 36 = +-1 h at one per 10 min over three days.
MAX_REFERENCES = 36
SEASONAL = True
# The exported score fuses the topology distance's tail probability with the seasonal level
# deviation's (exporter/tda/seasonal.py; ablation switches): FUSION off = the mid-rank ECDF
# of the raw distance alone (the score before); SEASONAL_LEVEL off = Fisher's statistic of the
# topology's tail probability alone; TOPOLOGY off = the seasonal level's alone (ablation
# only: persistent homology is what the score is about); SMOOTH: seconds of the moving
# average (0: none).
FUSION = True
SEASONAL_LEVEL = True
TOPOLOGY = True
SMOOTH = 1800.0
# Slow evidence (issue 14, fourth session; exporter/tda/seasonal.py `drift`): a CUSUM of the
# Fisher statistic, calibrated on its own history and combined with the 30-min average by
# Tippett's minimum p once MIN_SMOOTH_HISTORY of its values exist (off: the average, and the
# onset where ONSET is on).
DRIFT = True
# The onset view (issue 14, sixth session): this cycle's Fisher combination of the topology's
# and the level's tail probabilities, read as the p-value it is (chi2 with 2 degrees of
# freedom: p = e^(-fis/2)): what the score exports (EXPORTED; off: the sustained form, the
# average and the drift). The 30-min average dilutes a sudden change over six cycles and the drift needs
# hours; an excursion that starts now is rare at once in this view. Not calibrated again on
# its own history: both inputs already are, and every further empirical calibration adds the
# noise of its own tail fit where the score ranks its rarest cycles (measured on ASD at the
# live cadence, benchmarks/README.md "The NAB-style score, the onset view and the level's
# scale").
ONSET = True
# What the exported score is (issue 14, seventh session): "onset", the onset view alone, its
# level on the pooled scale (seasonal.py); "views", Tippett's minimum p of the onset, the
# 30-min average and the drift (the sixth session's score, a measured variant). An exported
# score that stays high for hours raises a false alarm at every cycle of the run, the way
# streaming detectors are scored: measured on ASD at the live cadence (NAB-style, standard
# profile), whole servers 11.2 -> 29.1 (random 16.9, z-scores 28.4 and 30.9), one signal per
# entity 28.0 -> 34.6; AUROC 0.627 -> 0.642 and 0.756 -> 0.740 (benchmarks/README.md "The
# exported score is this cycle's"). The average and the drift hold evidence for hours: the
# failure warnings read them (the sustained form). The exported score alone changes no
# failure alert; the admission below does (it shapes the baseline).
EXPORTED = "onset"
# What the baseline's admission reads (`BaselineStore.update`): "average", the calibrated
# 30-min average alone, or "sustained", the average and the drift (what the decisions read;
# before the seventh issue-14 session). The drift holds a score up for hours after a lasting
# change and kept it out of the baseline all that time. Measured on ASD at the live cadence,
# one signal per entity: NAB-style 31.0 -> 34.6, AUROC 0.729 -> 0.740; the fleets' failure
# alerts 348 -> 349, 32 false either way (benchmarks/README.md "The exported score is this
# cycle's").
ADMIT = "average"
# An entity's first days (issue 14, fleetgen-303, benchmarks/README.md): the level's tail
# probability enters the fusion only once MIN_LEVEL_HISTORY of its own deviations exist (a
# day at one per 10 min; its reference appears after a day, and a few hours of deviations
# gave extreme p-values), and the 30-min average is re-calibrated only on MIN_SMOOTH_HISTORY
# of its own values (before: the ECDF of the raw distance, the score before the fusion).
MIN_LEVEL_HISTORY = 144
MIN_SMOOTH_HISTORY = 144
# Measured variant, off: blank the raw-distance history when the topology reference switches
# to the same time of day (fewer first-day alerts on fleetgen-303, 124 -> 85 with the above
# instead; ASD multi AUROC -0.009, and no score for 3 h after the switch).
RESTART_AT_SWITCH = False
DECILES = np.linspace(10, 90, 9)
# Baselines refitted per block (`BaselineStore.update`): [REFIT_BLOCK, size, S, 9] float32
# deciles and their sort, ~40 MiB at 512 x 72 x 8 x 9 with the sort's copies.
REFIT_BLOCK = 512


class BaselineError(ValueError):
    """A baseline cannot be fitted or restored."""


def window_deciles(values: np.ndarray) -> np.ndarray:
    """Raw deciles [E, S, 9] per entity and signal (NaN where a signal has no sample)."""
    return np.moveaxis(nan_percentile(values, DECILES, axis=2), 0, -1)


class EntityBaseline:
    """Estimator: one entity's healthy reservoir -> its normalisation and healthy shape.

    `fit(...)` learns `center_`, `scale_` [S], `zdeciles_` [S, 9] (typical healthy deciles
    in robust units, for signal contributions), `prototypes_` (reservoir diagrams, for
    display) and `betti_scale_`. The anomaly score is not computed here
    (`BaselineStore.score`).
    """

    def __init__(self, prototypes: int = PROTOTYPES):
        self.prototypes = prototypes

    def fit(self, diagrams: Sequence[Diagram], h0_medians: list[float],
            deciles: list[np.ndarray] | np.ndarray,
            times: np.ndarray, now: float, window: float, center: np.ndarray,
            scale: np.ndarray, typical: np.ndarray | None = None) -> EntityBaseline:
        """Fit from the reservoir; `center`/`scale` [S] are the normalisation its diagrams
        were computed with (kept, so live windows use the same units); raise BaselineError
        without enough non-overlapping history (`ready`). `typical` [S, 9]: the median of
        `deciles` over the windows when already computed (BaselineStore.update computes
        those of a cycle's refits in one call)."""
        if not ready(np.asarray(times), now, window):
            raise BaselineError("too little non-overlapping healthy history for a baseline")
        self.center_, self.scale_ = np.asarray(center), np.asarray(scale)
        if typical is None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                # np.nanmedian on these small arrays goes through masked arrays (~0.7 ms a
                # call); same values.
                typical = nan_percentile(np.asarray(deciles), [50.0], axis=0,
                                         always_sort=True)[0]  # [S, 9]
        self.zdeciles_ = clipped_z(typical, self.center_[:, None], self.scale_[:, None], Z_CLIP)
        times = np.asarray(times, dtype=np.float64)
        # Prototypes: windows that do not overlap the present (admitted >= one window ago), so
        # live distances never compare a window with itself shifted by a few steps.
        cand = np.flatnonzero(now - times >= window)
        idx = cand[list(_spread(len(cand), min(self.prototypes, len(cand))))]
        self.prototypes_ = [diagrams[i] for i in idx]
        # SCALE_FACTOR x the median of the windows' median H0 deaths (feature clouds).
        medians = np.asarray(h0_medians, dtype=np.float64)
        # NaN (each window's own scale) until live windows have brought feature-cloud medians
        # (replayed windows have none).
        self.betti_scale_ = (connectivity_scale(medians) if np.isfinite(medians).any()
                             else float("nan"))
        return self


@functools.lru_cache(maxsize=1024)
def _spread(n: int, k: int) -> tuple[int, ...]:
    """k (or fewer, distinct) indices evenly spread over range(n), first and last included."""
    return tuple(np.unique(np.round(np.linspace(0, n - 1, k)).astype(int)).tolist())


def ready(times: np.ndarray, now: float, window: float) -> bool:
    """Enough history to fit: a prototype a window old and MIN_BASELINE comparable diagrams."""
    if len(times) < MIN_BASELINE:
        return False
    old = times[now - times >= window]
    if len(old) == 0:
        return False
    comparable = (np.abs(times[:, None] - old[None, :]) >= window).any(axis=1)
    return int(comparable.sum()) >= MIN_BASELINE - 1


class Reservoir:
    """One entity's admitted windows, packed in float32 arrays (oldest first).

    Per window: the score cloud in raw units, its diagram (H0 deaths, H1 pairs), the raw
    deciles and the feature cloud's median H0 death. Packed rather than lists of small arrays:
    72 windows as Python objects cost ~150 KB per entity (1.5 GB at 10 000 entities), packed
    ~40 KB. float32 is ample for robust units and distances (7 significant digits).
    """

    def __init__(self, points: int, signals: int):
        self.cloud_arr = np.full((0, points, signals), np.nan, dtype=np.float32)
        self.h0_arr = np.full((0, 0), np.nan, dtype=np.float32)
        self.h1_arr = np.full((0, 0, 2), np.nan, dtype=np.float32)
        self.deciles = np.full((0, signals, len(DECILES)), np.nan, dtype=np.float32)
        self.h0_medians = np.empty(0, dtype=np.float32)
        self.times = np.empty(0, dtype=np.float64)

    def __len__(self) -> int:
        return len(self.times)

    def append(self, cloud: np.ndarray, dgm: Diagram, deciles: np.ndarray, h0_median: float,
               now: float, size: int) -> None:
        """Add one window, keep the newest `size`.

        Each array is built once at its new length (the kept rows, then the new one): the
        values of concatenating and slicing, with half the array calls (a replay appends
        tens of thousands of windows)."""
        n = len(self)
        drop = max(n + 1 - size, 0)
        if n + 1 - drop >= 1:
            self._append_kept(cloud, dgm, deciles, h0_median, now, drop)
            return
        keep = slice(drop, None)
        row = np.full((1, *self.cloud_arr.shape[1:]), np.nan, dtype=np.float32)
        row[0, : len(cloud)] = cloud
        self.cloud_arr = np.concatenate([self.cloud_arr, row])[keep]
        h0, h1 = _pad_diagrams([dgm], self.h0_arr.shape[1], self.h1_arr.shape[1])
        w0, w1 = h0.shape[1], h1.shape[1]
        self.h0_arr = np.concatenate([_widen(self.h0_arr, w0), h0])[keep]
        self.h1_arr = np.concatenate([_widen(self.h1_arr, w1), h1])[keep]
        self.deciles = np.concatenate([self.deciles, deciles[None].astype(np.float32)])[keep]
        self.h0_medians = np.append(self.h0_medians, np.float32(h0_median))[keep]
        self.times = np.append(self.times, now)[keep]

    def _append_kept(self, cloud: np.ndarray, dgm: Diagram, deciles: np.ndarray,
                     h0_median: float, now: float, drop: int) -> None:
        m = len(self) - drop  # kept rows; the new one goes at index m
        a, b = dgm
        cl = np.empty((m + 1, *self.cloud_arr.shape[1:]), dtype=np.float32)
        cl[:m] = self.cloud_arr[drop:]
        cl[m] = np.nan
        cl[m, : len(cloud)] = cloud
        w0 = max(self.h0_arr.shape[1], len(a))
        h0 = np.full((m + 1, w0), np.nan, dtype=np.float32)
        h0[:m, : self.h0_arr.shape[1]] = self.h0_arr[drop:]
        h0[m, : len(a)] = a
        w1 = max(self.h1_arr.shape[1], len(b))
        h1 = np.full((m + 1, w1, 2), np.nan, dtype=np.float32)
        h1[:m, : self.h1_arr.shape[1]] = self.h1_arr[drop:]
        h1[m, : len(b)] = b
        dec = np.empty((m + 1, *self.deciles.shape[1:]), dtype=np.float32)
        dec[:m] = self.deciles[drop:]
        dec[m] = deciles
        med = np.empty(m + 1, dtype=np.float32)
        med[:m] = self.h0_medians[drop:]
        med[m] = np.float32(h0_median)
        times = np.empty(m + 1, dtype=np.float64)
        times[:m] = self.times[drop:]
        times[m] = now
        self.cloud_arr, self.h0_arr, self.h1_arr = cl, h0, h1
        self.deciles, self.h0_medians, self.times = dec, med, times

    @property
    def clouds(self) -> list[np.ndarray]:
        """Raw-unit score clouds [n_j, S] (float64)."""
        # Points come first; padding rows are all NaN (a point may lack a signal the entity
        # did not have in that window: NaN there).
        counts = (~np.isnan(self.cloud_arr).all(axis=2)).sum(axis=1)
        return [c[:n].astype(np.float64) for c, n in zip(self.cloud_arr, counts, strict=True)]

    @property
    def diagrams(self) -> list[Diagram]:
        """Persistence diagrams of the reservoir's windows, oldest first: (H0 [n0, 2], H1
        [n1, 2]) birth/death pairs in filtration units (float64), padding dropped."""
        return [self.diagram(j) for j in range(len(self.h0_arr))]

    def diagram(self, j: int) -> Diagram:
        """Window j's diagram (as in `diagrams`), unpacked alone: a refit keeps only
        PROTOTYPES of them, and unpacking all (~70) was the largest part of its cost."""
        h0, h1 = self.h0_arr[j], self.h1_arr[j]
        return (h0[np.isfinite(h0)].astype(np.float64),
                h1[np.isfinite(h1[:, 0])].astype(np.float64))

    def set_diagrams(self, diagrams: list[Diagram]) -> None:
        """Replace the stored diagrams (one per reservoir window, in order), padded to the
        widest H0 and H1 with NaN pairs."""
        self.h0_arr, self.h1_arr = _pad_diagrams(diagrams, 0, 0)


class _LazyDiagrams(Sequence[Diagram]):
    """A reservoir's diagrams as a read-only sequence, each unpacked when indexed."""

    def __init__(self, reservoir: Reservoir):
        self._res = reservoir

    def __len__(self) -> int:
        return len(self._res.h0_arr)

    @overload
    def __getitem__(self, j: int) -> Diagram: ...

    @overload
    def __getitem__(self, j: slice) -> list[Diagram]: ...

    def __getitem__(self, j: int | slice) -> Diagram | list[Diagram]:
        if isinstance(j, slice):
            return [self._res.diagram(k) for k in range(len(self))[j]]
        return self._res.diagram(range(len(self))[j])


def _pad_diagrams(diagrams: list[Diagram], w0: int, w1: int) -> tuple[np.ndarray, np.ndarray]:
    """NaN-padded float32 H0 [n, >=w0] and H1 [n, >=w1, 2] arrays of diagrams."""
    w0 = max([w0, *(len(d[0]) for d in diagrams)])
    w1 = max([w1, *(len(d[1]) for d in diagrams)])
    h0 = np.full((len(diagrams), w0), np.nan, dtype=np.float32)
    h1 = np.full((len(diagrams), w1, 2), np.nan, dtype=np.float32)
    for j, (a, b) in enumerate(diagrams):
        h0[j, : len(a)] = a
        h1[j, : len(b)] = b
    return h0, h1


def _widen(arr: np.ndarray, width: int) -> np.ndarray:
    """Pad axis 1 of a NaN-padded array to `width`."""
    if arr.shape[1] >= width:
        return arr
    pad = [(0, 0), (0, width - arr.shape[1])] + [(0, 0)] * (arr.ndim - 2)
    return np.pad(arr, pad, constant_values=np.nan)


@dataclass
class _Entry:
    reservoir: Reservoir
    model: EntityBaseline | None = None
    last_admit: float = -np.inf
    last_refresh: float = -np.inf
    # Normalisation in use before the first fit: the first window's own robust statistics,
    # frozen so every warm-up diagram is computed alike.
    center: np.ndarray | None = None
    scale: np.ndarray | None = None
    # The entity's own recent raw distances (one per admission interval, healthy or not):
    # once long enough, scores are their empirical CDF (see BaselineStore.score).
    # (A float32 array, not a list: 432 Python floats per entity cost ~14 KB, 10x more.)
    raw_hist: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.float32))
    last_raw: float = -np.inf
    # The last cycle the entity was in the window (-inf: not since a restore); `forget`.
    seen: float = -np.inf
    # Diagram summaries [n, SUMMARY_SIZE] (float16: counts and robust units need no more) and
    # their times, appended with raw_hist (raw may be NaN while no reference exists yet).
    vec_hist: np.ndarray = field(default_factory=lambda: np.empty((0, SUMMARY_SIZE),
                                                                  dtype=np.float16))
    hist_times: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.float64))
    # When center/scale were last re-estimated from the reservoir (-inf: still the first
    # window's); see BaselineStore.renormalise.
    normalised_at: float = -np.inf
    # Summaries taken before this time were in other units (UNITS_TOLERANCE): no references.
    comparable_since: float = -np.inf
    # Seasonal levels (exporter/tda/seasonal.py) and, appended with raw_hist (aligned, NaN
    # where not computed), the seasonal deviations, the Fisher statistics and their moving
    # averages (BaselineStore.score); `pending`: this cycle's (time, level [S], deviation,
    # Fisher statistic, moving average, drift, pooled deviation) from score() for update().
    levels: SeasonalLevels | None = None
    seas_hist: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.float32))
    fis_hist: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.float32))
    smooth_hist: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.float32))
    # The CUSUM of the Fisher statistics (seasonal.drift), aligned the same way.
    drift_hist: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.float32))
    # The seasonal deviations on the pooled scale (the exported score's level), aligned the
    # same way; `pending` ends with this cycle's.
    pooled_hist: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.float32))
    # When the raw distance's references turned to the same time of day (`_references`;
    # NaN: not yet; -inf: before this history, e.g. restored): raw distances from before
    # are not calibration values for later ones (the onset's topology p-value).
    seasonal_since: float = float("nan")
    pending: tuple[float, np.ndarray, float, float, float, float, float] | None = None
    # seasonal.tail_fit of the finite raw_hist, seas_hist, smooth_hist, drift_hist,
    # pooled_hist (None: to compute; reset when they grow; not saved), and of the raw
    # distances since `seasonal_since` (`_since`; None where that is None), computed with them.
    fits: tuple[tuple[float, float, float, int], ...] | None = None
    since_fit: tuple[float, float, float, int] | None = None


@dataclass(frozen=True, eq=False)
class BaselineView:
    """What one entity's reservoir holds, for display (`BaselineStore.view`; exporter.console).

    windows: admitted (healthy) windows in the reservoir; first, last: their admission times
        (Unix seconds).
    deciles: [S, 9] raw units, per signal the median over the windows of each window's
        10th..90th percentile (the typical healthy window; what the signal contribution
        compares with, `EntityBaseline.fit`).
    diagram: the representative window's score diagram as the reservoir stores it (H0 deaths
        [n0], H1 pairs [n1, 2], robust units of its admission): the medoid of the reservoir's
        diagrams under the score's own metric (L1 between `features.summaries`).
    cloud: [P, S] that window's coarse score cloud in raw units; at: its admission time.
    center, scale: [S] the normalisation the entity's live windows use now.
    fitted: whether a baseline has been fitted (else the reservoir is still warming up).
    """

    windows: int
    first: float
    last: float
    deciles: np.ndarray
    diagram: Diagram
    cloud: np.ndarray
    at: float
    center: np.ndarray
    scale: np.ndarray
    fitted: bool


def medoid(vectors: np.ndarray) -> int:
    """Row of vectors [n, K] with the smallest total L1 distance to the others (n >= 1)."""
    dist = np.abs(vectors[:, None, :] - vectors[None, :, :]).sum(axis=(1, 2))
    return int(np.argmin(dist))


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
                 admit_every: float, admit_quantile: float = 0.9, window: float = 7200.0,
                 points: int = 12):
        self.signals = signals
        self.points = points  # score_points: the reservoir's clouds' width
        # One own raw distance per coarse point's span (10 min for a 2 h window of 12 points).
        self.raw_every = window / points
        self.size = size
        self.refresh_every = refresh_every
        self.admit_every = admit_every
        self.admit_quantile = admit_quantile
        # Windows closer than this in time overlap: never compared for distances.
        self.window = window
        self.entries: dict[tuple[str, ...], _Entry] = {}

    def distance(self, keys: tuple[tuple[str, ...], ...], vecs: np.ndarray,
                 now: float) -> np.ndarray:
        """Raw anomaly distances [E] of summaries vecs [E, SUMMARY_SIZE] (NaN rows: none).

        L1 distance to the entity's own past summaries that do not overlap the window
        (>= one window ago), restricted to the same time of day (+-PHASE_TOLERANCE) once the
        history spans a day (SEASONAL); the mean of the NEIGHBOURS nearest. NaN without any
        reference.
        """
        out = np.full(len(keys), np.nan)
        finite = np.isfinite(vecs).all(axis=1) if len(keys) else np.zeros(0, dtype=bool)
        # Entities that joined together share their history times (one per raw_every): their
        # reference rows are found once per cycle, and their distances computed together
        # (row-wise: each entity's values are those of its own computation, tested).
        groups: dict[bytes, tuple[np.ndarray, list[int], list[np.ndarray]]] = {}
        for i, key in enumerate(keys):
            entry = self.entries.get(key)
            if entry is None or not finite[i] or not len(entry.hist_times):
                continue
            # The cut only where it leaves rows out: entities that joined together keep
            # sharing their references once their units' move has left the history.
            cut = entry.comparable_since if entry.comparable_since >= entry.hist_times[0] \
                else -math.inf
            same = entry.hist_times.tobytes() + np.float64(cut).tobytes()
            group = groups.get(same)
            if group is None:
                group = groups[same] = (self._references(entry.hist_times, now, cut), [], [])
            if len(group[0]):
                group[1].append(i)
                group[2].append(entry.vec_hist[group[0]])
        for rows, idx, refs in groups.values():
            if len(idx) == 1:  # alone: its own arrays (the same values, less fixed cost)
                dist = np.abs(refs[0].astype(np.float64) - vecs[idx[0]]).sum(axis=1)
                k = min(NEIGHBOURS, len(dist))
                out[idx[0]] = float(np.median(dist)) if NEIGHBOURS <= 0 else \
                    float(np.partition(dist, k - 1)[:k].sum()) / k
                continue
            if not idx:
                continue
            # [G, R]: L1 over the summary, per entity and reference.
            dist = np.abs(np.stack(refs).astype(np.float64) - vecs[idx][:, None, :]).sum(axis=2)
            if NEIGHBOURS <= 0:
                for i, d in zip(idx, dist, strict=True):
                    out[i] = float(np.median(d))
                continue
            k = min(NEIGHBOURS, len(rows))
            # The mean of the k smallest: np.mean's sum and division, without its wrapper.
            near = np.partition(dist, k - 1, axis=1)[:, :k].sum(axis=1)
            out[idx] = [float(v) / k for v in near.tolist()]
        return out

    def _references(self, times: np.ndarray, now: float,
                    comparable_since: float = -math.inf) -> np.ndarray:
        """Rows of an entity's history (`hist_times`, ascending) that `distance` compares
        with: at least a window old, at the same time of day once a day old, the newest
        MAX_REFERENCES; among those taken in the current units (after `comparable_since`,
        the cycle that re-estimated them) where any of them is a window old, else among all (the window
        after a re-estimate of the units is still compared, as before it was kept)."""
        if comparable_since > -math.inf:
            # side="right": the summary stored in the cycle that re-estimated the units was
            # computed before it, in the old ones.
            first = int(times.searchsorted(comparable_since, side="right"))
            if first < len(times) and now - times[first] >= self.window:
                return first + self._references(times[first:], now)
        age = now - times
        ok = age >= self.window
        # hist_times ascend (appended with a later `now`): the oldest is the first.
        if SEASONAL and age[0] >= DAY - PHASE_TOLERANCE:
            phase = np.abs((age + DAY / 2) % DAY - DAY / 2)
            ok &= phase <= PHASE_TOLERANCE
        return np.flatnonzero(ok)[-MAX_REFERENCES:]

    def score(self, keys: tuple[tuple[str, ...], ...], raw: np.ndarray,
              now: float | None = None, coarse: Clouds | None = None,
              sustained: np.ndarray | None = None,
              admit: np.ndarray | None = None) -> np.ndarray:
        """Calibrated 0..1 scores [E] of raw distances [E] (NaN with fewer than
        MIN_RAW_HISTORY own distances, or without a raw distance).

        Without `now` and `coarse` (the window's coarse score clouds in raw units, whose
        newest point per entity is its level), or with FUSION off: the share of the entity's
        own recent raw distances (three days at most, one per window/score_points) below the
        current one, ties counting half (mid-rank empirical CDF: 0.99 = exceeded by 1 window
        in 100 of this entity's own).

        Fused (exporter/tda/seasonal.py): p_topology = `survival(raw, raw history)`,
        p_level = `survival(seasonal deviation, its history)` (MAD scale), and Fisher's
        statistic of the two (fis = -2 ln p, 2 degrees of freedom). The sustained form: that
        statistic averaged over the last SMOOTH seconds of its own history (fast) and
        accumulated by a CUSUM (`seasonal.drift`, slow), each calibrated as 1 - `survival`
        under the entity's own history of it, combined by `seasonal.tippett` (0.99 still
        means 1 window in 100 of its own). The exported score (EXPORTED "onset", ONSET on):
        this cycle's Fisher p-value read as such, 1 - e^(-fis/2), with p_level on the pooled
        scale (once MIN_LEVEL_HISTORY pooled deviations exist) and p_topology under the raw
        distances since the references turned to the same time of day (`_since`, once
        MIN_RAW_HISTORY of them exist); the sustained form where neither p-value exists
        (EXPORTED "views": Tippett of the onset, the average and the drift, a measured
        variant). p_level counts once MIN_LEVEL_HISTORY deviations exist; the drift once
        MIN_SMOOTH_HISTORY of its values do; every form falls back to the ECDF above while
        the history of averages is shorter than MIN_SMOOTH_HISTORY (an entity's first day).
        Stashes the cycle's level and statistics in the entity for `update` (which keeps
        them).

        sustained: an [E] array filled, where given, with the sustained form (the 30-min
        average and the drift; the ECDF where not fused or in the first day): what the
        topology agent and the decision stage's sustained-anomaly warning read.
        admit: likewise, what the baseline's admission reads (ADMIT "average": the
        calibrated 30-min average alone; "sustained": the sustained form).
        """
        out = np.full(len(keys), np.nan)
        if sustained is not None:
            sustained[:] = np.nan
        if admit is not None:
            admit[:] = np.nan
        fused = FUSION and now is not None and coarse is not None
        if fused:
            level, seas, pooled = self._levels(keys, now, coarse)  # type: ignore[arg-type]
        for i, key in enumerate(keys):
            entry = self.entries.get(key)
            if entry is None:
                continue
            if fused:
                out[i], held, adm = self._fused(entry, float(raw[i]),
                                                now, level[i], seas[i],  # type: ignore[arg-type]
                                                pooled[i])
                if sustained is not None:
                    sustained[i] = held
                if admit is not None:
                    admit[i] = adm
                continue
            if not np.isfinite(raw[i]):
                continue
            out[i] = _ecdf(np.float32(raw[i]), entry.raw_hist)
            if sustained is not None:
                sustained[i] = out[i]
            if admit is not None:
                admit[i] = out[i]
        return out

    def _levels(self, keys: tuple[tuple[str, ...], ...], now: float,
                coarse: Clouds) -> tuple[list[np.ndarray], list[float], list[float]]:
        """Each entity's level (its coarse cloud's newest point [E, S], raw units; NaN
        without one) and seasonal deviations [E] on the MAD and on the pooled scale
        (`SeasonalLevels.deviation`, all entities at once; NaN without an entry, or
        SEASONAL_LEVEL off). Gives each known entity its SeasonalLevels."""
        n = coarse.counts
        stacked: np.ndarray | None = None
        if len(keys) < BATCH_MIN:  # one by one (an array step's fixed cost is more)
            level = [coarse.points[i, c - 1].copy() if c > 0 else
                     np.full(len(self.signals), np.nan) for i, c in enumerate(n.tolist())]
        else:
            stacked = coarse.points[np.arange(len(n)), np.maximum(n - 1, 0)]
            stacked[n == 0] = np.nan
            level = list(stacked)
        seas = [float("nan")] * len(keys)
        pooled = [float("nan")] * len(keys)
        rows, levels = [], []
        for i, key in enumerate(keys):
            entry = self.entries.get(key)
            if entry is None:
                continue
            if entry.levels is None:
                entry.levels = SeasonalLevels(len(self.signals))
            rows.append(i)
            levels.append(entry.levels)
        if SEASONAL_LEVEL and stacked is None:
            for i, lv in zip(rows, levels, strict=True):
                seas[i] = lv.deviation(level[i], now)
                pooled[i] = lv.deviation(level[i], now, pooled=True)
        elif SEASONAL_LEVEL and stacked is not None and rows:
            mad, pool = deviations(levels, stacked[rows], now)
            for i, dev, dev_p in zip(rows, mad.tolist(), pool.tolist(), strict=True):
                seas[i], pooled[i] = dev, dev_p
        return level, seas, pooled

    def _fused(self, entry: _Entry, raw: float, now: float, level: np.ndarray,
               seas: float, pooled: float) -> tuple[float, float, float]:
        """One entity's fused score, its sustained form and what admission reads (see
        `score`) from its level [S]
        and seasonal deviations on the MAD and the pooled scale (`_levels`); stashes
        `entry.pending`."""
        nan = float("nan")
        entry.pending = (now, level, seas, nan, nan, nan, pooled)
        if SEASONAL and entry.seasonal_since != entry.seasonal_since \
                and len(entry.hist_times) \
                and now - _comparable_start(entry) >= DAY - PHASE_TOLERANCE:
            entry.seasonal_since = now  # `_references` turns to the same time of day
            entry.fits = None
        if not math.isfinite(raw):
            return nan, nan, nan
        if entry.fits is None:
            entry.fits = tuple(tail_fit(h) for h in (
                entry.raw_hist, entry.seas_hist, entry.smooth_hist, entry.drift_hist,
                entry.pooled_hist))
            since = _since(entry)
            entry.since_fit = None if since is None else tail_fit(since)
        fit_raw, fit_seas, fit_smooth, fit_drift, fit_pooled = entry.fits
        fit_since = entry.since_fit
        if fit_raw[3] < MIN_RAW_HISTORY:
            return nan, nan, nan
        p_level = float("nan")
        if math.isfinite(seas) and fit_seas[3] >= MIN_LEVEL_HISTORY:
            p_level = survival(seas, entry.seas_hist, fit_seas)
        p_topology = survival(raw, entry.raw_hist, fit_raw) if TOPOLOGY else float("nan")
        fis = fisher(p_topology, p_level)
        # hist_times ascend: the statistics of the last SMOOTH seconds are a suffix.
        recent = entry.fis_hist[entry.hist_times.searchsorted(now - SMOOTH):]
        recent = recent[np.isfinite(recent)]
        smooth = (fis + float(recent.sum())) / (1 + len(recent))
        # The drift accumulates only statistics with every term (the level's p-value joins
        # after MIN_LEVEL_HISTORY): a CUSUM adds up any bias, and an entity's first day's
        # p-values come from hours of its own history (measured: a healthy entity's second
        # day above 0.95 on 26 % of cycles when it started with the topology's alone).
        whole = math.isfinite(p_level) or not SEASONAL_LEVEL
        slow = drift(_last_finite(entry.drift_hist), fis) if whole else nan
        entry.pending = (now, level, seas, fis, smooth, slow, pooled)
        if fit_smooth[3] < MIN_SMOOTH_HISTORY:
            first = _ecdf(np.float32(raw), entry.raw_hist)
            return first, first, first
        fast = 1.0 - survival(smooth, entry.smooth_hist, fit_smooth)
        held = nan
        if DRIFT and fit_drift[3] >= MIN_SMOOTH_HISTORY:
            held = 1.0 - survival(slow, entry.drift_hist, fit_drift)
        sustained = tippett(fast, held)
        adm = fast if ADMIT == "average" else sustained
        if not ONSET or not seasonal.FISHER_DOF:
            return sustained, sustained, adm
        # The onset: Fisher's combined p-value of this cycle itself (fis = -2 ln p).
        onset_fis = fis
        if EXPORTED == "onset":
            # Its topology p-value only from raw distances with the same references: from
            # the day they turned to the same time of day on (they are larger then; against
            # the first day's, 34 % of a healthy entity's next 6 h had p < 0.05), once
            # MIN_RAW_HISTORY of those exist (the whole history's until then).
            since = _since(entry)
            if since is not None and fit_since is not None and TOPOLOGY \
                    and fit_since[3] >= MIN_RAW_HISTORY:
                p_topology = survival(raw, since, fit_since)
            # Its level on the pooled scale (the same number of own values as the MAD's).
            if math.isfinite(p_level) and math.isfinite(pooled) \
                    and fit_pooled[3] >= MIN_LEVEL_HISTORY:
                p_level = survival(pooled, entry.pooled_hist, fit_pooled)
            onset_fis = fisher(p_topology, p_level)
        # (None without any p-value: fisher() gives 0 then, which is no evidence.)
        if not (math.isfinite(p_topology) or math.isfinite(p_level)):
            return sustained, sustained, adm
        onset = -math.expm1(-0.5 * onset_fis) + 0.0  # + 0.0: never a negative zero
        if EXPORTED == "onset":
            return onset, sustained, adm
        return tippett(fast, held, onset), sustained, adm

    def warming(self, keys: tuple[tuple[str, ...], ...]) -> np.ndarray:
        """[E] True where the score is not yet exported: fewer than MIN_RAW_HISTORY own
        distances (an unknown score is honest where a badly calibrated one pages)."""
        out = np.ones(len(keys), dtype=bool)
        for i, key in enumerate(keys):
            entry = self.entries.get(key)
            if entry is not None:
                out[i] = np.count_nonzero(np.isfinite(entry.raw_hist)) < MIN_RAW_HISTORY
        return out

    def history_seconds(self, keys: tuple[tuple[str, ...], ...], now: float) -> np.ndarray:
        """[E] seconds from each entity's oldest own score-history entry (the raw distances
        its score is calibrated on: RAW_HISTORY of them, three days at most) to `now`; 0 for
        an entity without one (new, or relearning after its state was refused)."""
        out = np.zeros(len(keys))
        for i, key in enumerate(keys):
            entry = self.entries.get(key)
            if entry is not None and len(entry.hist_times):
                out[i] = max(now - float(entry.hist_times[0]), 0.0)
        return out

    def models(self, keys: tuple[tuple[str, ...], ...]) -> list[EntityBaseline | None]:
        """Each entity's fitted baseline, or None while it has none yet (same order as keys)."""
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
               raw: np.ndarray, vecs: np.ndarray, replay: bool = False) -> int:
        """Admit healthy windows, refit due baselines; return how many were refitted.

        diagrams: the score clouds' diagrams; clouds: the same clouds in raw units.
        raw, vecs: this window's raw distance [E] and summaries [E, SUMMARY_SIZE] (history).
        replay: a cold-start replay; refits only every REPLAY_REFIT_EVERY (a refit every
            30 min of replayed history was half of the replay's CPU).
        """
        refresh_every = max(self.refresh_every, REPLAY_REFIT_EVERY) if replay else \
            self.refresh_every
        refits = 0
        finite = np.isfinite(vecs).all(axis=1) if len(keys) else np.zeros(0, dtype=bool)
        # Not yet calibrated (NaN) counts as healthy: the reservoir only sets the
        # normalisation, the contributions and the Betti scale.
        with np.errstate(invalid="ignore"):
            hot = np.isfinite(scores) & (scores > self.admit_quantile)
        counts = clouds.counts.tolist()
        due_fits: list[tuple[_Entry, bool, float]] = []
        # This cycle's levels, counted in the seasonal statistics together after the loop
        # (nothing below reads them).
        seasonal: list[SeasonalLevels] = []
        seasonal_levels: list[np.ndarray] = []
        for i, key in enumerate(keys):
            dgm = diagrams[i]
            if dgm is None or counts[i] == 0:
                continue
            entry = self.entries.get(key)
            if entry is None:
                entry = self.entries[key] = _Entry(
                    Reservoir(self.points, len(self.signals)),
                    center=center[i].copy(), scale=scale[i].copy())
            pending = entry.pending if entry.pending is not None and \
                entry.pending[0] == now else None
            entry.pending = None
            if pending is not None and entry.levels is not None:
                seasonal.append(entry.levels)
                seasonal_levels.append(pending[1])
            if finite[i] and now - entry.last_raw >= self.raw_every:
                keep = slice(-(RAW_HISTORY - 1), None)
                if RESTART_AT_SWITCH and SEASONAL and len(entry.hist_times):
                    switch = entry.hist_times[0] + DAY - PHASE_TOLERANCE
                    if entry.last_raw < switch <= now:
                        entry.raw_hist = np.full_like(entry.raw_hist, np.nan)
                entry.raw_hist = _push(entry.raw_hist, keep, np.float32(raw[i]))
                stats = pending[2:] if pending is not None else (np.nan,) * 5
                entry.seas_hist = _push(entry.seas_hist, keep, np.float32(stats[0]))
                entry.fis_hist = _push(entry.fis_hist, keep, np.float32(stats[1]))
                entry.smooth_hist = _push(entry.smooth_hist, keep, np.float32(stats[2]))
                entry.drift_hist = _push(entry.drift_hist, keep, np.float32(stats[3]))
                entry.pooled_hist = _push(entry.pooled_hist, keep, np.float32(stats[4]))
                entry.fits = None
                entry.vec_hist = np.concatenate([entry.vec_hist[keep],
                                                 vecs[i][None].astype(np.float16)])
                entry.hist_times = _push(entry.hist_times, keep, now)
                entry.last_raw = now
            res = entry.reservoir
            if not hot[i] and now - entry.last_admit >= self.admit_every:
                res.append(clouds.cloud(i), dgm, deciles[i], float(h0_median[i]), now,
                           self.size)
                entry.last_admit = now
            first = entry.model is None
            due = first and ready(res.times, now, self.window)
            due |= not first and now - entry.last_refresh >= refresh_every
            if not due:
                continue
            # Stagger refits and re-normalisations: a stable per-key phase spreads them over
            # cycles (a fleet started together would otherwise re-normalise in one cycle).
            phase = shard_of(key, 1000) / 1000.0
            if first:
                entry.normalised_at = now - phase * RENORMALISE_EVERY
            elif now - entry.normalised_at >= RENORMALISE_EVERY:
                self.renormalise(entry, now, self.size)
            due_fits.append((entry, first, phase))
        add_levels(seasonal, seasonal_levels, now)
        # The refits after the loop (an entity's fit reads only its own state): the typical
        # deciles of REFIT_BLOCK of them per call, NaN-padded (each column's median counts
        # its own finite values, so the padding changes nothing: the same bits as one by
        # one). In blocks, so a cycle where every entity refits (a restart after downtime:
        # all are due at once, and stay in step) needs a few MiB, not GiB, of temporaries.
        for lo in range(0, len(due_fits), REFIT_BLOCK):
            refits += self._refit(due_fits[lo : lo + REFIT_BLOCK], now)
        return refits

    def _refit(self, due_fits: list[tuple[_Entry, bool, float]], now: float) -> int:
        """Fit the baselines of due_fits (entry, first fit, stagger phase); returns how many."""
        refits = 0
        width = max((len(e.reservoir.deciles) for e, _, _ in due_fits), default=0)
        stack = np.full((len(due_fits), width, len(self.signals), len(DECILES)), np.nan,
                        dtype=np.float32)
        for j, (entry, _, _) in enumerate(due_fits):
            stack[j, : len(entry.reservoir.deciles)] = entry.reservoir.deciles
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            typical = nan_percentile(stack, [50.0], axis=1, always_sort=True)[0] \
                if due_fits else stack.reshape(0, *stack.shape[2:])
        for (entry, first, phase), typ in zip(due_fits, typical, strict=True):
            res = entry.reservoir
            entry.model = EntityBaseline().fit(
                _LazyDiagrams(res), res.h0_medians.tolist(), res.deciles, res.times, now,
                self.window, entry.center, entry.scale, typ,  # type: ignore[arg-type]
            )
            entry.last_refresh = now - phase * self.refresh_every if first else now
            refits += 1
        return refits

    @staticmethod
    def renormalise(entry: _Entry, now: float, size: int) -> None:
        """Re-estimate the entity's normalisation from its reservoir's raw score clouds.

        The first window's robust statistics (2 h) mis-scale every signal with a daily
        pattern or a sparse one; the reservoir's clouds span up to `size` admission intervals
        of healthy history. The reservoir's diagrams are not recomputed (they were, while
        the score measured distances to reservoir prototypes; since issue 14 the score
        compares summaries with the entity's own history, and the recomputation was a third
        of the replay's CPU in benchmarks/eval_anomaly.py). The summary history is kept, as
        the raw-distance history is: once the reservoir is full the units change slowly.
        While it fills (`size`: the store's reservoir size), a
        re-estimate that moves a signal's scale by more than UNITS_TOLERANCE makes the
        summaries taken before it no references (`comparable_since`) and the same-time-of-day
        switch is found again on the new units' history.
        """
        from exporter.tda.embedding import robust_stats

        res = entry.reservoir
        arr = res.cloud_arr.astype(np.float64)  # [n, P, S], NaN rows pad short clouds
        flat = arr.reshape(-1, arr.shape[2])
        # Per signal over every point that is not padding (a signal missing from a window is
        # NaN in that window's points, left out of that signal's statistics only; one the
        # entity never had stays NaN, its z 0). On complete clouds: the same points as ever.
        center, scale = robust_stats(flat[np.isfinite(flat).any(axis=1)].T[None])
        # Only while the reservoir is still filling, before it holds `size` windows or spans
        # a day (its units still forming): later moves are the entity's own drift, which
        # the calibration follows.
        forming = len(res.times) < size and (
            len(res.times) < 2 or res.times[-1] - res.times[0] < DAY - PHASE_TOLERANCE)
        if UNITS_TOLERANCE > 0 and entry.scale is not None and forming:
            with np.errstate(divide="ignore", invalid="ignore"):
                moved = np.abs(np.log(scale[0] / entry.scale))
            if np.any(moved[np.isfinite(moved)] > math.log(UNITS_TOLERANCE)):
                entry.comparable_since = now
                # The same-time-of-day switch is found again on the new units' history.
                if entry.seasonal_since == entry.seasonal_since:
                    entry.seasonal_since = float("nan")
                    entry.fits = None
        entry.center, entry.scale = center[0], scale[0]
        entry.normalised_at = now

    def view(self, key: tuple[str, ...]) -> BaselineView | None:
        """Read-only summary of one entity's reservoir (None while it holds no window).

        Cost: one pass over at most `size` windows (medoid of [n, SUMMARY_SIZE] summaries,
        ~1 ms at n = 72), on demand: nothing is computed per cycle. Safe to call from another
        thread while the stage runs: it reads each array once (a concurrent admission replaces
        arrays, never edits them in place) and aligns them on their newest rows.
        """
        entry = self.entries.get(key)
        if entry is None:
            return None
        res, model = entry.reservoir, entry.model
        times, deciles, clouds = res.times, res.deciles, res.cloud_arr
        h0, h1 = res.h0_arr, res.h1_arr
        n = min(len(times), len(deciles), len(clouds), len(h0), len(h1))
        if n == 0:
            return None
        times, deciles, clouds, h0, h1 = times[-n:], deciles[-n:], clouds[-n:], h0[-n:], h1[-n:]
        diagrams = [(a[np.isfinite(a)].astype(np.float64), b[np.isfinite(b[:, 0])].astype(
            np.float64)) for a, b in zip(h0, h1, strict=True)]
        j = medoid(np.nan_to_num(summaries(diagrams)))
        cloud = clouds[j][~np.isnan(clouds[j]).all(axis=1)].astype(np.float64)
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a signal without any sample
            typical = nan_percentile(deciles.astype(np.float64), [50.0], axis=0)[0]
        center = model.center_ if model is not None else entry.center
        scale = model.scale_ if model is not None else entry.scale
        s = len(self.signals)
        return BaselineView(n, float(times[0]), float(times[-1]), typical, diagrams[j], cloud,
                            float(times[j]), _or_nan(center, s).copy(), _or_nan(scale, s).copy(),
                            model is not None)

    def forget(self, keep: set[tuple[str, ...]], now: float | None = None,
               after: float = FORGET_AFTER) -> None:
        """Drop the entities gone from the source: not in `keep` (this cycle's entities), and
        with `now` (Unix seconds) only those not in it for more than `after` seconds (an
        entity whose absence started before a restore counts from the first call after it).
        Without `now`, every entity not in `keep` at once."""
        if now is None:
            for key in [k for k in self.entries if k not in keep]:
                del self.entries[key]
            return
        gone = []
        for key, entry in self.entries.items():
            if key in keep or entry.seen == -np.inf:
                entry.seen = now
            elif now - entry.seen > after:
                gone.append(key)
        for key in gone:
            del self.entries[key]

    # ---------------------------------------------------------------------------------------
    # Persistence as flat numeric/unicode arrays (no pickle).

    def state(self) -> dict[str, np.ndarray]:
        """Arrays to persist (format STATE_FORMAT): entity keys, reservoirs, models and score
        histories; `restore` reads them back."""
        keys = list(self.entries)
        s = len(self.signals)
        out: dict[str, np.ndarray] = {
            "format": np.array([STATE_FORMAT], dtype=np.int64),
            # What `pooled_hist` holds: deviations combined over signals this way.
            "pooled_combine": np.array([seasonal.POOLED_COMBINE], dtype=str),
            "signals": np.array(self.signals, dtype=str),
            "keys": np.array([encode_entity_key(k) for k in keys], dtype=str)
            if keys else np.array([], dtype=str),
            "key_lengths": np.array([len(k) for k in keys], dtype=np.int64),
            "last_admit": np.array([self.entries[k].last_admit for k in keys]),
            "last_refresh": np.array([self.entries[k].last_refresh for k in keys]),
            "norm_center": np.array([_or_nan(self.entries[k].center, s) for k in keys]
                                    ).reshape(-1, s),
            "norm_scale": np.array([_or_nan(self.entries[k].scale, s) for k in keys]
                                   ).reshape(-1, s),
        }
        reservoirs = [self.entries[k].reservoir for k in keys]
        out["reservoir_counts"] = np.array([len(r) for r in reservoirs], dtype=np.int64)
        out.update(_pack("reservoir", [d for r in reservoirs for d in r.diagrams]))
        out["reservoir_times"] = np.concatenate([r.times for r in reservoirs] or [np.empty(0)])
        out["reservoir_clouds"] = np.concatenate(
            [r.cloud_arr for r in reservoirs] or [np.empty((0, self.points, s), np.float32)])
        out["reservoir_h0_medians"] = np.concatenate(
            [r.h0_medians for r in reservoirs] or [np.empty(0, np.float32)])
        out["reservoir_deciles"] = np.concatenate(
            [r.deciles for r in reservoirs] or [np.empty((0, s, len(DECILES)), np.float32)])
        out["normalised_at"] = np.array([self.entries[k].normalised_at for k in keys])
        out["seasonal_since"] = np.array([self.entries[k].seasonal_since for k in keys])
        out["comparable_since"] = np.array([self.entries[k].comparable_since for k in keys])
        fitted = [self.entries[k].model for k in keys]
        out["fitted"] = np.array([m is not None for m in fitted], dtype=bool)
        models = [m for m in fitted if m is not None]
        out["center"] = np.array([m.center_ for m in models]).reshape(-1, s)
        out["scale"] = np.array([m.scale_ for m in models]).reshape(-1, s)
        out["zdeciles"] = np.array([m.zdeciles_ for m in models]).reshape(-1, s, len(DECILES))
        out["betti_scale"] = np.array([m.betti_scale_ for m in models])
        out["proto_counts"] = np.array([len(m.prototypes_) for m in models], dtype=np.int64)
        out.update(_pack("proto", [p for m in models for p in m.prototypes_]))
        out["rawhist_counts"] = np.array([len(self.entries[k].raw_hist) for k in keys],
                                         dtype=np.int64)
        out["rawhist"] = np.array([x for k in keys for x in self.entries[k].raw_hist.tolist()],
                                  dtype=np.float64)
        out["last_raw"] = np.array([self.entries[k].last_raw for k in keys])
        out["hist_times"] = np.concatenate([self.entries[k].hist_times for k in keys]
                                           or [np.empty(0)])
        out["vec_hist"] = np.concatenate([self.entries[k].vec_hist for k in keys]
                                         or [np.empty((0, SUMMARY_SIZE), np.float16)])
        for name in ("seas_hist", "fis_hist", "smooth_hist", "drift_hist", "pooled_hist"):
            out[name] = np.concatenate([getattr(self.entries[k], name) for k in keys]
                                       or [np.empty(0, np.float32)])
        levels = [self.entries[k].levels for k in keys]
        out["levels_present"] = np.array([lv is not None for lv in levels], dtype=bool)
        kept = [lv for lv in levels if lv is not None]
        out["levels_hours"] = np.array([lv.hours for lv in kept], dtype=np.int64
                                       ).reshape(-1, SLOTS)
        out["levels_means"] = np.array([lv.means for lv in kept], dtype=np.float32
                                       ).reshape(-1, SLOTS, s)
        out["levels_m2"] = np.array([lv.m2 for lv in kept], dtype=np.float32
                                    ).reshape(-1, SLOTS, s)
        out["levels_counts"] = np.array([lv.counts for lv in kept], dtype=np.uint8
                                        ).reshape(-1, SLOTS, s)
        return out

    def restore(self, arrays: dict[str, np.ndarray]) -> None:
        """Load `state()` arrays. Raises BaselineError when they have another format, other
        signals or other shapes (the baselines are then relearned)."""
        saved = int(arrays["format"][0]) if "format" in arrays else 1
        if saved != STATE_FORMAT:
            raise BaselineError(f"saved baselines have format {saved}, this version reads "
                                f"{STATE_FORMAT}: they are relearned")
        if tuple(arrays["signals"].tolist()) != self.signals:
            raise BaselineError("saved baselines have other signals")
        keys = [decode_entity_key(str(k), int(n)) for k, n in
                zip(arrays["keys"].tolist(), arrays["key_lengths"].tolist(), strict=True)]
        if arrays["reservoir_clouds"].shape[1:] != (self.points, len(self.signals)):
            raise BaselineError(f"saved baselines have {arrays['reservoir_clouds'].shape[1]} "
                                f"score points, the analysis {self.points}")
        res = _unpack("reservoir", arrays)
        protos = _unpack("proto", arrays)
        entries: dict[tuple[str, ...], _Entry] = {}
        same_pooled = "pooled_hist" in arrays and "pooled_combine" in arrays \
            and str(arrays["pooled_combine"][0]) == seasonal.POOLED_COMBINE
        r = p = m = h = lv = 0
        for i, key in enumerate(keys):
            n = int(arrays["reservoir_counts"][i])
            reservoir = Reservoir(self.points, len(self.signals))
            reservoir.cloud_arr = arrays["reservoir_clouds"][r : r + n].astype(np.float32)
            reservoir.set_diagrams(res[r : r + n])
            reservoir.deciles = arrays["reservoir_deciles"][r : r + n].astype(np.float32)
            reservoir.h0_medians = arrays["reservoir_h0_medians"][r : r + n].astype(np.float32)
            reservoir.times = arrays["reservoir_times"][r : r + n].astype(np.float64)
            entry = _Entry(reservoir, None, float(arrays["last_admit"][i]),
                           float(arrays["last_refresh"][i]),
                           arrays["norm_center"][i].copy(), arrays["norm_scale"][i].copy())
            r += n
            k = int(arrays["rawhist_counts"][i])
            entry.raw_hist = arrays["rawhist"][h : h + k].astype(np.float32)
            entry.hist_times = arrays["hist_times"][h : h + k].astype(np.float64)
            entry.vec_hist = arrays["vec_hist"][h : h + k].astype(np.float16)
            entry.seas_hist = arrays["seas_hist"][h : h + k].astype(np.float32)
            entry.fis_hist = arrays["fis_hist"][h : h + k].astype(np.float32)
            entry.smooth_hist = arrays["smooth_hist"][h : h + k].astype(np.float32)
            # Saved before the drift existed: none yet (it restarts from 0).
            entry.drift_hist = (arrays["drift_hist"][h : h + k].astype(np.float32)
                                if "drift_hist" in arrays else np.full(k, np.nan, np.float32))
            # Saved before the pooled scale was kept, or combined over signals another way
            # (before "joint": the max): none yet (the onset reads the MAD scale's level
            # until MIN_LEVEL_HISTORY of them exist).
            entry.pooled_hist = (arrays["pooled_hist"][h : h + k].astype(np.float32)
                                 if same_pooled else np.full(k, np.nan, np.float32))
            if arrays["levels_present"][i]:
                # A ring of another length (saved before the week's ring: 74 slots) is
                # re-placed hour by hour (`SeasonalLevels.restored`), not relearned.
                entry.levels = SeasonalLevels.restored(
                    arrays["levels_hours"][lv], arrays["levels_means"][lv],
                    arrays["levels_m2"][lv], arrays["levels_counts"][lv])
                lv += 1
            entry.last_raw = float(arrays["last_raw"][i])
            entry.normalised_at = float(arrays["normalised_at"][i])
            # Saved before it was kept: every summary counts as comparable.
            entry.comparable_since = (float(arrays["comparable_since"][i])
                                      if "comparable_since" in arrays else -math.inf)
            entry.seasonal_since = (float(arrays["seasonal_since"][i])
                                    if "seasonal_since" in arrays else _switched(entry))
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


def _switched(entry: _Entry) -> float:
    """`seasonal_since` of an entity restored from baselines saved before it was kept: NaN
    while its history spans less than the switch (`_fused` sets it then), the switch's time
    while the history still starts at the entity's first raw distance (RAW_HISTORY not yet
    full) or holds its `comparable_since`, from which the switch then counts (a state
    saved with `comparable_since` also has `seasonal_since`: that case is for completeness),
    else -inf (every raw distance kept was taken after it)."""
    times = entry.hist_times
    if len(times) and entry.comparable_since > times[0]:  # the switch counts from there
        start = _comparable_start(entry)
        return start + DAY - PHASE_TOLERANCE \
            if times[-1] - start >= DAY - PHASE_TOLERANCE else float("nan")
    if not len(times) or times[-1] - times[0] < DAY - PHASE_TOLERANCE:
        return float("nan")
    if len(times) < RAW_HISTORY:
        return float(times[0]) + DAY - PHASE_TOLERANCE
    return -math.inf


def _comparable_start(entry: _Entry) -> float:
    """Time of the entity's first summary in its current units (`comparable_since`): the
    first history row after it, or the history's first row (NaN without any)."""
    times = entry.hist_times
    if not len(times):
        return float("nan")
    if entry.comparable_since < times[0]:
        return float(times[0])
    k = int(times.searchsorted(entry.comparable_since, side="right"))
    return float(times[k]) if k < len(times) else float("nan")


def _since(entry: _Entry) -> np.ndarray | None:
    """The entity's raw distances since its references turned to the same time of day, while
    its history still holds earlier ones (None otherwise: all of them count)."""
    since = entry.seasonal_since
    if not since > -math.inf or not len(entry.hist_times) or entry.hist_times[0] >= since:
        return None
    return entry.raw_hist[entry.hist_times >= since]


def _ecdf(x: np.float32, hist: np.ndarray) -> float:
    """Mid-rank empirical CDF of x among the finite values of hist (NaN with fewer than
    MIN_RAW_HISTORY)."""
    hist = hist[np.isfinite(hist)]
    if len(hist) < MIN_RAW_HISTORY:
        return float("nan")
    return (float(np.count_nonzero(hist < x)) + 0.5 * float(np.count_nonzero(hist == x))) \
        / len(hist)


def _push(hist: np.ndarray, keep: slice, value: float | np.floating) -> np.ndarray:
    """hist[keep] with value appended: np.append(hist[keep], value) where value's dtype
    does not widen hist's (the callers' float32 values, float64 times), without its
    wrapper (six histories per entity and cycle)."""
    kept = hist[keep]
    out = np.empty(len(kept) + 1, dtype=hist.dtype)
    out[:-1] = kept
    out[-1] = value
    return out


def _last_finite(hist: np.ndarray) -> float:
    """The newest finite value of hist (0.0 if none): where the drift's CUSUM resumes."""
    if len(hist) and math.isfinite(hist[-1]):  # the usual case, without a scan
        return float(hist[-1])
    done = np.flatnonzero(np.isfinite(hist))
    return float(hist[done[-1]]) if len(done) else 0.0


def _or_nan(a: np.ndarray | None, n: int) -> np.ndarray:
    return a if a is not None else np.full(n, np.nan)
