"""The `Incident` type: one failure of one entity, the ground truth of `aura train` / `aura backtest`.

Whoever finds a failure makes an `Incident`: the incidents CSV
(`exporter.source.csvfile.read_incidents`), the simulator's ground truth and the Alertmanager
webhook recorder (`exporter.incident_recorder`).
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_INCIDENT_KIND = "failure"


@dataclass(frozen=True)
class Incident:
    """One failure of one entity: the ground truth that alerts are scored and trained against.

    Attributes
    ----------
    start: Unix seconds when the failure began; an alert "predicted" it if it fired before.
    end: Unix seconds when it ended, or None (still open, or unknown).
    entity: label values in the analysis' `entity_labels` order (the CSV's label columns).
    kind: what failed: the CSV's `kind` column (`oom`, `disk_full`...), the Alertmanager
        `alertname`, the simulator's failure family; `"failure"` when not given.
    predictable: False for a failure without any precursor (the simulator's sudden crashes);
        such incidents are scored apart from recall and left out of training.
    precursor_start: Unix seconds when the build-up became visible (simulator ground truth);
        None when unknown.
    """

    start: float
    end: float | None
    entity: tuple[str, ...]
    kind: str = DEFAULT_INCIDENT_KIND
    predictable: bool = True
    precursor_start: float | None = None

    @property
    def sudden(self) -> bool:
        """No warning was possible: flagged unpredictable, or a kind that says "sudden"."""
        return not self.predictable or "sudden" in self.kind.lower()
