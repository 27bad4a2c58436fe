"""The demo's story panel: the next scripted failure, what AURA predicts about it, and when.

Only `aura demo` has one: it knows its simulated failures (ground truth), so the fleet page can
say "host-03 is predicted to fail in 1h50m (signal, agents, action)" and then "the failure
arrived at 14:02 (first predicted at 12:10)". `tell` is a pure function of the snapshot, the
console's history and the scripted failures; the entity's explanation comes from the same
entity view model the entity page shows (`views.entity_detail`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from exporter.console.history import History


@dataclass(frozen=True)
class Failure:
    """One scripted failure: `labels` of an entity of `analysis` fail at `at` (Unix s)."""

    analysis: str
    labels: dict[str, str]
    kind: str
    at: float
    end: float | None = None


@dataclass(frozen=True)
class Story:
    """`aura demo`'s script for the console: its failures, and its clock.

    speed: simulated seconds per real second. The demo's clock starts at the real time and
    runs `speed` times faster; every time the console shows (snapshot, history, alerts, the
    story) is on that clock, so the pages label their times "simulated".
    """

    failures: tuple[Failure, ...]
    speed: float

    def __iter__(self) -> Iterator[Failure]:
        return iter(self.failures)


def _first_warned(history: History, f: Failure,
                  key: tuple[str, ...]) -> tuple[float | None, float | None]:
    """(time, time to failure then) of the first frame of the latest run of frames at level
    >= warning, up to the failure's arrival `f.at`; (None, None) if none, the time to failure
    None where the forecast had none. Undecided frames (level -1: no data, as a host that
    went down shows) neither end a run nor start one; frames after the arrival are the
    failure's own, not a warning of it."""
    times, values = history.series(f.analysis, key)
    first, ttf = None, None
    for t, level, eta in zip(times.tolist(), values[:, 1].tolist(), values[:, 3].tolist(),
                             strict=True):
        if t > f.at:
            break
        if level == -1:
            continue
        if level == level and level >= 1:  # NaN-safe
            if first is None:
                first, ttf = t, (eta if eta == eta else None)
        else:
            first, ttf = None, None
    return first, ttf


def tell(snapshot: Any, history: History, failures: Sequence[Failure],
         detail: Callable[[Any, int], dict[str, Any]]) -> dict[str, Any]:
    """{enabled, now, failure: {...}, prediction: {...} | None, arrived, first_warned,
    warned_ttf}.

    first_warned: when the current run of warnings began (s, from the console's history);
    warned_ttf: the time to failure (s) the consensus gave at that moment, so the panel can
    say what was forecast when it warned, next to when the failure came.

    The failure told is the first predictable one not over yet (the last one once all are);
    `detail(result, row)` gives the entity view (routes.Console._detail).
    """
    from exporter.console import views

    now = float(getattr(snapshot, "created", 0.0))
    if not failures:
        return {"enabled": False}
    f = next((x for x in failures if (x.end or x.at) >= now), failures[-1])
    story: dict[str, Any] = {"enabled": True, "now": now, "arrived": now >= f.at,
                             "failure": {"analysis": f.analysis, "labels": f.labels,
                                         "kind": f.kind, "at": f.at},
                             "prediction": None, "first_warned": None, "warned_ttf": None}
    found = views.find_entity(snapshot, f.analysis, f.labels)
    if found is None:
        return story
    result, i = found
    d = detail(result, i)
    story["first_warned"], story["warned_ttf"] = _first_warned(
        history, f, tuple(f.labels[n] for n in result.label_names))
    signals = [s for s in d["signals"] if s.get("contribution") is not None]
    top = max(signals, key=lambda s: s["contribution"])["name"] if signals else None
    agents = [v["agent"] for v in d["votes"]
              if v["role"] == "ballot" and v["risk"] is not None and d["consensus"]
              and v["risk"] >= d["consensus"].get("warning_risk", 1.0)]
    story["prediction"] = {
        "level": d["level"], "nodata": d["nodata"], "risk": d["risk"], "ttf": d["ttf"],
        "eta": now + d["ttf"] if d["ttf"] is not None else None, "signal": top,
        "agents": agents, "action": d["action"], "runbook": d["runbook"],
        "explanation": d["explanation"]}
    return story
