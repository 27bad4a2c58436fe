import subprocess
import sys
from pathlib import Path

import pytest

from exporter.config import (
    ConfigError,
    HttpClientConfig,
    load_config,
    parse_config,
    parse_duration,
)

ROOT = Path(__file__).resolve().parents[1]


def _problems(data) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(data)
    return info.value.problems


def test_durations():
    assert parse_duration("30s") == 30
    assert parse_duration("1h30m") == 5400
    assert parse_duration("500ms") == 0.5
    assert parse_duration("2d") == 172800
    for bad in ("", "5", "5x", "1h 30m", "m5"):
        with pytest.raises(ValueError):
            parse_duration(bad)


def test_example_config_loads_and_documents_every_top_level_key():
    cfg = load_config(ROOT / "aura.example.yml")
    assert cfg.analyses[0].name == "nodes"
    assert {s.name for s in cfg.analyses[0].signals} >= {"memory", "cpu", "disk"}
    text = (ROOT / "aura.example.yml").read_text()
    import dataclasses

    from exporter.config import Config
    for f in dataclasses.fields(Config):
        assert f"{f.name}:" in text, f"aura.example.yml does not document {f.name}"


def test_wrong_type_names_key_path():
    problems = _problems({"analyses": [{"name": "n", "signals": [
        {"name": "a", "query": "up"}, {"name": "b", "query": "up", "capacity": "full"}]}]})
    assert problems == ["analyses[0].signals[1].capacity: expected a number, got 'full'"]
    # A per-entity limit written as a metric name is pointed at the presets' ratio form.
    (problem,) = _problems({"analyses": [{"name": "n", "signals": [
        {"name": "m", "query": "up", "capacity": "node_memory_MemTotal_bytes"}]}]})
    assert problem.startswith("analyses[0].signals[0].capacity: expected a number, got "
                              "'node_memory_MemTotal_bytes'; one number for every entity")
    assert "with capacity 1.0" in problem


def test_unknown_key_and_bad_duration():
    problems = _problems({"interval": "soon", "bogus": 1,
                          "analyses": [{"name": "n", "preset": "node", "windw": "2h"}]})
    assert any(p.startswith("bogus: unknown key") for p in problems)
    assert any(p.startswith("interval: invalid duration 'soon'") for p in problems)
    assert any(p.startswith("analyses[0].windw: unknown key") for p in problems)


def test_source_and_alertmanager_share_http_client_keys_and_errors():
    bad = {"url": "ftp://x", "timeout": 0, "basic_auth": {"username": "u"},
           "authorization": {"credentials_file": "/t"}, "tls_config": {"ca_fil": "/ca"}}
    problems = _problems({"source": bad, "alertmanager": bad,
                          "analyses": [{"name": "n", "preset": "node"}]})
    for section in ("source", "alertmanager"):
        mine = [p for p in problems if p.startswith(section)]
        assert [p.split(":", 1)[0].split(".", 1)[1:] for p in mine] == [
            ["tls_config.ca_fil"], ["url"], ["timeout"], []], mine
    source = [p.removeprefix("source") for p in problems if p.startswith("source")]
    assert source == [p.removeprefix("alertmanager") for p in problems
                      if p.startswith("alertmanager")]
    cfg = parse_config({"source": {"url": "https://p:9090", "tls_config": {"ca_file": "/c"}},
                        "alertmanager": {"url": "https://am:9093", "timeout": "5s"},
                        "analyses": [{"name": "n", "preset": "node"}]})
    assert isinstance(cfg.source, HttpClientConfig) and isinstance(cfg.alertmanager,
                                                                   HttpClientConfig)
    assert (cfg.source.tls_config.ca_file, float(cfg.source.timeout)) == ("/c", 30.0)
    assert cfg.alertmanager is not None and float(cfg.alertmanager.timeout) == 5.0


def test_required_and_ranges():
    problems = _problems({"analyses": [{"signals": [{"name": "x"}], "max_entities": 0,
                                        "step": "1m", "window": "5m"}]})
    assert "analyses[0].name: required key missing" in problems
    assert "analyses[0].signals[0].query: required key missing" in problems
    assert any(p.startswith("analyses[0].max_entities: must be > 0") for p in problems)
    assert any(p.startswith("analyses[0].window: must hold at least 8 steps") for p in problems)


def test_unknown_preset_and_reserved_label():
    problems = _problems({"analyses": [{"name": "n", "preset": "nope",
                                        "entity_labels": ["signal"]}]})
    assert any(p.startswith("analyses[0].preset: unknown preset 'nope'") for p in problems)
    assert any(p.startswith("analyses[0].entity_labels[0]:") for p in problems)


def test_consensus_needs_enough_agents():
    problems = _problems({"analyses": [{"name": "n", "preset": "node"}], "agents": {
        "topology": {"enabled": False}, "network": {"enabled": False},
        "stability": {"enabled": False}, "consensus": {"min_voters": 3}}})
    assert any("min_voters" in p for p in problems)


def test_user_signal_overrides_preset_by_name():
    cfg = parse_config({"analyses": [{"name": "n", "preset": "node", "signals": [
        {"name": "memory", "query": "my_mem", "capacity": 2.0}]}]})
    sig = {s.name: s for s in cfg.analyses[0].signals}
    assert sig["memory"].query == "my_mem" and sig["memory"].capacity == 2.0
    assert "cpu" in sig


