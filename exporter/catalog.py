"""Every metric AURA exports: name, type, HELP, labels.

The exposition renderer, the rule generator, the dashboards, the README table and the tests all
read this module; nothing else spells a metric name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

MetricType = Literal["gauge", "counter", "info"]

# "entity" stands for `analysis` + the analysis' configured entity labels.
ENTITY = "entity"

_RECOMPUTED = " Recomputed every interval."


@dataclass(frozen=True)
class Metric:
    """One exported metric family, as the exposition writes it and the rules/dashboards read it.

    Attributes
    ----------
    name: the family name (`aura_` prefix, base units, `_total` only on counters).
    type: `gauge`, `counter` or `info` (Prometheus text format 0.0.4 TYPE).
    help: the HELP text.
    labels: label names in exposition order; `ENTITY` stands for `analysis` plus the
        analysis' configured entity labels.
    scope: which series exist: `entity` one per entity, `detail` only for the entities chosen
        by `exposition.detail`, `analysis` one per analysis, `self` the process itself.
    """

    name: str
    type: MetricType
    help: str
    labels: tuple[str, ...] = ()
    # summary: one series per entity; detail: only for entities chosen by exposition.detail.
    scope: Literal["entity", "detail", "analysis", "self"] = "self"

    @property
    def per_entity(self) -> bool:
        """True when the family carries the entity labels (one series per entity)."""
        return ENTITY in self.labels

    def extra_labels(self) -> tuple[str, ...]:
        """Labels besides the entity labels."""
        return tuple(label for label in self.labels if label != ENTITY)


def _entity(name: str, help_: str, *labels: str, detail: bool = False) -> Metric:
    return Metric(
        name, "gauge", help_ + _RECOMPUTED, (ENTITY, *labels), "detail" if detail else "entity"
    )


FAILURE_PROBABILITY = _entity(
    "aura_failure_probability",
    "Probability that the entity fails within the horizon, 0..1.",
    "horizon",
)
TIME_TO_FAILURE = _entity(
    "aura_time_to_failure_seconds",
    "Estimated seconds until failure; absent when no failure is projected within the largest horizon.",
)
RISK_SCORE = _entity(
    "aura_risk_score",
    "Risk of the entity, 0..1, read against what is usual for it; its bands are the levels of "
    "aura_risk_level (below the warning risk ok, below the critical risk warning, else "
    "critical).",
)
RISK_LEVEL = _entity("aura_risk_level", "Consensus risk level: 0 ok, 1 warning, 2 critical.")
VOTERS = _entity(
    "aura_consensus_voters",
    "Agents that voted on the entity this cycle (abstentions excluded).",
)
TOPOLOGY_ANOMALY = _entity(
    "aura_topology_anomaly_score",
    "Calibrated tail probability of the entity's topological distance (persistence summaries "
    "vs its own history at the same time of day) fused with its seasonal level deviation: "
    "0.99 = exceeded by 1 window in 100 of its own; absent while warming up, for constant "
    "windows and for windows mostly missing.",
)
BETTI = _entity(
    "aura_betti_number",
    "Betti number of the entity's current window at its calibrated scale.",
    "dimension",
)
ENTROPY = _entity(
    "aura_persistence_entropy",
    "Persistence entropy of the entity's current persistence diagram.",
    "dimension",
)
AGENT_RISK = _entity(
    "aura_agent_risk_score", "Risk voted by one agent for the entity, 0..1.", "agent", detail=True
)
SIGNAL_CONTRIBUTION = _entity(
    "aura_signal_contribution_ratio",
    "Share of the entity's risk explained by the signal, 0..1.",
    "signal",
    detail=True,
)
RECOMMENDED_ACTION = _entity(
    "aura_recommended_action_info",
    "Action recommended for the entity (value 1); recommendations only, nothing is executed.",
    "action",
    detail=True,
)

ANALYSIS_ENTITIES = Metric(
    "aura_analysis_entities",
    "gauge",
    "Entities analysed in the last cycle." + _RECOMPUTED,
    ("analysis",),
    "analysis",
)
FLEET_BETTI = Metric(
    "aura_fleet_betti_number",
    "gauge",
    "Betti number of the fleet, entities as points in feature space." + _RECOMPUTED,
    ("analysis", "dimension"),
    "analysis",
)
FLEET_WIDE_ENTITIES = Metric(
    "aura_fleet_wide_entities",
    "gauge",
    "Entities of the analysis that reached a warning or critical level within "
    "agents.decision.fleet_wide_window in a run that began within it or since a fleet-wide "
    "event began (counted before the hold)." + _RECOMPUTED,
    ("analysis",),
    "analysis",
)
FLEET_WIDE_EVENT = Metric(
    "aura_fleet_wide_event",
    "gauge",
    "1 while more entities of the analysis reached a level at once than independent failures "
    "explain (agents.decision.fleet_wide_alpha): a shared cause, their levels held at 0; "
    "0 otherwise." + _RECOMPUTED,
    ("analysis",),
    "analysis",
)
ENTITIES_DROPPED = Metric(
    "aura_entities_dropped_total",
    "counter",
    "Entities refused by the max_entities cardinality guard, and series dropped because they "
    "name no usable entity (entity label missing or empty, label value not valid Unicode).",
    ("analysis",),
    "analysis",
)
SOURCE_SERIES = Metric(
    "aura_source_series",
    "gauge",
    "Series returned by the signal's query in the last cycle.",
    ("analysis", "signal"),
    "analysis",
)
SOURCE_QUERY_ERRORS = Metric(
    "aura_source_query_errors_total",
    "counter",
    "Failed source queries.",
    ("analysis", "signal"),
    "analysis",
)

UP = Metric("aura_up", "gauge", "1 when the last cycle's source queries all succeeded, else 0.")
BUILD_INFO = Metric(
    "aura_build_info", "gauge", "Build information (value 1).", ("version", "pythonversion")
)
MODEL_INFO = Metric(
    "aura_model_info",
    "gauge",
    "Failure model in use (value 1), or the reason it abstains.",
    ("model", "version", "status"),
)
CYCLE_DURATION = Metric(
    "aura_cycle_duration_seconds", "gauge", "Wall-clock duration of the last completed cycle."
)
STAGE_DURATION = Metric(
    "aura_stage_duration_seconds",
    "gauge",
    "Wall-clock duration of each pipeline stage in the last cycle.",
    ("stage",),
)
LAST_SUCCESS = Metric(
    "aura_last_cycle_success_timestamp_seconds",
    "gauge",
    "Unix time of the end of the last cycle in which every stage succeeded.",
)
CYCLES = Metric("aura_cycles_total", "counter", "Pipeline cycles run.")
CYCLE_FAILURES = Metric(
    "aura_cycle_failures_total", "counter", "Pipeline stage failures.", ("stage",)
)
INCIDENTS_RECORDED = Metric(
    "aura_incidents_recorded_total",
    "counter",
    "Incidents recorded from Alertmanager webhooks.",
)

ENTITY_METRICS: tuple[Metric, ...] = (
    FAILURE_PROBABILITY,
    TIME_TO_FAILURE,
    RISK_SCORE,
    RISK_LEVEL,
    VOTERS,
    TOPOLOGY_ANOMALY,
    BETTI,
    ENTROPY,
    AGENT_RISK,
    SIGNAL_CONTRIBUTION,
    RECOMMENDED_ACTION,
)
ANALYSIS_METRICS: tuple[Metric, ...] = (
    ANALYSIS_ENTITIES,
    FLEET_BETTI,
    FLEET_WIDE_ENTITIES,
    FLEET_WIDE_EVENT,
    ENTITIES_DROPPED,
    SOURCE_SERIES,
    SOURCE_QUERY_ERRORS,
)
SELF_METRICS: tuple[Metric, ...] = (
    UP,
    BUILD_INFO,
    MODEL_INFO,
    CYCLE_DURATION,
    STAGE_DURATION,
    LAST_SUCCESS,
    CYCLES,
    CYCLE_FAILURES,
    INCIDENTS_RECORDED,
)
ALL: tuple[Metric, ...] = ENTITY_METRICS + ANALYSIS_METRICS + SELF_METRICS
BY_NAME = {m.name: m for m in ALL}

STAGES = ("ingest", "topology", "forecast", "agents", "consensus", "decision", "render", "state")
LEVELS = {0: "ok", 1: "warning", 2: "critical"}


def markdown_table() -> str:
    """The README's metrics table."""
    rows = ["| metric | type | labels | meaning |", "|---|---|---|---|"]
    for m in ALL:
        labels = ", ".join(
            "`analysis` + entity labels" if label == ENTITY else f"`{label}`" for label in m.labels
        )
        rows.append(f"| `{m.name}` | {m.type} | {labels} | {m.help.replace(_RECOMPUTED, '')} |")
    return "\n".join(rows)
