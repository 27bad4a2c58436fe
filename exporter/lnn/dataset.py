"""Labelled training windows: history replayed cycle by cycle through the pipeline's feature code.

A `History` is a long block of samples ([E, S, T] on the step grid) plus the incidents of its
entities. `build_samples` walks a simulated clock over it every `stride` steps, cuts the window
the live pipeline would hold at that moment (`Window`, same length and step), runs
`step_features` on it and labels it:

* y_h = 1 when an incident of the entity starts within (t, t + h];
* windows while the entity is down (t inside an incident, or no sample in the newest quarter
  of the window) are dropped: there is nothing to predict;
* ttf = next incident start - t when it is within the largest horizon, else NaN;
* windows whose next incident is flagged unpredictable (simulator ground truth) are kept for
  evaluation but marked so training can leave them out: no precursor exists to learn from.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from exporter.config import AnalysisConfig
from exporter.incidents import Incident
from exporter.lnn.features import TOKENS, step_features
from exporter.windows import EntityKey, Window

# Assumed outage length when an incident has no end (incidents CSV allows an empty end).
DEFAULT_INCIDENT_SECONDS = 1800.0


@dataclass
class History:
    """A long block of one analysis' samples and its incidents.

    incidents: arrays `start`, `end` (NaN = unknown), `entity` (row index), `predictable`.
    family: per-entity scenario family ("" when unknown); group: per-entity split unit
    (e.g. the simulated fleet) so that related entities land in the same split.
    """

    label_names: tuple[str, ...]
    entities: tuple[EntityKey, ...]
    signals: tuple[str, ...]
    timestamps: np.ndarray
    values: np.ndarray
    inc_start: np.ndarray
    inc_end: np.ndarray
    inc_entity: np.ndarray
    inc_predictable: np.ndarray
    family: np.ndarray = field(default_factory=lambda: np.array([], dtype=object))
    group: np.ndarray = field(default_factory=lambda: np.array([], dtype=np.int64))

    def __post_init__(self) -> None:
        n = len(self.entities)
        if len(self.family) != n:
            self.family = np.array([""] * n, dtype=object)
        if len(self.group) != n:
            self.group = np.arange(n, dtype=np.int64)


@dataclass
class Samples:
    """Labelled windows. `entity` is a global id (unique across histories), `t` the cycle time."""

    x: np.ndarray  # [N, TOKENS, F] float32
    y: np.ndarray  # [N, H] float32 0/1
    ttf: np.ndarray  # [N] seconds or NaN
    weight: np.ndarray  # [N] loss weight (inverse of the negative keep rate)
    entity: np.ndarray  # [N] int64
    group: np.ndarray  # [N] int64
    family: np.ndarray  # [N] object
    t: np.ndarray  # [N] float64
    unpredictable: np.ndarray  # [N] bool: next incident within the largest horizon has no precursor

    def __len__(self) -> int:
        return len(self.y)

    def subset(self, mask: np.ndarray) -> Samples:
        """The rows where `mask` ([N] bool or index array) holds, every field alike."""
        return Samples(*(getattr(self, f)[mask] for f in _FIELDS))

    @staticmethod
    def concat(parts: list[Samples]) -> Samples:
        """Rows of `parts` one after the other (at least one part; shapes must agree past axis 0)."""
        return Samples(*(np.concatenate([getattr(p, f) for p in parts]) for f in _FIELDS))


_FIELDS = ("x", "y", "ttf", "weight", "entity", "group", "family", "t", "unpredictable")


def build_samples(
    history: History,
    analysis: AnalysisConfig,
    horizons: tuple[float, ...],
    *,
    stride: int = 5,
    negative_keep: float = 1.0,
    rng: np.random.Generator | None = None,
    entity_offset: int = 0,
    chunk_cycles: int = 64,
) -> Samples:
    """Replay `history` every `stride` steps and return its labelled windows.

    negative_keep < 1 keeps that share of windows with no incident within the largest horizon
    (weighted 1 / negative_keep so the loss still estimates the natural distribution).
    """
    rng = rng or np.random.default_rng(0)
    steps = analysis.steps
    n_ent = len(history.entities)
    n_t = len(history.timestamps)
    hmax = float(max(horizons))
    h_arr = np.asarray(horizons, dtype=np.float64)
    ends = np.arange(steps - 1, n_t, stride)
    parts: list[Samples] = []
    inc_end = np.where(np.isnan(history.inc_end), history.inc_start + DEFAULT_INCIDENT_SECONDS,
                       history.inc_end)
    recent = max(1, steps // 4)
    for c0 in range(0, len(ends), chunk_cycles):
        cyc = ends[c0:c0 + chunk_cycles]
        # Stack (cycle, entity) windows as rows of one Window: one feature call per chunk.
        idx = cyc[:, None] + np.arange(-steps + 1, 1)[None, :]  # [C, steps]
        vals = history.values[:, :, idx]  # [E, S, C, steps]
        vals = np.moveaxis(vals, 2, 0).reshape(len(cyc) * n_ent, len(history.signals), steps)
        t_now = history.timestamps[cyc]
        win = Window(analysis.name, history.label_names,
                     tuple(history.entities) * len(cyc), history.signals,
                     history.timestamps[idx[0]], vals)
        x = step_features(win, analysis, horizon_scale=hmax)
        t_rows = np.repeat(t_now, n_ent)
        e_rows = np.tile(np.arange(n_ent), len(cyc))
        # Next incident start after t, whether t is inside one, per row.
        next_start = np.full(len(t_rows), np.inf)
        next_pred = np.ones(len(t_rows), dtype=bool)
        down = np.zeros(len(t_rows), dtype=bool)
        for s, e, ent, pred in zip(history.inc_start, inc_end, history.inc_entity,
                                   history.inc_predictable, strict=True):
            rows = e_rows == ent
            later = rows & (s > t_rows) & (s < next_start)
            next_start[later] = s
            next_pred[later] = bool(pred)
            down |= rows & (s <= t_rows) & (t_rows < e)
        silent = ~np.isfinite(vals[:, :, -recent:]).any(axis=(1, 2))
        keep = ~down & ~silent
        lead = next_start - t_rows
        y = (lead[:, None] <= h_arr[None, :]).astype(np.float32)
        negative = lead > hmax
        weight = np.ones(len(t_rows))
        if negative_keep < 1.0:
            drop = negative & (rng.random(len(t_rows)) >= negative_keep)
            keep &= ~drop
            weight[negative] = 1.0 / negative_keep
        ttf = np.where(lead <= hmax, lead, np.nan)
        parts.append(Samples(
            x=x[keep], y=y[keep], ttf=ttf[keep], weight=weight[keep],
            entity=(e_rows + entity_offset)[keep].astype(np.int64),
            group=history.group[e_rows][keep].astype(np.int64),
            family=history.family[e_rows][keep],
            t=t_rows[keep], unpredictable=(~next_pred & (lead <= hmax))[keep],
        ))
    if not parts:
        return empty_samples(len(horizons))
    return Samples.concat(parts)


def empty_samples(n_h: int) -> Samples:
    """No rows: x [0, TOKENS, F], y [0, n_h] (a history with no window to replay)."""
    from exporter.lnn.features import FEATURE_NAMES

    return Samples(
        np.zeros((0, TOKENS, len(FEATURE_NAMES)), np.float32), np.zeros((0, n_h), np.float32),
        np.zeros(0), np.zeros(0), np.zeros(0, np.int64), np.zeros(0, np.int64),
        np.zeros(0, dtype=object), np.zeros(0), np.zeros(0, dtype=bool),
    )


def incidents_to_arrays(
    incidents: Sequence[Incident], entities: tuple[EntityKey, ...]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(start, end, entity row, predictable) arrays [N] for incidents of known entities.

    `end` is NaN where the incident has none; incidents of other entities are left out.
    """
    index = {e: i for i, e in enumerate(entities)}
    rows = []
    for inc in incidents:
        key = tuple(inc.entity)
        if key not in index:
            continue
        end = inc.end if inc.end is not None else np.nan
        rows.append((float(inc.start), float(end), index[key], inc.predictable))
    if not rows:
        return np.zeros(0), np.zeros(0), np.zeros(0, np.int64), np.zeros(0, bool)
    s, e, ent, p = zip(*rows, strict=True)
    return (np.array(s, float), np.array(e, float), np.array(ent, np.int64), np.array(p, bool))
