"""Incident feedback: Alertmanager webhook payloads -> incidents.csv (design §5 format)."""

from __future__ import annotations

import asyncio
import calendar
import csv
import json
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from exporter.config import IncidentsConfig
from exporter.incident_recorder import (
    CSV_NAME,
    INDEX_NAME,
    IncidentPayloadError,
    IncidentPayloadTooLarge,
    IncidentRecorder,
    RecordResult,
    make_handler,
)
from exporter.incidents import Incident
from exporter.util import parse_rfc3339

LABELS = {"nodes": ("instance",)}
START = "2026-11-20T10:00:00.123456789Z"
END = "2026-11-20T10:42:30Z"
T0 = calendar.timegm((2026, 11, 20, 10, 0, 0))  # START without its fraction


def alert(
    name: str = "NodeDown",
    *,
    status: str = "firing",
    instance: str | None = "n1:9100",
    fingerprint: str = "a1b2c3",
    starts: str = START,
    ends: str = "0001-01-01T00:00:00Z",
    **extra: str,
) -> dict[str, Any]:
    labels = {"alertname": name, "job": "node", **extra}
    if instance is not None:
        labels["instance"] = instance
    return {
        "status": status,
        "labels": labels,
        "annotations": {"summary": "down"},
        "startsAt": starts,
        "endsAt": ends,
        "generatorURL": "http://prometheus/graph",
        "fingerprint": fingerprint,
    }


def payload(*alerts: dict[str, Any], version: str = "4") -> bytes:
    return json.dumps(
        {
            "version": version,
            "groupKey": '{}:{alertname="NodeDown"}',
            "truncatedAlerts": 0,
            "status": alerts[0]["status"] if alerts else "firing",
            "receiver": "aura-incidents",
            "groupLabels": {},
            "commonLabels": {},
            "commonAnnotations": {},
            "externalURL": "http://alertmanager",
            "alerts": list(alerts),
        }
    ).encode()


def rows(state: Path) -> tuple[list[str] | None, list[dict[str, str]]]:
    with (state / CSV_NAME).open(newline="") as f:
        reader = csv.DictReader(f)
        return reader.fieldnames, list(reader)


def recorder(state: Path, **cfg: Any) -> IncidentRecorder:
    return IncidentRecorder(state, IncidentsConfig(**cfg), LABELS)


def test_parse_time_handles_go_nanoseconds_and_offsets() -> None:
    assert parse_rfc3339("2026-11-20T10:00:00Z") == T0
    assert parse_rfc3339(START) == pytest.approx(T0 + 0.123456789, abs=1e-6)
    assert parse_rfc3339("2026-11-20T11:00:00+01:00") == T0
    with pytest.raises(ValueError):
        parse_rfc3339("yesterday")


def test_one_incident_type_from_the_csv_the_simulator_and_alertmanager(tmp_path: Path) -> None:
    from exporter.backtest_report import scored_incidents
    from exporter.source.csvfile import read_incidents
    from exporter.source.simulator import simulate_fleet

    rec = recorder(tmp_path)
    rec.record(payload(alert(status="resolved", ends=END)))
    from_csv = read_incidents(tmp_path / CSV_NAME, ("instance",))
    assert from_csv == [Incident(T0 + 0.123, T0 + 2550.0, ("n1:9100",), "NodeDown")]
    fleet = simulate_fleet(3, 6, T0, 2 * 86400.0, 300.0, failure_fraction=0.5)
    assert fleet.incidents and all(type(i) is Incident for i in fleet.incidents)
    assert {i.entity[0] for i in fleet.incidents} <= set(fleet.instances)
    # Sudden: flagged without precursor, or a kind that says so; scoring keeps the type.
    assert [Incident(0, None, ("a",), k, p).sudden for k, p in
            (("oom", True), ("oom", False), ("Sudden_crash", True))] == [False, True, True]
    scored = scored_incidents([Incident(1, 2, ["a"], "")])  # type: ignore[arg-type]
    assert scored == [Incident(1.0, 2.0, ("a",), "unknown")]


def test_firing_then_resolved_writes_design_format(tmp_path: Path) -> None:
    rec = recorder(tmp_path)
    assert rec.record(payload(alert())) == RecordResult(1, 1, 0, 0)
    header, body = rows(tmp_path)
    assert header == ["start", "end", "instance", "kind"]
    assert body == [{"start": f"{T0}.123", "end": "", "instance": "n1:9100", "kind": "NodeDown"}]

    result = rec.record(payload(alert(status="resolved", ends=END)))
    assert result == RecordResult(1, 0, 1, 0)
    _, body = rows(tmp_path)
    assert len(body) == 1
    assert float(body[0]["end"]) == T0 + 42 * 60 + 30


def test_same_payload_twice_records_once_across_restarts(tmp_path: Path) -> None:
    body = payload(alert(), alert(fingerprint="ffff", instance="n2:9100"))
    assert recorder(tmp_path).record(body).recorded == 2
    assert recorder(tmp_path).record(body) == RecordResult(2, 0, 0, 2)
    # Without the index the CSV itself still dedupes.
    (tmp_path / INDEX_NAME).unlink()
    assert recorder(tmp_path).record(body).recorded == 0
    _, got = rows(tmp_path)
    assert sorted(r["instance"] for r in got) == ["n1:9100", "n2:9100"]


def test_new_start_of_same_alert_is_a_new_incident(tmp_path: Path) -> None:
    rec = recorder(tmp_path)
    rec.record(payload(alert()))
    rec.record(payload(alert(starts="2026-11-21T08:00:00Z")))
    _, got = rows(tmp_path)
    assert [r["start"] for r in got] == [f"{T0}.123", str(T0 + 22 * 3600)]


