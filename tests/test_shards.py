"""Sharding against one real Prometheus: every entity analysed by exactly one of 3 replicas."""

from __future__ import annotations

import asyncio
import io
import math
import time
from pathlib import Path
from typing import Any

from exporter.config import parse_config
from exporter.pipeline import Pipeline
from exporter.source.prometheus import PrometheusSource
from exporter.source.sim_writers import write_openmetrics
from exporter.source.simulator import fleet_signals, simulate_fleet
from tests.promstack import PrometheusProcess, backfill, ensure_binaries


def _backfilled_fleet(data_dir: Path, seed: int, hosts: int, hours: float) -> tuple[Any, float]:
    """A benign fleet backfilled into `data_dir` up to two minutes ago; returns (fleet, now)."""
    ensure_binaries()
    now = time.time()
    start = math.floor((now - hours * 3600) / 60) * 60
    fleet = simulate_fleet(seed, hosts, start, hours * 3600, 60, families=[])
    buf = io.StringIO()
    write_openmetrics(fleet, buf, until=now - 120)
    backfill(buf.getvalue(), data_dir)
    return fleet, now


def test_three_shards_partition_the_fleet(tmp_path: Path) -> None:
    fleet, now = _backfilled_fleet(tmp_path / "data", seed=5, hosts=15, hours=3)
    signals = [{"name": s.name, "query": s.query, "kind": s.kind,
                **({"capacity": s.capacity} if s.capacity is not None else {})}
               for s in fleet_signals() if s.name in ("memory", "cpu", "disk")]
    with PrometheusProcess(tmp_path / "data") as prom:
        cfg = parse_config({"source": {"url": prom.url},
                            "analyses": [{"name": "nodes", "window": "1h", "step": "1m",
                                          "signals": signals,
                                          "topology": {"bootstrap": "0s"}}]})
        seen: list[set[tuple[str, ...]]] = []
        for index in range(3):
            async def cycle(index: int = index) -> set[tuple[str, ...]]:
                source = PrometheusSource(cfg.source)
                pipe = Pipeline(cfg, source, shard=(index, 3), topology_workers=1)
                try:
                    snap = await pipe.run_cycle(now - 180)
                finally:
                    await source.close()
                    pipe.close()
                assert b"aura_up 1.0" in snap.body
                return set(snap.results[0].entities)

            seen.append(asyncio.run(cycle()))
    union = set().union(*seen)
    assert union == set(fleet.entities), union ^ set(fleet.entities)
    assert sum(len(s) for s in seen) == len(union)  # pairwise disjoint
    assert all(seen), "a shard got no entity: the hash does not spread"


def test_prometheus_stopped_mid_run_then_back(tmp_path: Path) -> None:
    """aura_up 0 and last results served while Prometheus is down; aura_up 1 once it is back."""
    fleet, now = _backfilled_fleet(tmp_path / "data", seed=6, hosts=6, hours=2)
    signals = [{"name": s.name, "query": s.query} for s in fleet_signals()
               if s.name in ("memory", "disk")]

    async def scenario() -> None:
        prom = PrometheusProcess(tmp_path / "data").__enter__()
        port = prom.port
        cfg = parse_config({"source": {"url": prom.url, "timeout": "5s", "retries": 0},
                            "interval": "1m", "stale_after": "10m",
                            "analyses": [{"name": "nodes", "window": "1h", "step": "1m",
                                          "signals": signals,
                                          "topology": {"bootstrap": "0s"}}]})
        source = PrometheusSource(cfg.source)
        pipe = Pipeline(cfg, source, topology_workers=1)
        try:
            body = (await pipe.run_cycle(now - 180)).body.decode()
            assert "aura_up 1.0" in body and 'aura_analysis_entities{analysis="nodes"} 6' in body
            prom.stop()
            body = (await pipe.run_cycle(now - 120)).body.decode()
            assert "aura_up 0.0" in body
            assert 'aura_analysis_entities{analysis="nodes"} 6' in body  # last good kept
            assert 'aura_cycle_failures_total{stage="ingest"} 1.0' in body
            prom = PrometheusProcess(tmp_path / "data", port=port).__enter__()
            body = (await pipe.run_cycle(now - 60)).body.decode()
            assert "aura_up 1.0" in body  # back without restarting the exporter
        finally:
            await source.close()
            pipe.close()
            prom.stop()

    asyncio.run(scenario())
