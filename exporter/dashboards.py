"""Helpers shared by `grafana/*.dashboard.py` and the `aura generate dashboards` renderer.

A dashboard definition is a Python file defining `build(ctx: DashboardContext) -> Dashboard`
(grafanalib). Rendering post-processes grafanalib's JSON: every panel and target datasource
becomes the object `{"type": "prometheus", "uid": "${datasource}"}` (grafanalib leaves legacy
strings), and the output is sorted-key, indent-2 JSON so diffs stay readable.

Metric names come only from `exporter.catalog` (and the recording rules of `exporter.rulegen`);
grafanalib is imported lazily.
"""

from __future__ import annotations

import importlib.util
import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from exporter import catalog
from exporter.config import Config

DATASOURCE: dict[str, str] = {"type": "prometheus", "uid": "${datasource}"}
SUFFIX = ".dashboard.py"
GRID_WIDTH = 24


class DashboardError(Exception):
    """A dashboard definition could not be loaded or built."""


@dataclass(frozen=True)
class DashboardContext:
    """What a definition may vary on: the config and the entity label of the drill-down."""

    cfg: Config
    entity_label: str

    @property
    def selector(self) -> str:
        """`rules.selector` without surrounding commas ("" when none)."""
        return self.cfg.rules.selector.strip().strip(",")

    def q(self, metric: catalog.Metric | str, *matchers: str) -> str:
        """`name{rules.selector, matchers}`; `metric` is a catalog entry or a recording rule."""
        name = metric.name if isinstance(metric, catalog.Metric) else metric
        parts = [p for p in (self.selector, *matchers) if p]
        return f"{name}{{{','.join(parts)}}}" if parts else name

    @property
    def entity_legend(self) -> str:
        """Grafana legend `{{<entity label>}}`."""
        return "{{" + self.entity_label + "}}"

    @property
    def entity_matcher(self) -> str:
        """PromQL matcher `<entity label>="$entity"` (the drill-down's variable)."""
        return f'{self.entity_label}="$entity"'


def default_entity_label(cfg: Config) -> str:
    """The most specific entity label of the first analysis (`instance` when none)."""
    return cfg.analyses[0].entity_labels[-1] if cfg.analyses else "instance"


# ---------------------------------------------------------------------------------------------
# Variables


def datasource_variable() -> Any:
    """The `datasource` template variable (any Prometheus data source)."""
    from grafanalib.core import Template

    return Template(
        name="datasource", label="Data source", query="prometheus", type="datasource", default=""
    )


def analysis_variable(ctx: DashboardContext, *, multi: bool) -> Any:
    """The `analysis` variable: label values of `aura_risk_score` (multi: several and All)."""
    from grafanalib.core import Template

    return Template(
        name="analysis",
        label="Analysis",
        query=f"label_values({ctx.q(catalog.RISK_SCORE)}, analysis)",
        dataSource=DATASOURCE,
        includeAll=multi,
        multi=multi,
        refresh=2,  # on time range change: analyses come and go with the config
        sort=1,
        default="",
    )


def entity_variable(ctx: DashboardContext) -> Any:
    """The `entity` variable: values of the entity label in the chosen `$analysis`."""
    from grafanalib.core import Template

    return Template(
        name="entity",
        label=ctx.entity_label,
        query=(
            f"label_values({ctx.q(catalog.RISK_SCORE, 'analysis=' + chr(34) + '$analysis' + chr(34))}, "
            f"{ctx.entity_label})"
        ),
        dataSource=DATASOURCE,
        refresh=2,
        sort=1,
        default="",
    )


# ---------------------------------------------------------------------------------------------
# Panels


def target(
    expr: str, legend: str = "", *, ref: str = "A", instant: bool = False, table: bool = False
) -> Any:
    """One PromQL target; instant and/or table format for stat and table panels."""
    from grafanalib.core import Target

    return Target(
        expr=expr,
        legendFormat=legend,
        refId=ref,
        instant=instant,
        format="table" if table else "time_series",
        datasource=DATASOURCE,
    )


def _targets(queries: Sequence[tuple[str, str]], **kw: Any) -> list[Any]:
    return [target(e, legend, ref=chr(ord("A") + i), **kw) for i, (e, legend) in enumerate(queries)]


