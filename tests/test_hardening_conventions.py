"""Conventions (issue 15): process/python metrics, structured logfmt, info only on state changes."""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import subprocess

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from exporter.cli import JSONFormatter, LogfmtFormatter, split_message
from exporter.config import parse_config
from exporter.pipeline import Pipeline
from tests.arrays import ArraySource

STEP = 60.0


def _pipeline() -> tuple[Pipeline, ArraySource]:
    cfg = parse_config({"analyses": [{"name": "fleet", "window": "30m", "signals": [
        {"name": "cpu", "query": "c", "capacity": 1.0, "kind": "saturation"}]}]})
    ts = STEP * np.arange(30_000, 30_100)
    src = ArraySource([("h0",), ("h1",)], ("cpu",), ts, np.full((2, 1, 100), 0.3))
    return Pipeline(cfg, src, topology_workers=1), src


def test_process_and_python_metrics_are_served():
    pipe, src = _pipeline()
    asyncio.run(pipe.run_cycle(float(src.timestamps[-1])))
    pipe.close()
    body = pipe.snapshot.body.decode()
    names = {f.name for f in text_string_to_metric_families(body)}
    for name in ("process_cpu_seconds", "process_resident_memory_bytes",
                 "process_start_time_seconds", "process_open_fds", "python_info",
                 "python_gc_collections"):
        assert name in names, name
    assert len([n for n in names if n.startswith("aura_")]) > 10
    if shutil.which("promtool"):
        done = subprocess.run(["promtool", "check", "metrics"], input=body.encode(),
                              capture_output=True)
        assert b"error while linting" not in done.stdout + done.stderr


@pytest.mark.parametrize("message, msg, fields", [
    ('msg="persistence pool started" workers=2', "persistence pool started", {"workers": "2"}),
    ("msg=persistence pool started workers=2", "persistence pool started", {"workers": "2"}),
    ("cycle done duration_seconds=0.5 failed_stages=none", "cycle done",
     {"duration_seconds": "0.5", "failed_stages": "none"}),
    ("source query failed analysis=n err='HTTP 500: x=1 y'", "source query failed",
     {"analysis": "n", "err": "HTTP 500: x=1 y"}),
    ("plain text", "plain text", {}),
    # An exception's repr (`err=%r`) is one value: spaces, `=` and brackets inside its
    # brackets and quotes do not end it.
    ("stage failed stage=ingest err=ConnectionError('Cannot connect to host a:9 [refused]') "
     "analysis=n", "stage failed",
     {"stage": "ingest", "err": "ConnectionError('Cannot connect to host a:9 [refused]')",
      "analysis": "n"}),
    ("stage failed stage=x err=ValueError('bad value x=1 in y') analysis=n", "stage failed",
     {"stage": "x", "err": "ValueError('bad value x=1 in y')", "analysis": "n"}),
    ("stage failed stage=ingest analysis=n err=ClientConnectorError(ConnectionKey("
     "host='127.0.0.1', port=9, is_ssl=False), ConnectionRefusedError(111, \"Connect call "
     "failed ('127.0.0.1', 9)\"))", "stage failed",
     {"stage": "ingest", "analysis": "n", "err": "ClientConnectorError(ConnectionKey("
      "host='127.0.0.1', port=9, is_ssl=False), ConnectionRefusedError(111, \"Connect call "
      "failed ('127.0.0.1', 9)\"))"}),
    # Words without `=` after an unquoted value: they are its tail.
    ("stage failed stage=ingest err=timeout after 30s analysis=n", "stage failed",
     {"stage": "ingest", "err": "timeout after 30s", "analysis": "n"}),
])
def test_log_lines_are_flat_logfmt_and_json(message, msg, fields):
    text, pairs = split_message(message)
    assert text == msg
    record = logging.LogRecord("aura.t", logging.INFO, __file__, 1, message, None, None)
    line = LogfmtFormatter().format(record)
    assert "msg=\"msg=" not in line and line.count(" msg=") == 1
    assert f'msg="{msg}"' in line
    doc = json.loads(JSONFormatter().format(record))
    assert doc["msg"] == msg and {k: doc[k] for k in fields} == fields


def test_a_field_named_like_a_fixed_key_is_dropped_in_both_formats():
    record = logging.LogRecord("aura.t", logging.INFO, __file__, 1,
                               "failed err=KeyError('a b') msg=ok level=x", None, None)
    line = LogfmtFormatter().format(record)
    assert line.count(" msg=") == 1 and line.count(" level=") == 1, line
    assert "err=\"KeyError('a b')\"" in line
    doc = json.loads(JSONFormatter().format(record))
    assert doc["msg"] == "failed" and doc["level"] == "info"


def test_log_values_never_span_lines():
    record = logging.LogRecord("aura.t", logging.WARNING, __file__, 1,
                               "failed err=%r", ("line one\nline two",), None)
    assert "\n" not in LogfmtFormatter().format(record)


def test_cycle_done_is_debug_and_info_only_reports_changes(caplog):
    pipe, src = _pipeline()
    with caplog.at_level(logging.DEBUG, logger="aura.pipeline"):
        for k in range(3):
            asyncio.run(pipe.run_cycle(float(src.timestamps[-3 + k])))
    pipe.close()
    done = [r for r in caplog.records if "cycle done" in r.getMessage()]
    assert len(done) == 3 and all(r.levelno == logging.DEBUG for r in done)
    info = [r.getMessage() for r in caplog.records
            if r.levelno >= logging.INFO and r.name == "aura.pipeline"]
    assert len(info) <= 2, info  # one-off events (bootstrap), never one per cycle
