"""Aligned per-entity windows: the step grid, gaps as NaN, ring buffers that grow incrementally.

A `Window` is what every later stage reads: values[entity, signal, step] on a regular grid.
A `WindowBuffer` keeps one analysis' windows between cycles so a live cycle only fetches the
newest steps; it handles entity churn and the `max_entities` cardinality guard.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

import numpy as np

EntityKey = tuple[str, ...]

# Entity keys persisted before format 2 joined label values with U+00FF, which is also a legal
# character of a label value (e.g. "l-haÿ-les-roses"): such keys split into too many parts.
_LEGACY_KEY_SEPARATOR = "\xff"


def encode_entity_key(key: EntityKey) -> str:
    """One string per entity key, distinct for distinct keys whatever the label values hold.

    A JSON array of the label values: quoting makes it collision-free for any text (commas,
    quotes, U+00FF, lone surrogates). The one encoding used wherever a key is stored as text.
    """
    return json.dumps(list(key), ensure_ascii=False, separators=(",", ":"))


def decode_entity_key(text: str, labels: int | None = None) -> EntityKey:
    """Invert `encode_entity_key`; raise ValueError when `text` is not an encoded key.

    `labels`: the expected number of label values (checked when given). Keys written by older
    versions (values joined by U+00FF) are read when they hold exactly `labels` parts.
    """
    key: EntityKey
    if text.startswith("["):
        try:
            parts = json.loads(text)
        except ValueError as err:
            raise ValueError(f"entity key {text!r} is not a JSON array") from err
        if not isinstance(parts, list) or not all(isinstance(p, str) for p in parts):
            raise ValueError(f"entity key {text!r} is not an array of strings")
        key = tuple(parts)
    else:
        key = tuple(text.split(_LEGACY_KEY_SEPARATOR)) if labels != 0 else ()
    if labels is not None and len(key) != labels:
        raise ValueError(f"entity key {text!r} has {len(key)} label values, want {labels}")
    return key


@dataclass(frozen=True, eq=False)
class Window:
    """Samples of one analysis on a step grid.

    Attributes
    ----------
    label_names: the analysis' entity labels, in configured order.
    entities: one tuple of label values per entity (row of `values`).
    signals: signal names (axis 1 of `values`).
    timestamps: [T] grid timestamps in Unix seconds, ascending, evenly spaced by the step.
    values: [E, S, T] float64, NaN where a sample is missing.
    dropped: series the source left out of this block because they name no usable entity
        (an entity label missing or empty, a label value that is not valid Unicode).
    """

    analysis: str
    label_names: tuple[str, ...]
    entities: tuple[EntityKey, ...]
    signals: tuple[str, ...]
    timestamps: np.ndarray
    values: np.ndarray
    dropped: int = 0

    @property
    def end(self) -> float:
        """The last grid timestamp in Unix seconds; NaN for a window with no steps."""
        return float(self.timestamps[-1]) if len(self.timestamps) else float("nan")

    def select(self, rows: np.ndarray | slice) -> Window:
        """The window restricted to the entity rows given (bool mask or indices: values
        copied; a slice: values a view)."""
        if isinstance(rows, slice):
            return Window(self.analysis, self.label_names, self.entities[rows], self.signals,
                          self.timestamps, self.values[rows], self.dropped)
        idx = np.flatnonzero(rows) if rows.dtype == bool else rows
        return Window(
            self.analysis,
            self.label_names,
            tuple(self.entities[i] for i in idx),
            self.signals,
            self.timestamps,
            self.values[idx],
            self.dropped,
        )


def grid(start: float, end: float, step: float) -> np.ndarray:
    """Grid timestamps k*step within [start, end] (aligned to multiples of the step)."""
    first = np.ceil(start / step - 1e-9) * step
    count = int(np.floor((end - first) / step + 1e-9)) + 1
    return first + step * np.arange(max(count, 0), dtype=np.float64)


def empty_window(analysis: str, label_names: tuple[str, ...], signals: tuple[str, ...],
                 timestamps: np.ndarray) -> Window:
    """A window with no entities: values of shape [0, len(signals), len(timestamps)]."""
    return Window(analysis, label_names, (), signals, timestamps,
                  np.empty((0, len(signals), len(timestamps))))


# An entity without a finite sample of any signal in its window's last this many steps has
# *no data*: its scrapes stopped (a host down, a target gone), so a verdict from its older
# samples is not current (the console's badge; the decision stage makes it undecided). A
# Prometheus source already returns a dead target's samples for its lookback (5 min), so this
# adds two steps to that.
NO_DATA_STEPS = 2


def no_recent_samples(values: np.ndarray, steps: int = NO_DATA_STEPS) -> np.ndarray:
    """[E] True where values [E, S, T] has no finite sample in its last `steps` steps (all
    True for a window of no steps)."""
    v = np.asarray(values)
    if v.ndim != 3 or v.shape[2] == 0:
        return np.ones(len(v), dtype=bool)
    return ~np.isfinite(v[:, :, -steps:]).any(axis=(1, 2))


# A restart drops what a process or host had built up (usage, a counter, its uptime) to under
# this share of its earlier value; a garbage collection or a log rotation does not go that low.
RESTART_FRACTION = 0.2
# A counter (or an uptime) is told apart from a signal that only happened to rise by this many
# present samples in strictly rising order before its fall (iid noise: 1 in 6! = 720).
COUNTER_MIN_SAMPLES = 6


def counter_resets(values: np.ndarray) -> np.ndarray:
    """Per entity: whether a signal of its window resets like a counter, the mark of a process
    or host that restarted (a crash, a redeploy, an OOM kill, a reboot).

    values: [E, S, T] as in `Window.values` (NaN = missing). Returns [E] bool.

    A counter reset: a non-negative signal whose first COUNTER_MIN_SAMPLES or more present
    samples each rise above the one before (a Prometheus counter, `time() -
    process_start_time_seconds`) falls, at its first fall in the window, to at most
    RESTART_FRACTION of the value before it (Prometheus' `rate()` reads a counter's fall the
    same way), and falls that far only once in the window: several are a crash loop, or an
    age gauge that a frequent job resets (`time() - job_last_success_timestamp_seconds`), not
    one restart. The fall is measured across missing samples (a host down, then its uptime
    from 0). A gap in the samples alone is not one: scrapes fail for minutes without anything
    restarting.

    The shape is all it looks at: an age gauge whose job runs less often than once a window
    resets like a counter too.
    """
    v = np.asarray(values, dtype=np.float64)
    e, _, t = v.shape
    if e == 0 or t < 2:
        return np.zeros(e, dtype=bool)
    present = ~np.isnan(v)
    # Forward-fill each signal so a step is measured against the last present value, also
    # across a gap; a missing sample repeats the one before (neither a rise nor a fall).
    idx = np.where(present, np.arange(t), -1)
    np.maximum.accumulate(idx, axis=-1, out=idx)
    filled = np.take_along_axis(v, np.maximum(idx, 0), axis=-1)
    filled[idx < 0] = np.nan
    prev, cur = filled[..., :-1], filled[..., 1:]  # [E, S, T-1]; NaN compares False
    falls = cur < prev
    k = np.argmax(falls, axis=-1)  # the first fall: filled[k] -> filled[k + 1]
    # Present samples before the fall that did not rise above the one before (the first
    # present sample has none before it): a counter has none.
    flat = present[..., 1:] & (cur <= prev)
    not_rising = (flat & (np.arange(t - 1) <= k[..., None] - 1)).sum(axis=-1)
    count = (present & (np.arange(t) <= k[..., None])).sum(axis=-1)
    first = np.take_along_axis(filled, np.argmax(present, axis=-1)[..., None], axis=-1)[..., 0]
    before = np.take_along_axis(filled, k[..., None], axis=-1)[..., 0]
    after = np.take_along_axis(filled, (k + 1)[..., None], axis=-1)[..., 0]
    deep = (present[..., 1:] & (cur <= RESTART_FRACTION * prev) & (prev > 0)).sum(axis=-1)
    reset = (falls.any(axis=-1) & (count >= COUNTER_MIN_SAMPLES) & (not_rising == 0)
             & (first >= 0) & (after >= 0) & (after <= RESTART_FRACTION * before)
             & (deep == 1))
    return reset.any(axis=1)


def shard_of(entity: EntityKey, count: int) -> int:
    """Stable shard of an entity (md5 of its label values, like Prometheus' hashmod).

    The label values are joined as legacy entity keys were, so shards never move; a hash
    input needs no unambiguous split.
    """
    digest = hashlib.md5(_LEGACY_KEY_SEPARATOR.join(entity).encode()).digest()
    return int.from_bytes(digest[8:], "big") % count


@dataclass
class WindowBuffer:
    """Ring buffer of one analysis' entity windows on the step grid.

    Parameters
    ----------
    analysis, label_names, signals: as in `Window`.
    step: grid step in seconds.
    steps: window length in steps.
    max_entities: cardinality guard; entities beyond it are refused and counted.

    `dropped_total` counts entities refused by the guard plus the series the source dropped
    (`Window.dropped`): everything that gets no prediction although the source returned it.
    """

    analysis: str
    label_names: tuple[str, ...]
    signals: tuple[str, ...]
    step: float
    steps: int
    max_entities: int = 5000
    entities: list[EntityKey] = field(default_factory=list)
    values: np.ndarray = field(init=False)
    end: float = float("nan")  # last grid timestamp held
    dropped_total: int = 0

    def __post_init__(self) -> None:
        self.values = np.full((0, len(self.signals), self.steps), np.nan)
        self._index: dict[EntityKey, int] = {}
        # `window()` hands out `values` itself (read-only): the next update writes a new array
        # instead (copy on write), so the buffer and its latest window are one copy, not two.
        self._shared = False

    @property
    def empty(self) -> bool:
        """True until the first non-empty block is merged (`end` is still NaN)."""
        return not np.isfinite(self.end)

    def fetch_start(self, now: float, overlap: float) -> float:
        """Where the next fetch should start: the whole window first, then only new steps.

        After a wall-clock jump back (`now` before the newest step held) the whole window is
        fetched again; `update` then replaces what was held.
        """
        full = now - (self.steps - 1) * self.step
        if self.empty or self.end < full or now < self.end - self.step / 2:
            return full
        return max(full, self.end - overlap)

    def update(self, block: Window) -> None:
        """Merge a fetched block (same signals, grid-aligned timestamps) into the buffer."""
        self.dropped_total += block.dropped
        if block.signals != self.signals:
            block = _reorder_signals(block, self.signals)
        if len(block.timestamps) == 0:
            return
        new_end = float(block.timestamps[-1])
        if self.empty:
            self.end = new_end
        elif new_end < self.end - self.step / 2:
            # The clock went back: what the buffer holds lies "in the future" of the new block
            # and would never be overwritten. Start again from this block.
            self._set(np.full_like(self.values, np.nan))
            self.end = new_end
        elif new_end > self.end:
            shift = int(round((new_end - self.end) / self.step))
            if shift >= self.steps:
                self._set(np.full_like(self.values, np.nan))
            elif shift > 0:
                shifted = np.empty_like(self.values)
                shifted[:, :, :-shift] = self.values[:, :, shift:]
                shifted[:, :, -shift:] = np.nan
                self._set(shifted)
            self.end = new_end
        rows = self._rows_for(block.entities)
        cols = np.rint((block.timestamps - self.end) / self.step).astype(int) + self.steps - 1
        keep_t = (cols >= 0) & (cols < self.steps)
        keep_e = rows >= 0
        if keep_t.any() and keep_e.any():
            src = block.values[np.ix_(keep_e, np.arange(len(self.signals)), keep_t)]
            dst_rows, dst_cols = rows[keep_e], cols[keep_t]
            current = self.values[np.ix_(dst_rows, np.arange(len(self.signals)), dst_cols)]
            if self._shared:  # the last window holds this array: write to a copy
                self._set(self.values.copy())
            # A missing sample in a later fetch never erases one we already hold.
            self.values[np.ix_(dst_rows, np.arange(len(self.signals)), dst_cols)] = np.where(
                np.isnan(src), current, src
            )
        self._expire()

    def _rows_for(self, entities: tuple[EntityKey, ...]) -> np.ndarray:
        rows = np.empty(len(entities), dtype=int)
        new: list[EntityKey] = []
        for i, key in enumerate(entities):
            row = self._index.get(key)
            if row is None:
                if len(self.entities) + len(new) >= self.max_entities:
                    self.dropped_total += 1
                    rows[i] = -1
                    continue
                row = len(self.entities) + len(new)
                new.append(key)
                self._index[key] = row
            rows[i] = row
        if new:
            self.entities.extend(new)
            pad = np.full((len(new), len(self.signals), self.steps), np.nan)
            self._set(np.concatenate([self.values, pad]))
        return rows

    def _set(self, values: np.ndarray) -> None:
        """Hold a new values array (one no window shares yet)."""
        self.values, self._shared = values, False

    def _expire(self) -> None:
        """Forget entities with no sample left in the window (they vanished from the source)."""
        alive = ~np.isnan(self.values).all(axis=(1, 2))
        if alive.all():
            return
        self.entities = [e for e, a in zip(self.entities, alive, strict=True) if a]
        self._set(self.values[alive])
        self._index = {e: i for i, e in enumerate(self.entities)}

    def timestamps(self) -> np.ndarray:
        """[steps] grid timestamps in Unix seconds ending at `end` (all NaN while `empty`)."""
        return self.end - self.step * np.arange(self.steps - 1, -1, -1, dtype=np.float64)

    def window(self) -> Window:
        """The current windows, safe to hand to later stages: a read-only view of values the
        buffer never writes again (its next update writes a new array: copy on write)."""
        view = self.values.view()
        view.flags.writeable = False
        self._shared = True
        return Window(
            self.analysis,
            self.label_names,
            tuple(self.entities),
            self.signals,
            self.timestamps(),
            view,
        )

    def state(self) -> dict[str, np.ndarray]:
        """Arrays to persist (see exporter.state)."""
        return {
            "entities": np.array([encode_entity_key(e) for e in self.entities], dtype=str)
            if self.entities else np.array([], dtype=str),
            "values": self.values,
            "end": np.array([self.end]),
            "signals": np.array(self.signals, dtype=str),
            "label_names": np.array(self.label_names, dtype=str),
            "step": np.array([self.step]),
            "dropped_total": np.array([self.dropped_total]),
        }

    def restore(self, arrays: dict[str, np.ndarray]) -> None:
        """Load persisted arrays; raise ValueError when they do not fit this buffer's shape."""
        if (
            tuple(arrays["signals"].tolist()) != self.signals
            or tuple(arrays["label_names"].tolist()) != self.label_names
            or float(arrays["step"][0]) != self.step
            or arrays["values"].shape[1:] != (len(self.signals), self.steps)
        ):
            raise ValueError("saved buffer has other signals, labels, step or window")
        ents = [decode_entity_key(str(s), len(self.label_names))
                for s in arrays["entities"].tolist()]
        values = np.asarray(arrays["values"], dtype=np.float64)
        if len(ents) != len(values):
            raise ValueError("saved buffer is inconsistent")
        self.entities = ents
        self._set(values.copy())
        self._index = {e: i for i, e in enumerate(ents)}
        self.end = float(arrays["end"][0])
        self.dropped_total = int(arrays["dropped_total"][0])


def _reorder_signals(block: Window, signals: tuple[str, ...]) -> Window:
    values = np.full((len(block.entities), len(signals), len(block.timestamps)), np.nan)
    for j, name in enumerate(signals):
        if name in block.signals:
            values[:, j] = block.values[:, block.signals.index(name)]
    return Window(block.analysis, block.label_names, block.entities, signals, block.timestamps,
                  values)