def test_resolved_without_firing_records_start_and_end(tmp_path: Path) -> None:
    recorder(tmp_path).record(payload(alert(status="resolved", ends=END)))
    _, got = rows(tmp_path)
    assert got[0]["end"] != "" and float(got[0]["end"]) > float(got[0]["start"])


def test_untracked_names_and_alerts_without_entity_labels_are_ignored(tmp_path: Path) -> None:
    rec = recorder(tmp_path, alertnames=("NodeDown", "KubePodCrashLooping"))
    result = rec.record(payload(alert("HighLatency"), alert(instance=None), alert()))
    assert result == RecordResult(3, 1, 0, 2)
    _, got = rows(tmp_path)
    assert len(got) == 1


def test_columns_are_the_union_of_entity_labels(tmp_path: Path) -> None:
    rec = IncidentRecorder(
        tmp_path, IncidentsConfig(), {"nodes": ("instance",), "pods": ("namespace", "pod")}
    )
    rec.record(payload(alert("KubePodCrashLooping", instance=None, namespace="shop", pod="web-1")))
    header, got = rows(tmp_path)
    assert header == ["start", "end", "instance", "namespace", "pod", "kind"]
    assert got[0]["pod"] == "web-1" and got[0]["instance"] == ""


@pytest.mark.parametrize(
    ("body", "where"),
    [
        (b"{not json", "not JSON"),
        (b"[]", "JSON object"),
        (payload(alert(), version="3"), "version"),
        (json.dumps({"version": "4", "alerts": {}}).encode(), "alerts"),
        (payload({**alert(), "labels": {"alertname": 3}}), "alerts[0].labels"),
        (payload({**alert(), "status": "pending"}), "alerts[0].status"),
        (payload({**alert(), "fingerprint": ""}), "alerts[0].fingerprint"),
        (payload(alert(), {**alert(), "startsAt": "soon"}), "alerts[1].startsAt"),
        (payload({k: v for k, v in alert().items() if k != "endsAt"}), "alerts[0].endsAt"),
        (payload(alert(status="resolved", ends="2020-01-01T00:00:00Z")), "before startsAt"),
    ],
)
def test_malformed_payloads_raise_and_change_nothing(
    tmp_path: Path, body: bytes, where: str
) -> None:
    rec = recorder(tmp_path)
    rec.record(payload(alert()))
    before = (tmp_path / CSV_NAME).read_bytes()
    with pytest.raises(IncidentPayloadError, match=where.replace("[", r"\[").replace("]", r"\]")):
        rec.record(body)
    assert (tmp_path / CSV_NAME).read_bytes() == before


def test_oversized_payload_is_refused(tmp_path: Path) -> None:
    rec = recorder(tmp_path, max_payload_bytes=200)
    with pytest.raises(IncidentPayloadTooLarge):
        rec.record(payload(alert()))
    assert not (tmp_path / CSV_NAME).exists()


# --- HTTP handler on a real aiohttp server bound to 127.0.0.1 -------------------------------


async def _exchange(
    state: Path,
    requests: list[tuple[str, dict[str, Any]]],
    limit: int = 4096,
) -> tuple[list[tuple[int, Any]], list[RecordResult]]:
    seen: list[RecordResult] = []
    rec = recorder(state, max_payload_bytes=limit)
    app = web.Application()
    app.router.add_route("*", "/api/v1/alerts", make_handler(rec, seen.append))
    async with TestClient(TestServer(app, host="127.0.0.1", port=0)) as client:
        out = []
        for method, kw in requests:
            resp = await client.request(method, "/api/v1/alerts", **kw)
            out.append((resp.status, await resp.json()))
    return out, seen


def test_handler_records_once_and_reports_counts(tmp_path: Path) -> None:
    body = payload(alert())
    out, seen = asyncio.run(_exchange(tmp_path, [("POST", {"data": body})] * 2))
    assert [status for status, _ in out] == [200, 200]
    assert out[0][1]["recorded"] == 1 and out[1][1]["recorded"] == 0
    assert [r.recorded for r in seen] == [1, 0]
    _, got = rows(tmp_path)
    assert len(got) == 1


async def _chunks(data: bytes):  # type: ignore[no-untyped-def]
    for i in range(0, len(data), 1000):
        yield data[i : i + 1000]


def test_handler_rejects_bad_requests_without_touching_the_file(tmp_path: Path) -> None:
    asyncio.run(_exchange(tmp_path, [("POST", {"data": payload(alert())})]))
    before = (tmp_path / CSV_NAME).read_bytes()
    big = payload(alert(), *[alert(fingerprint=f"f{i}", instance=f"n{i}") for i in range(60)])
    assert len(big) > 4096
    out, seen = asyncio.run(
        _exchange(
            tmp_path,
            [
                ("POST", {"data": b"{garbage"}),
                ("POST", {"data": payload(alert(), version="2")}),
                ("POST", {"data": big}),  # Content-Length says too large
                ("POST", {"data": _chunks(big)}),  # chunked: no Content-Length to trust
                ("GET", {}),
                ("PUT", {"data": payload(alert())}),
            ],
        )
    )
    assert [status for status, _ in out] == [400, 400, 413, 413, 405, 405]
    assert all(doc["status"] == "error" and doc["error"] for _, doc in out)
    assert "version" in out[1][1]["error"]
    assert seen == []
    assert (tmp_path / CSV_NAME).read_bytes() == before
