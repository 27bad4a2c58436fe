"""Property-based fuzzing (hypothesis) of every parser of outside input.

Any input gives a result or the parser's own clear error (ConfigError, IncidentPayloadError,
CsvFormatError, QueryError) naming the problem, never another exception. Inputs are arbitrary
values plus mutations of a valid document (so the fuzzing reaches deep into each parser).

The number of examples per test is `AURA_FUZZ_EXAMPLES` (default 200); run with
`--hypothesis-show-statistics` to see the counts.
"""

from __future__ import annotations

import json
import os
import string
import tempfile
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from exporter.config import Config, ConfigError, IncidentsConfig, load_config, parse_config
from exporter.incident_recorder import IncidentPayloadError, IncidentRecorder, RecordResult
from exporter.source.csvfile import CsvFormatError, CsvSource
from exporter.source.prometheus import Decoded, QueryError, decode_query_range
from exporter.webconfig import WebConfig, load_web_config

EXAMPLES = int(os.environ.get("AURA_FUZZ_EXAMPLES", "200"))
# The suite (and CI) replays the same examples every run, so a red build always means a change
# broke something; AURA_FUZZ_RANDOM=1 explores new ones (how the bugs fixed so far were found).
RANDOM = os.environ.get("AURA_FUZZ_RANDOM", "") not in ("", "0")
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=not RANDOM,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

# Text that includes the troublemakers: quotes, braces, U+00FF, BOM, lone surrogates, controls.
text = st.text(alphabet=st.one_of(st.characters(), st.sampled_from(
    list('"{}[],:=\\\n\r\t ÿ\ufeff\udca0') + list(string.ascii_letters))), max_size=20)
scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**12, 10**12),
                    st.floats(allow_nan=True, allow_infinity=True), text)
json_values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(text, inner, max_size=4)), max_leaves=12)


def _mutate(draw: st.DrawFn, doc: Any, depth: int = 0) -> Any:
    """Replace, drop or keep each part of a valid document at random."""
    choice = draw(st.integers(0, 9))
    if choice == 0 and depth:
        return draw(json_values)
    if isinstance(doc, dict):
        out = {}
        for k, v in doc.items():
            if draw(st.integers(0, 9)) == 0:
                continue  # drop the key
            out[k] = _mutate(draw, v, depth + 1)
        if draw(st.integers(0, 9)) == 0:
            out[draw(text)] = draw(json_values)  # an unknown key
        return out
    if isinstance(doc, list):
        return [_mutate(draw, v, depth + 1) for v in doc if draw(st.integers(0, 9))]
    if choice == 1:
        return draw(scalars)
    return doc


# ------------------------------------------------------------------------- config loader

VALID_CONFIG = {
    "source": {"url": "http://127.0.0.1:9090", "timeout": "30s",
               "basic_auth": {"username": "u", "password_file": "/etc/pw"},
               "tls_config": {"insecure_skip_verify": False}},
    "interval": "1m", "state_dir": "/var/lib/aura",
    "analyses": [{"name": "nodes", "preset": "node", "entity_labels": ["instance"],
                  "window": "2h", "step": "1m", "horizons": ["1h", "2h", "4h"],
                  "max_entities": 5000,
                  "signals": [{"name": "memory", "query": "up", "capacity": 1.0,
                               "kind": "resource"}]}],
    "agents": {"topology": {"enabled": True, "weight": 1.0}},
    "exposition": {"detail": "summary", "top_k_details": 50},
    "rules": {"selector": 'job="aura",cluster=~"prod-[0-9]{2}"', "stalled_intervals": 3},
    "model": {"path": "models/default"},
}


@st.composite
def config_docs(draw: st.DrawFn) -> Any:
    return _mutate(draw, VALID_CONFIG) if draw(st.booleans()) else draw(json_values)


@FUZZ
@given(config_docs())
def test_fuzz_config_loader(doc):
    try:
        assert isinstance(parse_config(doc), Config)
    except ConfigError as err:
        assert err.problems and all(isinstance(p, str) and p for p in err.problems)


@FUZZ
@given(st.one_of(text, st.binary(max_size=200).map(lambda b: b.decode("latin-1")),
                 config_docs().map(lambda d: yaml.safe_dump(d, allow_unicode=True))))
def test_fuzz_config_file(content):
    _load_yaml_file(content, load_config, Config)


