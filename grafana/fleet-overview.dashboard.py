"""AURA fleet overview: who is at risk, how likely, how soon — across every analysis.

Rendered by `aura generate dashboards` (see exporter/dashboards.py); `build(ctx)` is the entry
point, and `dashboard` (for grafanalib's `generate-dashboard`) builds with the default config.
"""

from __future__ import annotations

from typing import Any

from exporter import catalog
from exporter import dashboards as d
from exporter import rulegen as rules

UID = "aura-fleet-overview"


def build(ctx: d.DashboardContext) -> Any:
    a = 'analysis=~"$analysis"'
    ent = ctx.entity_legend
    risk = ctx.q(catalog.RISK_SCORE, a)
    level = ctx.q(catalog.RISK_LEVEL, a)
    # Level first, then risk (risk <= 1 < 2 per level).
    top = f"topk(20, 2 * {level} + {risk})"
    critical, warning = (f'level="{catalog.LEVELS[n]}"' for n in (2, 1))
    panels = [
        d.stat(
            "Entities analysed",
            [(f"sum({ctx.q(catalog.ANALYSIS_ENTITIES, a)})", "")],
            description="Entities in the last cycle of the selected analyses.",
            w=5,
        ),
        d.stat(
            "Critical",
            [(f"sum({ctx.q(rules.ENTITIES_AT_RISK, a, critical)})", "")],
            description="Entities whose consensus level is critical (AuraFailurePredicted).",
            thresholds=[(None, "green"), (1, "red")],
            w=5,
        ),
        d.stat(
            "Warning",
            [(f"sum({ctx.q(rules.ENTITIES_AT_RISK, a, warning)})", "")],
            description="Entities whose consensus level is warning (AuraFailureRisk).",
            thresholds=[(None, "green"), (1, "orange")],
            w=5,
        ),
        d.stat(
            "Fleet-wide event",
            [(f"sum({ctx.q(catalog.FLEET_WIDE_EVENT, a)})", "")],
            description="Analyses where more entities reached a level at once than independent "
            "failures explain (AuraFleetWideEvent): a shared cause such as a surge or a "
            "rollout; those entities' own alerts are held. Entities counted: "
            "aura_fleet_wide_entities.",
            thresholds=[(None, "green"), (1, "orange")],
            w=4,
        ),
        d.stat(
            "Soonest time to failure",
            [(f"min({ctx.q(catalog.TIME_TO_FAILURE, a)})", "")],
            unit="s",
            description="Shortest projected time to failure in the fleet; none when no failure "
            "is projected within the largest horizon.",
            w=5,
        ),
        d.table(
            "Riskiest entities",
            [
                (f"{risk} and {top}", ""),
                (f"{level} and {top}", ""),
                (f"{ctx.q(catalog.TIME_TO_FAILURE, a)} and {top}", ""),
            ],
            description="The 20 entities at the highest level, then with the highest risk (the "
            "consensus risk read against what is usual for the entity; its bands are the "
            "levels), their level and time to failure (empty: none projected).",
            rename={"Value #A": "risk", "Value #B": "level", "Value #C": "time to failure (s)"},
            w=12,
            h=12,
        ),
        d.timeseries(
            "Risk of the riskiest entities",
            [(f"topk(10, {risk})", f"{{{{analysis}}}} {ent}")],
            unit="percentunit",
            max_=1,
            w=12,
            h=12,
        ),
        d.timeseries(
            "Failure probability per horizon (fleet maximum)",
            [(ctx.q(rules.FAILURE_PROBABILITY_MAX, a), "{{analysis}} within {{horizon}}")],
            unit="percentunit",
            max_=1,
            description="Highest probability of failure within each horizon over all entities.",
        ),
        d.timeseries(
            "Time to failure (soonest 10)",
            [(f"bottomk(10, {ctx.q(catalog.TIME_TO_FAILURE, a)})", f"{{{{analysis}}}} {ent}")],
            unit="s",
        ),
        d.timeseries(
            "Entities per risk level",
            [(ctx.q(rules.ENTITIES_AT_RISK, a), "{{analysis}} {{level}}")],
            description="Count of entities at each consensus level (ok, warning, critical).",
        ),
        d.timeseries(
            "Fleet Betti numbers",
            [(ctx.q(catalog.FLEET_BETTI, a), "{{analysis}} β{{dimension}}")],
            description="Topology of the fleet with entities as points: β0 counts clusters of "
            "similar entities, β1 loops. A jump in β0 means the fleet split into groups.",
        ),
        d.heatmap(
            "Topology anomaly (top 30 entities)",
            f"topk(30, {ctx.q(catalog.TOPOLOGY_ANOMALY, a)})",
            f"{{{{analysis}}}} {ent}",
            description="Distance of each entity's current persistence diagram from its own "
            "baseline, 0..1; one row per entity.",
        ),
    ]
    return d.dashboard(
        "AURA / Fleet overview",
        UID,
        panels,
        [d.datasource_variable(), d.analysis_variable(ctx, multi=True)],
        description="Failure predictions of AURA across the fleet.",
    )


def __getattr__(name: str) -> Any:
    if name == "dashboard":
        from exporter.generate import default_config

        cfg = default_config()
        return build(d.DashboardContext(cfg, d.default_entity_label(cfg)))
    raise AttributeError(name)
