"""AURA entity drill-down: one entity's prediction, its evidence and the recommended action.

Variables: datasource, analysis, entity (values of the configured entity label; pass
`--dashboard.entity-label` to `aura generate dashboards` to pick another label).
"""

from __future__ import annotations

from typing import Any

from exporter import catalog
from exporter import dashboards as d

UID = "aura-entity-drilldown"


def _signal_queries(ctx: d.DashboardContext) -> list[tuple[str, str]]:
    """The configured signals of analyses identified by the entity label, for this entity."""
    out: list[tuple[str, str]] = []
    e = ctx.entity_label
    anchor = ctx.q(catalog.RISK_SCORE, 'analysis="$analysis"', ctx.entity_matcher)
    for a in ctx.cfg.analyses:
        if e not in a.entity_labels:
            continue
        for s in a.signals:
            # `and on (label)` keeps only this entity's series of the user's own query.
            out.append((f"({s.query}) and on ({e}) {anchor}", f"{a.name}: {s.name}"))
    return out


def build(ctx: d.DashboardContext) -> Any:
    sel = ('analysis="$analysis"', ctx.entity_matcher)

    def q(metric: catalog.Metric) -> str:
        return ctx.q(metric, *sel)

    panels = [
        d.stat(
            "Risk",
            [(q(catalog.RISK_SCORE), "")],
            unit="percentunit",
            thresholds=d.risk_thresholds(ctx.cfg),
            description="Risk of the entity, 0..1, read against what is usual for it; its "
                        "bands are the levels (warning from the warning risk, critical from "
                        "the critical risk). README: how it works, decision.",
        ),
        d.stat(
            "Level",
            [(q(catalog.RISK_LEVEL), "")],
            mappings=d.LEVEL_MAPPINGS,
            thresholds=d.LEVEL_THRESHOLDS,
            description="Consensus level: ok, warning (AuraFailureRisk), critical "
            "(AuraFailurePredicted).",
        ),
        d.stat(
            "Time to failure",
            [(q(catalog.TIME_TO_FAILURE), "")],
            unit="s",
            description="Estimated time until failure; none when no failure is projected "
            "within the largest horizon.",
        ),
        d.stat(
            "Topology anomaly",
            [(q(catalog.TOPOLOGY_ANOMALY), "")],
            unit="percentunit",
            thresholds=[(None, "green"), (ctx.cfg.rules.topology_anomaly_threshold, "orange")],
            description="Distance of the current persistence diagram from the entity's own "
            "baseline, 0..1.",
        ),
        d.timeseries(
            "Failure probability per horizon",
            [(q(catalog.FAILURE_PROBABILITY), "within {{horizon}}")],
            unit="percentunit",
            max_=1,
        ),
        d.timeseries(
            "Risk and anomaly",
            [(q(catalog.RISK_SCORE), "risk"), (q(catalog.TOPOLOGY_ANOMALY), "anomaly")],
            unit="percentunit",
            max_=1,
        ),
        d.timeseries(
            "Time to failure", [(q(catalog.TIME_TO_FAILURE), "time to failure")], unit="s"
        ),
        d.timeseries(
            "Agent votes",
            [(q(catalog.AGENT_RISK), "{{agent}}"), (q(catalog.VOTERS), "voters")],
            description="Risk voted by each agent (detail series: present for the "
            "riskiest entities unless exposition.detail is full) and how many voted.",
        ),
        d.timeseries(
            "Betti numbers",
            [(q(catalog.BETTI), "β{{dimension}}")],
            description="Betti numbers of the current window at the calibrated scale.",
        ),
        d.timeseries("Persistence entropy", [(q(catalog.ENTROPY), "H{{dimension}}")]),
        d.timeseries(
            "Signal contributions",
            [(q(catalog.SIGNAL_CONTRIBUTION), "{{signal}}")],
            unit="percentunit",
            max_=1,
            description="Share of the entity's risk explained by each signal.",
        ),
        d.table(
            "Recommended action",
            [(q(catalog.RECOMMENDED_ACTION), "")],
            hide=("Value", "analysis", ctx.entity_label, "instance"),
            description="Recommendations only; AURA executes nothing.",
        ),
    ]
    signals = _signal_queries(ctx)
    if signals:
        panels.append(
            d.timeseries(
                "Source signals",
                signals,
                w=24,
                description="The configured signal queries, for this entity.",
            )
        )
    return d.dashboard(
        "AURA / Entity drill-down",
        UID,
        panels,
        [d.datasource_variable(), d.analysis_variable(ctx, multi=False), d.entity_variable(ctx)],
        description="Why AURA rates one entity the way it does.",
    )


def __getattr__(name: str) -> Any:
    if name == "dashboard":
        from exporter.generate import default_config

        cfg = default_config()
        return build(d.DashboardContext(cfg, d.default_entity_label(cfg)))
    raise AttributeError(name)
