"""Presets: valid config, every query parses in the real Prometheus, one series per entity."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict

import numpy as np
import pytest

from exporter.config import SourceConfig, parse_config
from exporter.presets import PRESETS
from exporter.source.prometheus import PrometheusSource
from tests import promstack

STEP = 60.0
T = 30
NODE_SIGNALS = ["cpu", "memory", "disk", "load", "network_errors", "network_traffic"]


def preset_analysis(name: str):
    return parse_config({"analyses": [{"name": name.replace("-", "_"), "preset": name}]}).analysis()


def test_node_preset_keeps_its_signal_names():
    assert [s["name"] for s in PRESETS["node"]["signals"]] == NODE_SIGNALS


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_preset_is_a_valid_analysis(name):
    an = preset_analysis(name)
    assert an.entity_labels == tuple(PRESETS[name]["entity_labels"])
    for sig in an.signals:
        # One series per entity needs the entity labels in the query's grouping.
        assert f"by ({', '.join(an.entity_labels)}" in sig.query, sig.name
        assert sig.kind in ("resource", "latency", "errors", "network", "saturation", "other")
    assert any(s.direction == "down" for s in an.signals) == (name == "cloud")


class Families:
    """Collects series per metric name, then renders one OpenMetrics file."""

    def __init__(self, ts: np.ndarray):
        self.ts = ts
        self.rows: dict[str, list[tuple[dict[str, str], np.ndarray]]] = defaultdict(list)

    def add(self, metric: str, labels: dict[str, str], values) -> None:
        self.rows[metric].append((labels, np.broadcast_to(np.asarray(values, float),
                                                          self.ts.shape)))

    def text(self) -> str:
        parts = []
        for metric, rows in self.rows.items():
            keys = sorted({k for lab, _ in rows for k in lab})
            labels = {k: [lab.get(k, "") for lab, _ in rows] for k in keys}
            parts.append(promstack.openmetrics_gauges(metric, labels, self.ts,
                                                      np.stack([v for _, v in rows])))
        return promstack.join_openmetrics(*parts)


def build_data(ts: np.ndarray) -> tuple[str, dict[str, set], dict]:
    """Exporter-shaped data for every preset, with several series per entity on purpose."""
    f = Families(ts)
    rel = ts - ts[0]
    truth: dict = {}
    entities: dict[str, set] = {}
    # node_exporter: 3 hosts, 2 CPUs, 3 filesystems (one tmpfs, ignored), eth0 + lo.
    idle = [0.9, 0.5, 0.2]
    avail = [800.0, 300.0, 50.0]
    fs_used = [(0.1, 0.4), (0.7, 0.2), (0.5, 0.95)]
    load = [0.4, 1.0, 3.0]
    for i, inst in enumerate(["n0:9100", "n1:9100", "n2:9100"]):
        base = {"instance": inst, "job": "node"}
        for cpu in ("0", "1"):
            f.add("node_cpu_seconds_total", {**base, "cpu": cpu, "mode": "idle"}, rel * idle[i])
            f.add("node_cpu_seconds_total", {**base, "cpu": cpu, "mode": "user"},
                  rel * (1 - idle[i]))
        f.add("node_memory_MemAvailable_bytes", base, avail[i])
        f.add("node_memory_MemTotal_bytes", base, 1000.0)
        for (mnt, fstype), used in zip((("/", "ext4"), ("/data", "xfs")), fs_used[i], strict=True):
            f.add("node_filesystem_avail_bytes", {**base, "mountpoint": mnt, "fstype": fstype},
                  100 * (1 - used))
            f.add("node_filesystem_size_bytes", {**base, "mountpoint": mnt, "fstype": fstype}, 100)
        f.add("node_filesystem_avail_bytes", {**base, "mountpoint": "/run", "fstype": "tmpfs"}, 0)
        f.add("node_filesystem_size_bytes", {**base, "mountpoint": "/run", "fstype": "tmpfs"}, 10)
        f.add("node_load5", base, load[i])
        for dev in ("eth0", "lo"):
            for m in ("receive_errs", "transmit_errs", "receive_drop", "transmit_drop",
                      "receive_bytes", "transmit_bytes"):
                f.add(f"node_network_{m}_total", {**base, "device": dev}, rel * (i + 1))
        truth[inst] = {"cpu": 1 - idle[i], "memory": 1 - avail[i] / 1000, "disk": max(fs_used[i]),
                       "load": load[i] / 2, "network_errors": 4.0 * (i + 1),
                       "network_traffic": 2.0 * (i + 1)}
    entities["node"] = {(k,) for k in truth}
    # Kubernetes: 3 pods, 2 containers each, plus cAdvisor's pod-level ("") and pause ("POD")
    # series that the queries must leave out.
    pods = [("ns1", "web-0"), ("ns1", "web-1"), ("ns2", "db-0")]
    for ns, pod in pods:
        ksm = {"namespace": ns, "pod": pod, "job": "kube-state-metrics", "instance": "ksm:8080"}
        cad = {"namespace": ns, "pod": pod, "job": "kubelet", "instance": "node-a"}
        for c in ("app", "sidecar", "", "POD"):
            lab = {**cad, "container": c}
            f.add("container_memory_working_set_bytes", lab, 100.0)
            f.add("container_cpu_usage_seconds_total", lab, rel * 0.1)
            f.add("container_cpu_cfs_throttled_periods_total", lab, rel)
            f.add("container_cpu_cfs_periods_total", lab, rel * 10)
        for c in ("app", "sidecar"):
            lab = {**ksm, "container": c}
            f.add("kube_pod_container_resource_limits",
                  {**lab, "resource": "memory", "unit": "byte"}, 400.0)
            f.add("kube_pod_container_resource_limits",
                  {**lab, "resource": "cpu", "unit": "core"}, 0.5)
            f.add("kube_pod_container_status_restarts_total", lab, np.floor(rel / 600))
            f.add("kube_pod_container_status_last_terminated_reason",
                  {**lab, "reason": "OOMKilled"}, 1.0 if c == "app" else 0.0)
        for cond, v in (("true", 1.0), ("false", 0.0), ("unknown", 0.0)):
            f.add("kube_pod_status_ready", {**ksm, "condition": cond}, v)
    entities["kubernetes-pods"] = set(pods)
    # HTTP services: 2 services, 2 pods each, several codes and methods, a histogram.
    for svc in ("checkout", "search"):
        for pod in ("a", "b"):
            base = {"service": svc, "pod": f"{svc}-{pod}", "job": "apps"}
            for code, rate in (("200", 10.0), ("500", 0.5), ("404", 1.0)):
                f.add("http_requests_total", {**base, "code": code, "method": "GET"}, rel * rate)
            for le, frac in (("0.1", 0.5), ("0.5", 0.9), ("1", 0.99), ("+Inf", 1.0)):
                f.add("http_request_duration_seconds_bucket", {**base, "le": le},
                      rel * 11.5 * frac)
            f.add("http_requests_in_flight", base, 3.0)
    entities["http-service"] = {("checkout",), ("search",)}
    # CloudWatch: cloudwatch_exporter labels for db1/i-1, YACE labels for db2/i-2.
    rds = [{"dbinstance_identifier": "db1", "job": "cloudwatch"},
           {"dimension_DBInstanceIdentifier": "db2", "name": "arn:aws:rds:eu-west-1:1:db:db2",
            "region": "eu-west-1", "job": "yace"}]
    ec2 = [{"instance_id": "i-1", "job": "cloudwatch"},
           {"dimension_InstanceId": "i-2", "name": "arn:aws:ec2:eu-west-1:1:instance/i-2",
            "region": "eu-west-1", "job": "yace"}]
    for lab in rds:
        for m in ("cpuutilization", "cpucredit_balance", "free_storage_space",
                  "database_connections", "replica_lag"):
            f.add(f"aws_rds_{m}_average", lab, 42.0)
    for lab in ec2:
        f.add("aws_ec2_cpuutilization_average", lab, 42.0)
        f.add("aws_ec2_status_check_failed_maximum", lab, 0.0)
    entities["cloud"] = {("db1",), ("db2",), ("i-1",), ("i-2",)}
    return f.text(), entities, truth


@pytest.fixture(scope="module")
def prom(tmp_path_factory):
    promstack.ensure_binaries()
    end = np.floor((time.time() - 300) / STEP) * STEP
    ts = end - STEP * np.arange(T - 1, -1, -1)
    text, entities, truth = build_data(ts)
    data = tmp_path_factory.mktemp("presets") / "data"
    promstack.backfill(text, data)
    with promstack.PrometheusProcess(data) as server:
        yield server, ts, entities, truth


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_query_parses_in_prometheus_even_without_data(prom, name):
    server, *_ = prom
    for sig in PRESETS[name]["signals"]:
        # At a time with no data at all: the answer must still be a success.
        assert server.query(sig["query"], time_=1_000_000_000.0) == [], sig["name"]


async def _fetch(url, an, start, end):
    src = PrometheusSource(SourceConfig(url=url))
    try:
        return await src.fetch(an, start, end)
    finally:
        await src.close()


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_one_series_per_entity(prom, name):
    server, ts, entities, _ = prom
    an = preset_analysis(name)
    got = asyncio.run(_fetch(server.url, an, ts[-10], ts[-1]))
    assert got.errors == {}
    assert set(got.block.entities) == entities[name]
    for j, sig in enumerate(an.signals):
        rows = ~np.isnan(got.block.values[:, j]).all(axis=1)
        served = {e for e, r in zip(got.block.entities, rows, strict=True) if r}
        assert got.series[sig.name] == len(served) > 0, sig.name
        # A signal that failed to aggregate would show more series than entities.
        assert served <= entities[name]
        assert not np.isnan(got.block.values[rows, j]).any(), sig.name


def test_node_values(prom):
    server, ts, _, truth = prom
    an = preset_analysis("node")
    got = asyncio.run(_fetch(server.url, an, ts[-10], ts[-1]))
    for i, (inst,) in enumerate(got.block.entities):
        for j, sig in enumerate(an.signals):
            np.testing.assert_allclose(got.block.values[i, j], truth[inst][sig.name], rtol=1e-9,
                                       err_msg=f"{inst} {sig.name}")


def test_kubernetes_pods_values(prom):
    server, ts, _, _ = prom
    an = preset_analysis("kubernetes-pods")
    got = asyncio.run(_fetch(server.url, an, ts[-3], ts[-1]))
    v = {s.name: got.block.values[:, j] for j, s in enumerate(an.signals)}
    np.testing.assert_allclose(v["memory"], 200 / 800)  # app + sidecar only
    np.testing.assert_allclose(v["cpu"], 0.2 / 1.0)
    np.testing.assert_allclose(v["cpu_throttling"], 0.1)
    np.testing.assert_allclose(v["not_ready"], 0.0)
    # Both containers restart alike; only "app" was OOM-killed: half the restarts of 15 m.
    assert (v["restarts"] > 0).all()
    np.testing.assert_allclose(v["oom_kills"], v["restarts"] * 900 / 2)


def test_http_service_and_cloud_values(prom):
    server, ts, _, _ = prom
    an = preset_analysis("http-service")
    got = asyncio.run(_fetch(server.url, an, ts[-3], ts[-1]))
    v = {s.name: got.block.values[:, j] for j, s in enumerate(an.signals)}
    np.testing.assert_allclose(v["request_rate"], 2 * 11.5)
    np.testing.assert_allclose(v["error_ratio"], 0.5 / 11.5)
    # p99 falls in the (0.5, 1] bucket: 0.5 + 0.5 * (0.99 - 0.9) / (0.99 - 0.9) = 1.0.
    np.testing.assert_allclose(v["latency_p99"], 1.0)
    np.testing.assert_allclose(v["in_flight"], 6.0)
    an = preset_analysis("cloud")
    got = asyncio.run(_fetch(server.url, an, ts[-3], ts[-1]))
    rows = {e[0]: i for i, e in enumerate(got.block.entities)}
    cpu = got.block.values[:, [s.name for s in an.signals].index("rds_cpu")]
    np.testing.assert_allclose(cpu[[rows["db1"], rows["db2"]]], 0.42)
    assert np.isnan(cpu[[rows["i-1"], rows["i-2"]]]).all()


def test_docs_blocks_match_presets():
    import re
    from pathlib import Path

    import yaml

    text = (Path(__file__).parent.parent / "docs" / "presets.md").read_text()
    blocks = re.findall(r"```yaml\n# preset: (\S+)\n(.*?)```", text, flags=re.S)
    assert sorted(name for name, _ in blocks) == sorted(PRESETS)
    for name, body in blocks:
        data = yaml.safe_load(body)
        (an,) = data["analyses"]
        assert an["entity_labels"] == PRESETS[name]["entity_labels"]
        assert an["signals"] == PRESETS[name]["signals"], name
        parse_config(data)  # a copied block is a valid configuration on its own
