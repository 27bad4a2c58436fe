"""Grafana dashboards as code: generate, stay fresh, use catalog names, parse in real Prometheus."""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Any

import pytest

from exporter import catalog, dashboards, generate, rulegen
from exporter.config import parse_config
from tests.promstack import PrometheusProcess, ensure_binaries

ROOT = Path(__file__).resolve().parent.parent
GRAFANA = ROOT / "grafana"
NAMES = ("fleet-overview", "entity-drilldown", "exporter-health")
VARIABLES = {
    "datasource": "prometheus",
    "analysis": "nodes",
    "entity": "n1:9100",
    "__rate_interval": "5m",
    "__interval": "1m",
}


def cli(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    generate.add_arguments(parser)
    return generate.run(parser.parse_args(list(argv)))


@pytest.fixture(scope="module")
def fresh() -> dict[str, str]:
    return dashboards.render_all(generate.default_config(), GRAFANA)


def load(name: str) -> dict[str, Any]:
    return json.loads((GRAFANA / f"{name}.json").read_text())


def walk(node: Any):  # type: ignore[no-untyped-def]
    if isinstance(node, dict):
        yield node
        for v in node.values():
            yield from walk(v)
    elif isinstance(node, list):
        for v in node:
            yield from walk(v)


def test_every_definition_generates_and_committed_json_is_fresh(fresh: dict[str, str]) -> None:
    assert sorted(fresh) == sorted(f"{n}.json" for n in NAMES)
    assert {p.name[: -len(".dashboard.py")] for p in GRAFANA.glob("*.dashboard.py")} == set(NAMES)
    for name, text in fresh.items():
        assert (GRAFANA / name).read_text() == text, (
            f"{name} is stale: run aura generate dashboards"
        )
        # sorted keys, indent 2: re-dumping changes nothing
        assert json.dumps(json.loads(text), sort_keys=True, indent=2) + "\n" == text


def test_check_flag_detects_stale_dashboards(tmp_path: Path) -> None:
    assert cli("dashboards", "--check") == 0
    out = tmp_path / "grafana"
    assert cli("dashboards", "--output-dir", str(out), "--dashboard.source-dir", str(GRAFANA)) == 0
    args = (
        "dashboards",
        "--check",
        "--output-dir",
        str(out),
        "--dashboard.source-dir",
        str(GRAFANA),
    )
    assert cli(*args) == 0
    path = out / "fleet-overview.json"
    path.write_text(path.read_text().replace("topk(20,", "topk(21,"))
    assert cli(*args) == 1


def test_uids_and_variables() -> None:
    uids = {n: load(n)["uid"] for n in NAMES}
    assert uids == {
        "fleet-overview": "aura-fleet-overview",
        "entity-drilldown": "aura-entity-drilldown",
        "exporter-health": "aura-exporter-health",
    }
    for name in NAMES:
        variables = {v["name"]: v for v in load(name)["templating"]["list"]}
        assert variables["datasource"]["type"] == "datasource"
        assert variables["datasource"]["query"] == "prometheus"
    drill = {v["name"]: v for v in load("entity-drilldown")["templating"]["list"]}
    assert (
        drill["entity"]["query"] == 'label_values(aura_risk_score{analysis="$analysis"}, instance)'
    )
    assert drill["analysis"]["type"] == "query"


def test_datasources_are_objects_not_strings() -> None:
    for name in NAMES:
        for node in walk(load(name)):
            if "targets" in node or "expr" in node or node.get("type") == "query":
                assert node["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, node
            if "datasource" in node:
                assert not isinstance(node["datasource"], str), node


def test_expressions_use_only_catalog_names_and_recording_rules() -> None:
    known = set(catalog.BY_NAME) | set(rulegen.RECORDING_RULE_NAMES)
    generated = {
        r["record"]
        for g in rulegen.generate_rules(generate.default_config())["groups"]
        for r in g["rules"]
        if "record" in r
    }
    assert generated == set(rulegen.RECORDING_RULE_NAMES)
    for name in NAMES:
        exprs = list(dashboards.expressions(load(name)))
        assert exprs, name
        for expr in exprs:
            for metric in re.findall(r"\baura[_:][a-zA-Z_:]+", expr):
                assert metric in known, (name, metric, expr)


def test_required_panels_are_present() -> None:
    def exprs(name: str) -> str:
        return "\n".join(dashboards.expressions(load(name)))

    fleet, drill, health = (
        exprs("fleet-overview"),
        exprs("entity-drilldown"),
        exprs("exporter-health"),
    )
    # The riskiest entities: level first, then risk.
    assert (f"topk(20, 2 * {catalog.RISK_LEVEL.name}{{analysis=~\"$analysis\"}} + "
            f"{catalog.RISK_SCORE.name}" in fleet)
    for metric in (
        rulegen.FAILURE_PROBABILITY_MAX,
        catalog.TIME_TO_FAILURE.name,
        rulegen.ENTITIES_AT_RISK,
        catalog.FLEET_BETTI.name,
        catalog.TOPOLOGY_ANOMALY.name,
    ):
        assert metric in fleet, metric
    assert any(p["type"] == "heatmap" for p in load("fleet-overview")["panels"])
    for m in (
        catalog.RISK_SCORE,
        catalog.RISK_LEVEL,
        catalog.FAILURE_PROBABILITY,
        catalog.TIME_TO_FAILURE,
        catalog.TOPOLOGY_ANOMALY,
        catalog.BETTI,
        catalog.ENTROPY,
        catalog.AGENT_RISK,
        catalog.SIGNAL_CONTRIBUTION,
        catalog.RECOMMENDED_ACTION,
    ):
        assert f'{m.name}{{analysis="$analysis",instance="$entity"}}' in drill, m.name
    for m in (
        catalog.CYCLE_DURATION,
        catalog.STAGE_DURATION,
        catalog.SOURCE_QUERY_ERRORS,
        catalog.ENTITIES_DROPPED,
        catalog.UP,
        catalog.MODEL_INFO,
    ):
        assert m.name in health, m.name


def test_entity_label_is_configurable() -> None:
    cfg = parse_config(
        {
            "analyses": [
                {
                    "name": "pods",
                    "entity_labels": ["namespace", "pod"],
                    "signals": [{"name": "m", "query": "up"}],
                }
            ],
            "rules": {"selector": 'job="aura"'},
        }
    )
    out = dashboards.render_all(cfg, GRAFANA)  # default: the most specific label, `pod`
    drill = json.loads(out["entity-drilldown.json"])
    entity = {v["name"]: v for v in drill["templating"]["list"]}["entity"]
    assert entity["query"] == 'label_values(aura_risk_score{job="aura",analysis="$analysis"}, pod)'
    assert 'pod="$entity"' in "\n".join(dashboards.expressions(drill))
    out = dashboards.render_all(cfg, GRAFANA, entity_label="namespace")
    drill = json.loads(out["entity-drilldown.json"])
    assert 'namespace="$entity"' in "\n".join(dashboards.expressions(drill))


def test_every_expression_parses_in_real_prometheus(tmp_path: Path, fresh: dict[str, str]) -> None:
    ensure_binaries()
    exprs = sorted(
        {
            dashboards.as_promql(e, VARIABLES)
            for text in fresh.values()
            for e in dashboards.expressions(json.loads(text))
        }
    )
    assert len(exprs) > 30
    assert not any("$" in e for e in exprs), [e for e in exprs if "$" in e]
    with PrometheusProcess(tmp_path / "data") as prom:
        for expr in exprs:
            prom.query(expr)  # raises with Prometheus' error unless status is success
        with pytest.raises(RuntimeError):  # the check itself can fail
            prom.query("aura_risk_score{")