def test_check_config_cli(tmp_path):
    bad = tmp_path / "bad.yml"
    bad.write_text("analyses:\n  - name: n\n    preset: node\n    step: fast\n")
    out = subprocess.run([sys.executable, "-m", "exporter", "check-config", str(bad)],
                         capture_output=True, text=True)
    assert out.returncode == 1
    assert "analyses[0].step: invalid duration 'fast'" in out.stderr
    good = subprocess.run([sys.executable, "-m", "exporter", "check-config",
                           str(ROOT / "aura.example.yml")], capture_output=True, text=True)
    assert good.returncode == 0, good.stderr
    assert "SUCCESS" in good.stdout
    flag = subprocess.run([sys.executable, "-m", "exporter", "check-config",
                           f"--config.file={bad}"], capture_output=True, text=True)
    assert flag.returncode == 1 and "invalid duration 'fast'" in flag.stderr
    none = subprocess.run([sys.executable, "-m", "exporter", "check-config"],
                          capture_output=True, text=True)
    assert none.returncode == 2 and "configuration file is required" in none.stderr


def test_queries_optional_only_for_csv_commands():
    data = {"analyses": [{"name": "n", "signals": [{"name": "temp"}]}]}
    assert parse_config(data, require_queries=False).analyses[0].signals[0].name == "temp"
    with pytest.raises(ConfigError, match=r"signals\[0\]\.query: required key missing"):
        parse_config(data)


def test_config_file_that_is_not_utf8_is_a_clear_error(tmp_path):
    """Found by the fuzzer on a clean clone: a lone surrogate written as bytes."""
    path = tmp_path / "aura.yml"
    path.write_bytes(b"interval: 1m\n" + "\ud800".encode("utf-8", "surrogatepass"))
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert "not valid UTF-8" in str(err.value) and str(path) in str(err.value)


def _capacity(value) -> dict:
    return {"analyses": [{"name": "n", "signals": [{"name": "a", "query": "up",
                                                     "capacity": value}]}]}


def test_numeric_strings_are_numbers_but_nan_and_infinities_are_not(tmp_path):
    """PyYAML (YAML 1.1) reads `1e15` as a string; byte capacities are written that way."""
    path = tmp_path / "aura.yml"
    path.write_text("analyses:\n  - name: n\n    max_entities: 1e3\n"
                    "    signals: [{name: a, query: up, capacity: 1e15}]\n")
    cfg = load_config(path)
    assert cfg.analyses[0].signals[0].capacity == 1e15
    assert cfg.analyses[0].max_entities == 1000 and isinstance(cfg.analyses[0].max_entities, int)
    assert parse_config(_capacity(" 2.5 ")).analyses[0].signals[0].capacity == 2.5
    for bad in ("nan", "inf", "-Infinity", "1e400", "0x10", "100%"):
        assert _problems(_capacity(bad)) == [
            f"analyses[0].signals[0].capacity: expected a number, got {bad!r}"]
    for bad in (float("nan"), float("inf")):
        assert _problems(_capacity(bad)) == [
            f"analyses[0].signals[0].capacity: expected a finite number, got {bad!r}"]
    assert _problems({"analyses": [{"name": "n", "preset": "node", "max_entities": "5e2.5"}]}) \
        == ["analyses[0].max_entities: expected an integer, got '5e2.5'"]


def test_invalid_yaml_is_one_line_naming_the_file_once(tmp_path):
    bad = tmp_path / "bad_indent.yml"
    bad.write_text("interval: 1m\nanalyses:\n  - name: h\n    signals:\n      - name: cpu\n"
                   "      query: cpu\n")
    with pytest.raises(ConfigError) as err:
        load_config(bad)
    assert err.value.problems == [
        "invalid YAML at line 6, column 7: expected <block end>, but found '?' "
        "(while parsing a block collection at line 5, column 7)"]
    assert str(err.value) == f"{bad}: {err.value.problems[0]}"
    out = subprocess.run([sys.executable, "-m", "exporter", "check-config", str(bad)],
                         capture_output=True, text=True)
    assert out.returncode == 1
    assert out.stderr.splitlines()[0] == f"{bad}: {err.value.problems[0]}"
    assert out.stderr.count(str(bad)) == 1 and "<unicode string>" not in out.stderr
    bad.write_text("interval: 1m\x00\n")
    with pytest.raises(ConfigError, match=r"^\S+: invalid YAML at line 1, column 13: "):
        load_config(bad)


def test_bare_number_durations_are_refused_with_the_fix():
    """Durations are Prometheus durations (design.md section 3, aura.example.yml): is
    `failure_risk_for: 15` seconds or minutes? Only 0 needs no unit, as in Prometheus."""
    assert _problems({"rules": {"failure_risk_for": 15}}) == [
        "rules.failure_risk_for: 15 has no unit; use a unit, e.g. 15s or 15m"]
    assert sorted(_problems({"interval": 1.5, "analyses": [{"name": "n", "preset": "node",
                                                             "horizons": ["1h", 7200]}]})) == [
        "analyses[0].horizons[1]: 7200 has no unit; use a unit, e.g. 7200s or 7200m",
        "interval: 1.5 has no unit; use a unit, e.g. 15s or 15m"]
    cfg = parse_config({"rules": {"failure_risk_for": "15m"},
                        "agents": {"decision": {"exclude_recent": 0}}})
    assert float(cfg.rules.failure_risk_for) == 900 and float(cfg.agents.decision.exclude_recent) == 0
