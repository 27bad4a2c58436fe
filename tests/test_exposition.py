import shutil
import subprocess
from dataclasses import replace

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from exporter import catalog
from exporter.config import parse_config
from exporter.exposition import render
from exporter.results import AnalysisResult, Consensus, Forecast, TopologyResult, Votes
from exporter.snapshot import SelfStats
from exporter.windows import Window

CFG = parse_config({"analyses": [{"name": "nodes", "entity_labels": ["instance", "job"],
                                  "signals": [{"name": "memory", "query": "m"},
                                              {"name": "cpu", "query": "c"}]}],
                    "exposition": {"top_k_details": 2}})


def _result(n: int = 3) -> AnalysisResult:
    ents = tuple((f'h"{i}\\', "node") for i in range(n))  # label values that need escaping
    sig = ("memory", "cpu")
    window = Window("nodes", ("instance", "job"), ents, sig, np.arange(10.0),
                    np.zeros((n, 2, 10)))
    risk = np.linspace(0.1, 0.9, n)
    topo = TopologyResult(
        anomaly_score=np.r_[np.nan, np.linspace(0.2, 0.4, n - 1)], betti=np.ones((n, 2)),
        entropy=np.full((n, 2), 0.5), features=np.zeros((n, 1)), feature_names=("x",),
        signal_contribution=np.full((n, 2), 0.5), fleet_betti=np.array([1.0, 0.0]),
        fleet_outlier=np.zeros(n))
    fc = Forecast((3600.0, 7200.0, 14400.0), np.tile([0.1, 0.2, 0.3], (n, 1)),
                  np.r_[np.full(n - 1, np.nan), 5400.0])
    votes = (Votes("capacity", risk, np.ones(n), ("none",) * n, np.full(n, np.nan),
                   np.full((n, 2), 0.5), ("",) * n),)
    cons = Consensus(("capacity",), risk, np.r_[np.zeros(n - 1, int), 2], np.full(n, 3),
                     ("none",) * (n - 1) + ("raise_memory_limit",), np.r_[np.full(n - 1, np.nan),
                                                                         5400.0],
                     np.tile([0.8, 0.2], (n, 1)), np.ones((n, 1), bool), ("",) * n,
                     fleet_wide_entities=1, fleet_wide_needed=3)
    return AnalysisResult("nodes", ("instance", "job"), ents, sig, window, topo, fc, votes, cons,
                          {"memory": n, "cpu": n})


def _families(body: bytes):
    return {f.name: f for f in text_string_to_metric_families(body.decode())}


def test_every_catalog_metric_rendered_with_labels_and_no_nan():
    stats = SelfStats(up=1, cycles_total=4, stage_seconds={"ingest": 0.1}, cycle_seconds=0.5,
                      last_success=1.7e9, model_info={"model": "default", "version": "1",
                                                      "status": "ok"})
    body = render([_result()], stats, CFG)
    assert b"NaN" not in body
    fams = _families(body)
    for m in catalog.ALL:
        # prometheus_client strips _total from counter family names.
        assert m.name.removesuffix("_total") in fams, m.name
    probs = [s for s in fams["aura_failure_probability"].samples]
    assert {s.labels["horizon"] for s in probs} == {"1h", "2h", "4h"}
    assert probs[0].labels["instance"] == 'h"0\\' and probs[0].labels["analysis"] == "nodes"
    # ttf only where projected; anomaly only where known.
    assert len(fams["aura_time_to_failure_seconds"].samples) == 1
    assert len(fams["aura_topology_anomaly_score"].samples) == 2


def test_aura_up_absent_until_the_first_cycle_tried_the_source():
    assert b"aura_up" not in render([], SelfStats(), CFG)  # not 0: nothing was tried yet
    assert _families(render([], SelfStats(up=0), CFG))["aura_up"].samples[0].value == 0


def test_detail_series_limited_to_top_k_riskiest():
    body = render([_result(5)], SelfStats(), CFG)
    fams = _families(body)
    instances = {s.labels["instance"] for s in fams["aura_agent_risk_score"].samples}
    assert instances == {'h"3\\', 'h"4\\'}
    assert len(fams["aura_risk_score"].samples) == 5


def test_detail_series_of_an_entity_at_a_level_despite_a_low_risk():
    # A sustained-anomaly warning at risk 0.1 outranks level-0 entities at risk 0.5-0.7.
    r = _result(5)
    c = r.consensus
    r = replace(r, consensus=replace(c, level=np.array([1, 0, 0, 0, 2])))
    instances = {s.labels["instance"]
                 for s in _families(render([r], SelfStats(), CFG))["aura_agent_risk_score"].samples}
    assert instances == {'h"0\\', 'h"4\\'}


@pytest.mark.stack
def test_promtool_check_metrics_clean():
    promtool = shutil.which("promtool")
    assert promtool, "promtool missing: run scripts/setup.sh (installs the prometheus package)"
    body = render([_result()], SelfStats(up=1, last_success=1.0, cycle_seconds=1.0), CFG)
    out = subprocess.run([promtool, "check", "metrics"], input=body, capture_output=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.strip() == b"" and out.stderr.strip() == b"", out.stdout + out.stderr