def timeseries(
    title: str,
    queries: Sequence[tuple[str, str]],
    *,
    unit: str = "",
    description: str = "",
    max_: float | None = None,
    w: int = 12,
    h: int = 8,
) -> Any:
    """Time-series panel of (expr, legend) queries, w x h grid units, min 0 (max `max_`)."""
    from grafanalib.core import TimeSeries

    return TimeSeries(
        title=title,
        description=description,
        dataSource=DATASOURCE,
        targets=_targets(queries),
        unit=unit,
        valueMin=0,
        valueMax=max_,
        legendDisplayMode="table",
        legendPlacement="right" if w >= 12 else "bottom",
        legendCalcs=["lastNotNull", "max"],
        tooltipMode="multi",
        gridPos=_size(w, h),
    )


def stat(
    title: str,
    queries: Sequence[tuple[str, str]],
    *,
    unit: str = "none",
    description: str = "",
    mappings: list[dict[str, Any]] | None = None,
    thresholds: list[tuple[float | None, str]] | None = None,
    w: int = 6,
    h: int = 4,
) -> Any:
    """Stat panel of the last value; `thresholds` are (from value or None, colour) steps."""
    from grafanalib.core import Stat, Threshold

    steps = thresholds or [(None, "green")]
    return Stat(
        title=title,
        description=description,
        dataSource=DATASOURCE,
        targets=_targets(queries, instant=True),
        format=unit,
        mappings=mappings or [],
        noValue="none",
        reduceCalc="lastNotNull",
        thresholds=[
            Threshold(color, i, float(value or 0)) for i, (value, color) in enumerate(steps)
        ],
        gridPos=_size(w, h),
    )


def table(
    title: str,
    queries: Sequence[tuple[str, str]],
    *,
    description: str = "",
    hide: Sequence[str] = (),
    rename: dict[str, str] | None = None,
    w: int = 12,
    h: int = 10,
) -> Any:
    """Table of instant queries merged on their labels; `hide` columns, `rename` headers."""
    from grafanalib.core import Table

    excluded = {"Time": True, "__name__": True, "job": True, **{c: True for c in hide}}
    return Table(
        title=title,
        description=description,
        dataSource=DATASOURCE,
        targets=_targets(queries, instant=True, table=True),
        transformations=[
            {"id": "merge", "options": {}},
            {
                "id": "organize",
                "options": {"excludeByName": excluded, "renameByName": rename or {}},
            },
        ],
        gridPos=_size(w, h),
    )


def heatmap(
    title: str, expr: str, legend: str, *, description: str = "", w: int = 24, h: int = 9
) -> Any:
    """Heatmap with one row per series (entity) of `expr`."""
    from grafanalib.core import Heatmap, HeatmapColor

    # One row per series (entity): `tsbuckets` keeps the series as buckets instead of binning.
    return Heatmap(
        title=title,
        description=description,
        dataSource=DATASOURCE,
        targets=[target(expr, legend)],
        dataFormat="tsbuckets",
        color=HeatmapColor(mode="spectrum", colorScheme="interpolateOranges"),
        yBucketBound="auto",
        hideZeroBuckets=False,
        gridPos=_size(w, h),
    )


def row(title: str) -> Any:
    """A full-width row header."""
    from grafanalib.core import RowPanel

    return RowPanel(title=title, gridPos=_size(GRID_WIDTH, 1))


LEVEL_MAPPINGS: list[dict[str, Any]] = [
    {
        "type": "value",
        "options": {
            str(level): {"text": name, "color": color, "index": level}
            for (level, name), color in zip(
                catalog.LEVELS.items(), ("green", "orange", "red"), strict=True
            )
        },
    }
]
LEVEL_THRESHOLDS: list[tuple[float | None, str]] = [(None, "green"), (1, "orange"), (2, "red")]
RISK_THRESHOLDS: list[tuple[float | None, str]] = [(None, "green"), (0.5, "orange"), (0.8, "red")]


def risk_thresholds(cfg: Config) -> list[tuple[float | None, str]]:
    """Colour steps at the consensus' warning and critical risk."""
    c = cfg.agents.consensus
    return [(None, "green"), (c.warning_risk, "orange"), (c.critical_risk, "red")]


def _size(w: int, h: int) -> Any:
    from grafanalib.core import GridPos

    return GridPos(h=h, w=w, x=0, y=0)


def layout(panels: Sequence[Any]) -> list[Any]:
    """Place panels left to right, wrapping at the grid width (rows start a new line)."""
    import attr
    from grafanalib.core import GridPos, RowPanel

    out, x, y, line_h = [], 0, 0, 0
    for p in panels:
        w, h = p.gridPos.w, p.gridPos.h
        if isinstance(p, RowPanel) or x + w > GRID_WIDTH:
            x, y, line_h = 0, y + line_h, 0
        out.append(attr.evolve(p, gridPos=GridPos(h=h, w=w, x=x, y=y)))
        x, line_h = x + w, max(line_h, h)
        if isinstance(p, RowPanel):
            x, y, line_h = 0, y + h, 0
    return out


