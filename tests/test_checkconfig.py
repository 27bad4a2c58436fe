"""`aura check-config` checks the PromQL of a config with Prometheus' own parser (promtool):
a query that would answer bad_data every cycle is refused, naming its key path."""

from __future__ import annotations

import re
import shutil
import stat
import time
from pathlib import Path

import pytest
import yaml

from exporter.checkconfig import PROMTOOL_MISSING, promql_problems
from exporter.cli import main
from exporter.config import parse_config

ROOT = Path(__file__).resolve().parents[1]
MODEL = str(ROOT / "models" / "default")


@pytest.fixture(autouse=True)
def _promtool_installed():
    assert shutil.which("promtool"), "promtool missing: scripts/setup.sh installs it (prometheus)"


def _write(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "aura.yml"
    path.write_text(yaml.safe_dump({"model": {"path": MODEL}, **data}, sort_keys=False))
    return path


def _signals(*queries: str) -> dict:
    return {"analyses": [{"name": "n", "signals": [
        {"name": f"s{j}", "query": q} for j, q in enumerate(queries)]}]}


def test_broken_query_among_good_ones_names_its_key_path_and_fails(tmp_path, capsys):
    cfg = _write(tmp_path, {"analyses": [
        {"name": "hosts", "preset": "node"},
        {"name": "mine", "signals": [
            {"name": "a", "query": "up"},
            {"name": "b", "query": 'sum by (instance) (rate(x{job="j"}[5m]))'},
            {"name": "c", "query": "sum(node_load5"},
            {"name": "d", "query": "max by (instance) (node_load1)"},
        ]}]})
    assert main(["check-config", str(cfg)]) == 1
    out = capsys.readouterr()
    assert out.err.splitlines() == [
        f"{cfg}: analyses[1].signals[2].query: 1:15: parse error: unclosed left parenthesis",
        "FAILED: 1 problem(s)"]
    assert "SUCCESS" not in out.out


def test_every_bad_expression_is_named_and_selector_is_checked(tmp_path, capsys):
    cfg = _write(tmp_path, {**_signals("rate(x)", "up", 'up{job="a"'),
                            "rules": {"selector": 'job="aura'}})
    assert main(["check-config", str(cfg)]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err == [
        f"{cfg}: analyses[0].signals[0].query: 1:6: parse error: expected type range vector "
        'in call to function "rate", got instant vector',
        f"{cfg}: analyses[0].signals[2].query: 1:11: parse error: unexpected end of input "
        "inside braces",
        f'{cfg}: rules.selector: 1:8: parse error: unterminated quoted string (checked as '
        'up{job="aura})',
        "FAILED: 3 problem(s)"]


def test_queries_are_checked_as_sent_quotes_newlines_and_templating_like_text(tmp_path, capsys):
    """The query goes to Prometheus verbatim, so the rule file must carry it byte for byte:
    YAML-significant characters, newlines and `$1` of label_replace are PromQL, not ours."""
    good = ['label_replace(up, "resource", "$1", "instance", "(.+):.*")',
            'sum by (job) (\n  rate(x{a=~"b|c", d!="e: f # g"}[5m])\n)  # comment',
            "up offset 5m * on (instance) group_left (node) node_uname_info",
            "- 1 + sum(up @ 1700000000)"]
    cfg = _write(tmp_path, _signals(*good))
    assert main(["check-config", str(cfg)]) == 0
    out = capsys.readouterr()
    assert out.err == "" and "SUCCESS" in out.out


@pytest.mark.parametrize("name", ["aura.example.yml", "benchmarks/asd/aura-asd.yml"])
def test_shipped_configs_pass_with_their_promql_checked(name, capsys):
    assert main(["check-config", str(ROOT / name)]) == 0
    out = capsys.readouterr()
    assert out.err == "" and out.out.startswith("SUCCESS")


def test_documented_and_deployed_configs_have_valid_promql():
    """docs/presets.md blocks (every preset's queries) and the Kubernetes ConfigMap."""
    text = (ROOT / "docs" / "presets.md").read_text()
    blocks = re.findall(r"```yaml\n# preset: (\S+)\n(.*?)```", text, flags=re.S)
    assert len(blocks) >= 4
    configs = [yaml.safe_load(body) for _, body in blocks]
    configmap = yaml.safe_load((ROOT / "deploy" / "kubernetes" / "configmap.yaml").read_text())
    configs.append(yaml.safe_load(configmap["data"]["aura.yml"]))
    for data in configs:
        assert promql_problems(parse_config(data)) == ([], [])


def test_without_promtool_it_says_so_in_one_line_and_does_not_fail(tmp_path, capsys,
                                                                   monkeypatch):
    cfg = _write(tmp_path, _signals("sum(node_load5"))
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert main(["check-config", str(cfg)]) == 0
    out = capsys.readouterr()
    assert out.err.splitlines() == [f"{cfg}: note: {PROMTOOL_MISSING}"]
    assert PROMTOOL_MISSING == ("PromQL not checked: promtool not found; install the "
                                "prometheus package")
    assert out.out.startswith("SUCCESS")


def test_a_function_this_promtool_does_not_know_is_a_note_not_a_problem(tmp_path, capsys):
    """exporter/source/prometheus.py advises histogram_avg (Prometheus 2.50+), which an older
    promtool calls unknown: the source decides, check-config only says so."""
    cfg = _write(tmp_path, _signals("histogram_avg(rate(h[5m]))"))
    assert main(["check-config", str(cfg)]) == 0
    err = capsys.readouterr().err
    if err:  # promtool older than the function
        assert err.startswith(f"{cfg}: note: analyses[0].signals[0].query: ")
        assert 'unknown function with name "histogram_avg"' in err
        assert "not counted as a problem" in err and "promtool " in err


def test_output_it_cannot_map_is_checked_one_expression_at_a_time(tmp_path, monkeypatch):
    """A promtool whose errors do not name the rule: each expression is run alone."""
    fake = tmp_path / "bin" / "promtool"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\nPATH=/usr/bin:/bin\nif grep -q 'node_load5' \"$3\"; then\n"
                    "  echo 'Checking'; echo '  FAILED:'; echo 'something is wrong'; exit 1\nfi\n")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", str(fake.parent))
    cfg = parse_config(_signals("up", "sum(node_load5", "down"))
    assert promql_problems(cfg) == (
        ["analyses[0].signals[1].query: something is wrong"], [])


def test_twenty_expressions_are_one_promtool_run(tmp_path):
    cfg = parse_config(_signals(*[f'sum by (instance) (rate(m{{k="{j}"}}[5m]))'
                                  for j in range(19)], "sum(node_load5"))
    start = time.perf_counter()
    problems, notes = promql_problems(cfg)
    elapsed = time.perf_counter() - start
    assert problems == ["analyses[0].signals[19].query: 1:15: parse error: unclosed left "
                        "parenthesis"] and notes == []
    assert elapsed < 5.0, elapsed


def test_a_csv_only_config_without_queries_passes_with_csv_and_is_pointed_there(tmp_path,
                                                                               capsys):
    """`aura backtest --input` reads a config whose signals have no query (the CSV's columns
    are the signals): check-config --csv validates it as that command does."""
    cfg = _write(tmp_path, {"analyses": [{"name": "n", "signals": [
        {"name": "cpu"}, {"name": "mem", "query": "up"}]}]})
    assert main(["check-config", str(cfg)]) == 1
    err = capsys.readouterr().err
    assert f"{cfg}: analyses[0].signals[0].query: required key missing" in err
    assert "check it with --csv" in err
    assert main(["check-config", "--csv", str(cfg)]) == 0
    assert capsys.readouterr().out.startswith(f"SUCCESS: {cfg}: 1 analyses, 2 signals")
    # Everything else is still checked: the query that is there is parsed.
    bad = _write(tmp_path, {"analyses": [{"name": "n", "signals": [
        {"name": "cpu"}, {"name": "mem", "query": "sum(up"}]}]})
    assert main(["check-config", "--csv", str(bad)]) == 1
    assert "analyses[0].signals[1].query" in capsys.readouterr().err


def test_a_rising_resource_without_capacity_is_a_note_not_a_problem(tmp_path, capsys):
    """A leak in bytes without `capacity` cannot be projected to exhaustion: check-config
    says so (and how to fix it) and still passes; a resource with capacity, a falling one
    (exhausted at 0) and a saturation without a hard limit are not noted."""
    cfg = _write(tmp_path, {"analyses": [{"name": "n", "signals": [
        {"name": "mem_used_bytes", "kind": "resource"},
        {"name": "mem_share", "kind": "resource", "capacity": 1.0},
        {"name": "free_bytes", "kind": "resource", "direction": "down"},
        {"name": "load_per_cpu", "kind": "saturation"}]}]})
    assert main(["check-config", "--csv", str(cfg)]) == 0
    err = capsys.readouterr().err
    assert (f"{cfg}: note: analyses[0].signals[0] (mem_used_bytes): a resource without "
            "capacity") in err
    assert "capacity: 1" in err
    for other in ("mem_share", "free_bytes", "load_per_cpu"):
        assert other not in err
    # Next to a real problem the note stays a note: labelled, and not counted.
    bad = _write(tmp_path, {"analyses": [{"name": "n", "signals": [
        {"name": "mem_used_bytes", "kind": "resource", "query": "sum(up"}]}]})
    assert main(["check-config", str(bad)]) == 1
    err = capsys.readouterr().err
    assert f"{bad}: note: analyses[0].signals[0] (mem_used_bytes)" in err
    if "promtool not found" not in err:
        assert "FAILED: 1 problem(s) (and 1 note(s))" in err