def _load_yaml_file(content: str, loader: Any, kind: type) -> None:
    """Write `content` to a file and load it: a `kind` or a ConfigError naming the file."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "file.yml"
        path.write_bytes(content.encode("utf-8", "surrogatepass"))
        try:
            assert isinstance(loader(path), kind)
        except ConfigError as err:
            assert err.problems and all(isinstance(p, str) and p for p in err.problems)


# ------------------------------------------------------------------------------ webhook

VALID_ALERT = {"status": "firing", "labels": {"alertname": "NodeDown", "instance": "n1:9100"},
               "annotations": {}, "startsAt": "2026-11-30T05:00:00.123456789Z",
               "endsAt": "0001-01-01T00:00:00Z", "fingerprint": "abc123"}
VALID_WEBHOOK = {"version": "4", "status": "firing", "receiver": "aura",
                 "groupLabels": {}, "commonLabels": {}, "alerts": [VALID_ALERT, {
                     **VALID_ALERT, "status": "resolved", "fingerprint": "def",
                     "endsAt": "2026-11-30T07:00:00+01:00"}]}


@st.composite
def webhook_bodies(draw: st.DrawFn) -> bytes:
    kind = draw(st.integers(0, 2))
    if kind == 0:
        return draw(st.binary(max_size=300))
    doc = _mutate(draw, VALID_WEBHOOK) if kind == 1 else draw(json_values)
    return json.dumps(doc).encode()  # ensure_ascii: lone surrogates travel as escapes


@FUZZ
@given(webhook_bodies())
@example(json.dumps({**VALID_WEBHOOK, "alerts": [
    {**VALID_ALERT, "labels": {"alertname": "NodeDown", "instance": "h\udca0"}}]}).encode())
def test_fuzz_webhook(body):
    with tempfile.TemporaryDirectory() as tmp:
        recorder = IncidentRecorder(Path(tmp), IncidentsConfig(max_payload_bytes=4096),
                                    {"nodes": ("instance",)})
        try:
            result = recorder.record(body)
        except IncidentPayloadError as err:
            assert str(err)
            return
        assert isinstance(result, RecordResult)
        # Whatever was recorded reads back (the incidents CSV stays valid for backtest/train).
        again = IncidentRecorder(Path(tmp), IncidentsConfig(), {"nodes": ("instance",)})
        assert len(again._rows) == len(recorder._rows)


# ---------------------------------------------------------------------------- CSV reader

NODES = parse_config({"analyses": [{"name": "nodes", "signals": [
    {"name": "cpu", "query": "c"}, {"name": "memory", "query": "m"}]}]}).analyses[0]
cells = st.one_of(st.sampled_from(["", "0.5", "1e-3", "NaN", "+Inf", "-1", "1795996800",
                                   "2026-11-30T05:00:00Z", "x", "h:9100", "l-haÿ"]), text)


@st.composite
def csv_files(draw: st.DrawFn) -> bytes:
    header = draw(st.one_of(st.just(["timestamp", "instance", "cpu", "memory"]),
                            st.permutations(["timestamp", "instance", "cpu", "memory"]),
                            st.lists(cells, max_size=5)))
    rows = draw(st.lists(st.lists(cells, min_size=0, max_size=len(header) + 1), max_size=8))
    if draw(st.booleans()):  # mostly well-formed rows with valid numbers
        rows += [[str(1795996800 + 60 * k), f"h{k % 2}", str(k / 10), "0.5"][:len(header)]
                 for k in range(draw(st.integers(0, 6)))]
    eol = draw(st.sampled_from(["\n", "\r\n"]))
    body = eol.join(",".join(r) for r in [header, *rows]) + eol
    data = body.encode("utf-8", "surrogatepass")
    return (b"\xef\xbb\xbf" + data) if draw(st.booleans()) else data


@FUZZ
@given(st.one_of(csv_files(), st.binary(max_size=200)))
def test_fuzz_csv_reader(content):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "data.csv"
        path.write_bytes(content)
        try:
            src = CsvSource(path, NODES)
        except CsvFormatError as err:
            assert str(err).startswith(str(path))
            return
        assert src.values.shape[:2] == (len(src.entities), 2)


# -------------------------------------------------------------------- query_range decoder

VALID_BODY = {"status": "success", "warnings": ["partial"], "data": {
    "resultType": "matrix", "result": [
        {"metric": {"instance": "n1:9100", "job": "node"},
         "values": [[1700000040, "0.25"], [1700000100, "NaN"], [1700000160, "+Inf"]]},
        {"metric": {"job": "x"}, "values": []},
        {"metric": {"instance": "n2"}, "histograms": [[1700000040, {"count": "1"}]]}]}}


@st.composite
def query_bodies(draw: st.DrawFn) -> bytes:
    kind = draw(st.integers(0, 3))
    if kind == 0:
        return draw(st.binary(max_size=300))
    if kind == 1:  # byte-level damage to a valid body (truncation, splices)
        raw = json.dumps(VALID_BODY).encode()
        cut = draw(st.integers(0, len(raw)))
        return raw[:cut] + draw(st.binary(max_size=10)) + raw[cut + draw(st.integers(0, 5)):]
    doc = _mutate(draw, VALID_BODY) if kind == 2 else draw(json_values)
    compact = draw(st.booleans())
    return json.dumps(doc, separators=(",", ":") if compact else None,
                      allow_nan=True).encode()


@FUZZ
@given(query_bodies())
@example(b'{"status": "success", "warnings": true, "data": {"resultType": "matrix", '
         b'"result": []}}')  # found by AURA_FUZZ_RANDOM=1: warnings not a list
def test_fuzz_query_range_decoder(body):
    try:
        dec = decode_query_range(body, ["instance"])
    except QueryError as err:
        assert str(err)
        return
    assert isinstance(dec, Decoded)
    assert len(dec.keys) == len(dec.counts) and int(dec.counts.sum()) == len(dec.values)
    assert len(dec.timestamps) == len(dec.values)
    for key in dec.keys:  # every key kept is exportable text
        assert key is None or "".join(key).encode("utf-8")


# ----------------------------------------------------------------------------- web config

VALID_WEB = {"tls_server_config": {"cert_file": "c.pem", "key_file": "k.pem",
                                   "client_auth_type": "RequireAndVerifyClientCert",
                                   "client_ca_file": "ca.pem", "min_version": "TLS12",
                                   "max_version": "TLS13"},
             "http_server_config": {"headers": {"X-Frame-Options": "deny"}, "http2": False},
             "basic_auth_users": {"alice": "$2b$04$" + "a" * 53}}


@st.composite
def _web_docs(draw: st.DrawFn) -> Any:
    return _mutate(draw, VALID_WEB)


def _dump(doc: Any) -> str:
    return yaml.safe_dump(doc, allow_unicode=True)


@FUZZ
@given(st.one_of(text, json_values.map(_dump), _web_docs().map(_dump)))
def test_fuzz_web_config(content):
    _load_yaml_file(content, load_web_config, WebConfig)
