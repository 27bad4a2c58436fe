"""Many cycles as one batch: stack per-cycle windows and results as (cycle, entity) rows.

An offline replay (`aura backtest`) knows every cycle's window in advance. A stage that is a
pure per-entity function of one cycle (the failure model, the row-wise agents, consensus) gives
a row the same numbers whether it sees that row alone or among rows of other cycles, so the
replay runs it once on the stacked rows of many cycles and `split` cuts the output back into
cycles. Stacked rows keep their own entity keys (a key repeats once per cycle) and the first
cycle's timestamps: no row-wise stage reads absolute times, only the (common) step.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, TypeVar

import numpy as np

from exporter.windows import Window

T = TypeVar("T")

# Fields that describe the whole batch, not one row: kept as they are by `split`.
_FIXED = frozenset({"agent", "agents", "horizons", "feature_names", "fleet_betti",
                    "baseline", "fleet_wide_entities", "fleet_wide_needed"})


def offsets(windows: Sequence[Window]) -> np.ndarray:
    """[C + 1] first row of each cycle in the stacked rows, then the total."""
    return np.concatenate([[0], np.cumsum([len(w.entities) for w in windows])]).astype(int)


def stack_windows(windows: Sequence[Window], pad_to: int = 1) -> Window:
    """One Window whose rows are the windows' rows in order, padded up to a multiple of
    `pad_to` rows (key `()`, values 0: present, so no stage counts them as silent). All
    windows must have the same signals and length; one window unpadded is returned as is."""
    first = windows[0]
    n = sum(len(w.entities) for w in windows)
    pad = -n % max(pad_to, 1)
    parts = [w.values for w in windows]
    if pad:
        parts.append(np.zeros((pad, *first.values.shape[1:]), dtype=first.values.dtype))
    keys = tuple(k for w in windows for k in w.entities) + ((),) * pad
    return Window(first.analysis, first.label_names, keys, first.signals, first.timestamps,
                  np.concatenate(parts) if len(parts) > 1 else parts[0])


def stack_rows(items: Sequence[T]) -> T:
    """Row-wise concatenation of per-cycle results of one kind (TopologyResult, Forecast,
    Votes, ...): [sum of the cycles' entities] rows per field. An optional field absent (None)
    in any of them is absent; the fields describing the whole batch (`_FIXED`: `fleet_betti`,
    read by no row-wise stage, the baseline store, names) are the first item's."""
    first: Any = items[0]
    rows: dict[str, Any] = {}
    for f in dataclasses.fields(first):
        if f.name in _FIXED:
            continue
        vals = [getattr(r, f.name) for r in items]
        if any(v is None for v in vals):  # an optional field absent somewhere: absent
            rows[f.name] = None
            continue
        rows[f.name] = (tuple(x for v in vals for x in v) if isinstance(vals[0], tuple)
                        else np.concatenate(vals))
    return dataclasses.replace(first, **rows)  # type: ignore[no-any-return]


def split(result: T, bounds: np.ndarray) -> list[T]:
    """Cut a stacked result (a frozen dataclass of per-row arrays and tuples) into cycles at
    `bounds` (from `offsets`); fields describing the whole batch, and absent (None) ones,
    are shared."""
    names = [f.name for f in dataclasses.fields(result)  # type: ignore[arg-type]
             if f.name not in _FIXED and getattr(result, f.name) is not None]
    return [dataclasses.replace(result, **{n: getattr(result, n)[a:b]  # type: ignore[type-var]
                                           for n in names})
            for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
