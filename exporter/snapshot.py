"""What the pipeline hands the HTTP side each cycle: the immutable `Snapshot` and `SelfStats`.

Its own module so that the pipeline (which builds snapshots), the exposition (which renders
them) and the server and console (which serve them) all import it one way, without a cycle.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from exporter.results import AnalysisResult


@dataclass
class SelfStats:
    """Counters and gauges about the exporter itself, rendered with every snapshot.

    up: 1 when every source query of the last cycle succeeded, else 0 (`aura_up`); None
        until the first cycle has queried the source, and `aura_up` is then absent: a
        restarted exporter must not read as a failing source (AuraSourceDown is
        `aura_up == 0`) before it has tried it. As a probe's `probe_success` (blackbox
        exporter) or a collector's `node_scrape_collector_success` (node exporter): reported
        only for an attempt that was made.
    cycles_total / failures_total[stage]: cycles run and stage failures (counters).
    stage_seconds[stage], cycle_seconds: wall seconds of the last cycle (None before one).
    last_success: Unix seconds of the last cycle without a failed stage (None before one).
    query_errors_total[(analysis, signal)], dropped_total[analysis]: counters.
    incidents_recorded_total: incidents received on the Alertmanager webhook.
    model_info: the failure model's `model`, `version` and `status` labels.
    """

    up: float | None = None
    cycles_total: int = 0
    failures_total: dict[str, int] = field(default_factory=dict)
    stage_seconds: dict[str, float] = field(default_factory=dict)
    cycle_seconds: float | None = None
    last_success: float | None = None
    query_errors_total: dict[tuple[str, str], int] = field(default_factory=dict)
    dropped_total: dict[str, int] = field(default_factory=dict)
    incidents_recorded_total: int = 0
    model_info: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, eq=False)
class Snapshot:
    """What /metrics serves until the next cycle: results plus pre-rendered exposition bytes.

    created: Unix seconds of the cycle's `now`; body / body_gzip: the text exposition (format
    0.0.4), plain and gzip-compressed; ready: False until the first cycle has run.
    """

    created: float
    results: tuple[AnalysisResult, ...]
    body: bytes
    body_gzip: bytes
    ready: bool
