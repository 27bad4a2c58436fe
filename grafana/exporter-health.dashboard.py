"""AURA exporter health: is it scraped, is its source answering, are cycles on time."""

from __future__ import annotations

from typing import Any

from exporter import catalog
from exporter import dashboards as d

UID = "aura-exporter-health"


def build(ctx: d.DashboardContext) -> Any:
    q = ctx.q
    up = ctx.selector or 'job=~"aura.*"'  # the same target selector as the AuraDown rule
    rate = "$__rate_interval"
    interval = float(ctx.cfg.interval)
    panels = [
        d.stat(
            "Scraped (up)",
            [(f"min(up{{{up}}})", "")],
            mappings=[
                {
                    "type": "value",
                    "options": {
                        "0": {"text": "down", "color": "red", "index": 0},
                        "1": {"text": "up", "color": "green", "index": 1},
                    },
                }
            ],
            thresholds=[(None, "red"), (1, "green")],
        ),
        d.stat(
            "Source answering (aura_up)",
            [(f"min({q(catalog.UP)})", "")],
            thresholds=[(None, "red"), (1, "green")],
        ),
        d.stat(
            "Since last successful cycle",
            [(f"time() - max({q(catalog.LAST_SUCCESS)})", "")],
            unit="s",
            thresholds=[(None, "green"), (3 * interval, "red")],
        ),
        d.stat("Entities analysed", [(f"sum({q(catalog.ANALYSIS_ENTITIES)})", "")]),
        d.timeseries(
            "Cycle duration",
            [(q(catalog.CYCLE_DURATION), "{{instance}}")],
            unit="s",
            description=f"Wall-clock time per cycle; the interval is {interval:g}s "
            "(AuraCycleSlow fires above it).",
        ),
        d.timeseries("Stage duration", [(q(catalog.STAGE_DURATION), "{{stage}}")], unit="s"),
        d.timeseries(
            "Cycles and stage failures",
            [
                (f"rate({q(catalog.CYCLES)}[{rate}])", "cycles/s"),
                (
                    f"sum by (stage) (rate({q(catalog.CYCLE_FAILURES)}[{rate}]))",
                    "failures {{stage}}",
                ),
            ],
            unit="ops",
        ),
        d.timeseries(
            "Source query errors",
            [
                (
                    f"sum by (analysis, signal) (rate({q(catalog.SOURCE_QUERY_ERRORS)}[{rate}]))",
                    "{{analysis}} {{signal}}",
                ),
            ],
            unit="ops",
        ),
        d.timeseries(
            "Series per signal",
            [
                (q(catalog.SOURCE_SERIES), "{{analysis}} {{signal}}"),
            ],
            description="Series returned by each signal's query (0 fires AuraSignalNoData).",
        ),
        d.timeseries(
            "Entities analysed and dropped",
            [
                (q(catalog.ANALYSIS_ENTITIES), "{{analysis}} analysed"),
                (f"increase({q(catalog.ENTITIES_DROPPED)}[1h])", "{{analysis}} dropped (1h)"),
            ],
            description="Entities beyond max_entities are dropped (AuraEntitiesDropped).",
        ),
        d.timeseries(
            "Incidents recorded",
            [
                (f"increase({q(catalog.INCIDENTS_RECORDED)}[1h])", "recorded (1h)"),
            ],
            description="Real incidents received from Alertmanager's webhook.",
        ),
        d.table(
            "Model",
            [(q(catalog.MODEL_INFO), "")],
            hide=("Value",),
            description="status other than ok: the model abstains (AuraModelAbstaining).",
        ),
        d.table("Build", [(q(catalog.BUILD_INFO), "")], hide=("Value",)),
    ]
    return d.dashboard(
        "AURA / Exporter health",
        UID,
        panels,
        [d.datasource_variable()],
        description="Health of the AURA exporter itself.",
    )


def __getattr__(name: str) -> Any:
    if name == "dashboard":
        from exporter.generate import default_config

        cfg = default_config()
        return build(d.DashboardContext(cfg, d.default_entity_label(cfg)))
    raise AttributeError(name)