def dashboard(
    title: str,
    uid: str,
    panels: Sequence[Any],
    variables: Sequence[Any],
    *,
    description: str,
    tags: Sequence[str] = ("aura",),
    refresh: str = "1m",
) -> Any:
    """A Dashboard of `panels` placed by `layout`, with the template `variables`, the last 6 h
    in UTC, refreshed every `refresh`, panel ids assigned."""
    from grafanalib.core import Dashboard, Templating, Time

    return Dashboard(
        title=title,
        uid=uid,
        description=description,
        tags=list(tags),
        panels=layout(panels),
        templating=Templating(list=list(variables)),
        time=Time("now-6h", "now"),
        refresh=refresh,
        timezone="utc",
        sharedCrosshair=True,
    ).auto_panel_ids()


# ---------------------------------------------------------------------------------------------
# Rendering


def load_definition(path: Path) -> Any:
    """Import a `*.dashboard.py` file as a module (not on sys.path; not cached)."""
    spec = importlib.util.spec_from_file_location(f"aura_dashboard_{path.stem.split('.')[0]}", path)
    if spec is None or spec.loader is None:
        raise DashboardError(f"{path}: cannot load")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as err:
        raise DashboardError(f"{path}: {type(err).__name__}: {err}") from err
    if not callable(getattr(module, "build", None)):
        raise DashboardError(f"{path}: defines no build(ctx) function")
    return module


def _fix_datasources(node: Any) -> None:
    """Replace grafanalib's legacy string/None datasources by the variable's object."""
    if isinstance(node, dict):
        if node.get("type") == "datasource":  # the datasource variable itself
            node["datasource"] = None
        elif "targets" in node or "expr" in node or node.get("type") == "query":
            if not isinstance(node.get("datasource"), dict):
                node["datasource"] = dict(DATASOURCE)
        for value in node.values():
            _fix_datasources(value)
    elif isinstance(node, list):
        for value in node:
            _fix_datasources(value)


def to_json(dash: Any) -> str:
    """Grafana JSON text of a grafanalib Dashboard: fixed datasources, sorted keys, indent 2."""
    from grafanalib._gen import DashboardEncoder

    data = json.loads(json.dumps(dash.to_json_data(), cls=DashboardEncoder))
    _fix_datasources(data)
    return json.dumps(data, sort_keys=True, indent=2) + "\n"


def definitions(source_dir: Path) -> list[Path]:
    """The `*.dashboard.py` files of `source_dir`, sorted."""
    return sorted(source_dir.glob(f"*{SUFFIX}"))


def render_all(cfg: Config, source_dir: Path, *, entity_label: str | None = None) -> dict[str, str]:
    """Render every definition in `source_dir`: `<name>.json` -> text."""
    ctx = DashboardContext(cfg, entity_label or default_entity_label(cfg))
    paths = definitions(source_dir)
    if not paths:
        raise DashboardError(f"{source_dir}: no *{SUFFIX} definitions")
    out = {}
    for path in paths:
        dash = load_definition(path).build(ctx)
        out[path.name[: -len(SUFFIX)] + ".json"] = to_json(dash)
    return out


def expressions(data: Any) -> Iterator[str]:
    """Every PromQL expression of a dashboard's JSON: panel targets and query variables."""
    if isinstance(data, dict):
        if isinstance(data.get("expr"), str):
            yield data["expr"]
        if data.get("type") == "query" and isinstance(data.get("query"), str):
            yield data["query"]
        for value in data.values():
            yield from expressions(value)
    elif isinstance(data, list):
        for value in data:
            yield from expressions(value)


_LABEL_VALUES = re.compile(r"^label_values\((.*),\s*([a-zA-Z_][a-zA-Z0-9_]*)\)$", re.S)


def as_promql(expr: str, variables: dict[str, str]) -> str:
    """Substitute template variables; `label_values(q, l)` becomes the query `q` itself."""
    for name, value in sorted(variables.items(), key=lambda kv: -len(kv[0])):
        expr = expr.replace("${" + name + "}", value).replace("$" + name, value)
    match = _LABEL_VALUES.match(expr.strip())
    return match.group(1) if match else expr
