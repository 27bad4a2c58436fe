"""The Alertmanager webhook recorder: real incidents appended to `<state_dir>/incidents.csv`.

Alertmanager POSTs its webhook payload (version "4") to `/api/v1/alerts`. Alerts whose
`alertname` is in `incidents.alertnames` (NodeDown, KubePodCrashLooping, ...) and which carry the
entity labels of some analysis become rows of `<state_dir>/incidents.csv` in the design's
incidents format: `start,end,<entity label columns>,kind` (Unix seconds; `end` empty while the
alert fires; `kind` = alertname). A resolved notification fills in `end`. Each row is an
`exporter.incidents.Incident`.

Alertmanager re-sends firing alerts every `repeat_interval` and retries failed deliveries, so
recording is idempotent: an alert is identified by (fingerprint, startsAt), kept in
`incidents.index.json`; when the index is lost the CSV itself dedupes by (kind, entity, start).
The CSV is small (incidents are rare), so every change rewrites it atomically.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import threading
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from exporter.config import IncidentsConfig
from exporter.incidents import Incident
from exporter.util import atomic_write, parse_rfc3339

log = logging.getLogger(__name__)

CSV_NAME = "incidents.csv"
INDEX_NAME = "incidents.index.json"


class IncidentPayloadError(ValueError):
    """The webhook payload is not a valid Alertmanager v4 payload; `str()` says where."""


class IncidentStoreError(Exception):
    """The payload was valid but the incidents file could not be written (state dir)."""


class IncidentPayloadTooLarge(IncidentPayloadError):
    """The payload exceeds incidents.max_payload_bytes."""


@dataclass(frozen=True)
class RecordResult:
    """What one payload did: new incidents, ends filled in, alerts not recorded."""

    received: int
    recorded: int
    resolved: int
    ignored: int
    # (labels, start, end|None) of each incident recorded or resolved by this payload.
    incidents: tuple[tuple[dict[str, str], float, float | None], ...] = field(
        default=(), compare=False)


def _fmt(ts: float | None) -> str:
    if ts is None:
        return ""
    return f"{ts:.3f}".rstrip("0").rstrip(".")


def _natural_key(row: Incident) -> tuple[Any, ...]:
    """What identifies a recorded incident once the fingerprint index is lost."""
    return (row.kind, row.entity, round(row.start, 3))


class IncidentRecorder:
    """Validate Alertmanager webhook payloads and append real incidents to the incidents CSV.

    Parameters
    ----------
    state_dir:
        Directory of `incidents.csv` and its index (created when missing).
    cfg:
        Which alert names count as incidents, and the payload size limit.
    label_names_by_analysis:
        Entity labels per analysis. The CSV's label columns are their union, in first-seen
        order; an alert is recorded when it carries every entity label of some analysis.
    """

    def __init__(
        self,
        state_dir: Path,
        cfg: IncidentsConfig,
        label_names_by_analysis: Mapping[str, tuple[str, ...]],
    ):
        self.state_dir = Path(state_dir)
        self.cfg = cfg
        columns: list[str] = []
        for labels in label_names_by_analysis.values():
            columns.extend(label for label in labels if label not in columns)
        self.columns: tuple[str, ...] = tuple(columns) or ("instance",)
        self._label_sets = [tuple(v) for v in label_names_by_analysis.values()] or [self.columns]
        self._alertnames = frozenset(cfg.alertnames)
        self._lock = threading.Lock()
        self._rows: list[Incident] = []
        self._index: dict[str, int] = {}
        self._load()

    @property
    def csv_path(self) -> Path:
        """`<state_dir>/incidents.csv`, the recorded incidents (design §5 incidents format)."""
        return self.state_dir / CSV_NAME

    @property
    def index_path(self) -> Path:
        """The JSON index beside the CSV: each alert's key -> its CSV row (a resolve fills its `end`)."""
        return self.state_dir / INDEX_NAME

    @property
    def header(self) -> list[str]:
        """CSV columns: `start,end,<entity label columns>,kind`."""
        return ["start", "end", *self.columns, "kind"]

    @property
    def max_payload_bytes(self) -> int:
        """Largest webhook body accepted (bytes, `incidents.max_payload_bytes`); larger gets 413."""
        return self.cfg.max_payload_bytes

    # -- persistence ---------------------------------------------------------------------------

    def _load(self) -> None:
        if self.csv_path.exists():
            with self.csv_path.open(newline="") as f:
                reader = csv.DictReader(f)
                if reader.fieldnames != self.header:
                    # Another label set wrote this file: keep it, start a fresh one beside it.
                    backup = self.csv_path.with_suffix(".csv.old")
                    log.warning(
                        "incidents header changed path=%s moved_to=%s", self.csv_path, backup
                    )
                    f.close()
                    self.csv_path.replace(backup)
                    self.index_path.unlink(missing_ok=True)
                    return
                for rec in reader:
                    self._rows.append(
                        Incident(
                            float(rec["start"]),
                            float(rec["end"]) if rec["end"] else None,
                            tuple(rec[c] or "" for c in self.columns),
                            rec["kind"],
                        )
                    )
        if self.index_path.exists():
            try:
                index = json.loads(self.index_path.read_text())
                self._index = {
                    str(k): int(v) for k, v in index.items() if 0 <= int(v) < len(self._rows)
                }
            except (ValueError, AttributeError, TypeError):
                log.warning("incidents index unreadable, rebuilt from csv path=%s", self.index_path)
                self._index = {}

    def _save(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(self.header)
        for r in sorted(self._rows, key=lambda r: (r.start, r.kind, r.entity)):
            writer.writerow([_fmt(r.start), _fmt(r.end), *r.entity, r.kind])
        # Sorting changes row numbers: recompute the index against the sorted order.
        order = sorted(
            range(len(self._rows)),
            key=lambda i: (self._rows[i].start, self._rows[i].kind, self._rows[i].entity),
        )
        position = {old: new for new, old in enumerate(order)}
        self._rows = [self._rows[i] for i in order]
        self._index = {k: position[v] for k, v in self._index.items()}
        atomic_write(self.csv_path, buf.getvalue())
        atomic_write(self.index_path, json.dumps(self._index, sort_keys=True))

    # -- recording -----------------------------------------------------------------------------

    def record(self, payload: bytes) -> RecordResult:
        """Validate one webhook payload and record its incidents; raise IncidentPayloadError."""
        if len(payload) > self.cfg.max_payload_bytes:
            raise IncidentPayloadTooLarge(
                f"payload of {len(payload)} bytes exceeds max_payload_bytes "
                f"({self.cfg.max_payload_bytes})"
            )
        alerts = _validate(payload)
        recorded = resolved = ignored = 0
        touched: list[int] = []
        with self._lock:
            by_natural = {_natural_key(r): i for i, r in enumerate(self._rows)}
            changed = False
            for alert in alerts:
                labels: dict[str, str] = alert["labels"]
                kind = labels["alertname"]
                if kind not in self._alertnames or not any(
                    all(labels.get(n) for n in names) for names in self._label_sets
                ):
                    ignored += 1
                    continue
                start = alert["_start"]
                end = alert["_end"] if alert["status"] == "resolved" else None
                row = Incident(start, end, tuple(labels.get(c, "") for c in self.columns), kind)
                key = f"{alert['fingerprint']}|{alert['startsAt']}"
                at = self._index.get(key, by_natural.get(_natural_key(row)))
                if at is None:
                    self._rows.append(row)
                    at = len(self._rows) - 1
                    by_natural[_natural_key(row)] = at
                    recorded += 1
                    changed = True
                    touched.append(at)
                elif end is not None and self._rows[at].end is None:
                    self._rows[at] = replace(self._rows[at], end=end)
                    resolved += 1
                    changed = True
                    touched.append(at)
                else:
                    ignored += 1
                if self._index.get(key) != at:
                    self._index[key] = at
                    changed = True
            if changed:
                try:
                    self._save()
                except OSError as err:
                    # Kept in memory and written with the next payload; Alertmanager retries
                    # a 5xx, and duplicates are recognised by fingerprint and start.
                    raise IncidentStoreError(f"cannot write {self.csv_path}: "
                                             f"{err.strerror or err}") from err
        if recorded or resolved:
            log.info("incidents recorded=%d resolved=%d ignored=%d", recorded, resolved, ignored)
        spans = tuple((dict(zip(self.columns, self._rows[i].entity, strict=True)),
                       self._rows[i].start, self._rows[i].end) for i in touched)
        return RecordResult(len(alerts), recorded, resolved, ignored, spans)


def _is_text(value: str) -> bool:
    """False for strings holding lone surrogates (JSON escapes them; UTF-8 cannot hold them)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _validate(payload: bytes) -> list[dict[str, Any]]:
    """The payload's alerts, each with parsed `_start`/`_end`; raise IncidentPayloadError."""
    try:
        doc = json.loads(payload)
    except (UnicodeDecodeError, ValueError) as err:
        raise IncidentPayloadError(f"payload is not JSON: {err}") from err
    if not isinstance(doc, dict):
        raise IncidentPayloadError("payload: expected a JSON object")
    if doc.get("version") != "4":
        raise IncidentPayloadError(
            f'version: expected "4" (Alertmanager webhook), got {doc.get("version")!r}'
        )
    alerts = doc.get("alerts")
    if not isinstance(alerts, list):
        raise IncidentPayloadError("alerts: expected a list")
    out = []
    for i, alert in enumerate(alerts):
        where = f"alerts[{i}]"
        if not isinstance(alert, dict):
            raise IncidentPayloadError(f"{where}: expected an object")
        labels = alert.get("labels")
        if not isinstance(labels, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in labels.items()
        ):
            raise IncidentPayloadError(f"{where}.labels: expected an object of strings")
        bad = next((k for k, v in labels.items() if not _is_text(k) or not _is_text(v)), None)
        if bad is not None:
            raise IncidentPayloadError(f"{where}.labels.{bad!a}: not valid Unicode text")
        if not labels.get("alertname"):
            raise IncidentPayloadError(f"{where}.labels.alertname: missing")
        if alert.get("status") not in ("firing", "resolved"):
            raise IncidentPayloadError(
                f"{where}.status: expected firing or resolved, got {alert.get('status')!r}"
            )
        fingerprint = alert.get("fingerprint")
        if not isinstance(fingerprint, str) or not fingerprint:
            raise IncidentPayloadError(f"{where}.fingerprint: expected a non-empty string")
        times = {}
        for key in ("startsAt", "endsAt"):
            value = alert.get(key)
            if not isinstance(value, str):
                raise IncidentPayloadError(f"{where}.{key}: expected an RFC 3339 string")
            try:
                times[key] = parse_rfc3339(value)
            except ValueError as err:
                raise IncidentPayloadError(f"{where}.{key}: {err}") from err
        if alert["status"] == "resolved" and times["endsAt"] < times["startsAt"]:
            raise IncidentPayloadError(f"{where}.endsAt: before startsAt")
        out.append({**alert, "_start": times["startsAt"], "_end": times["endsAt"]})
    return out


def make_handler(
    recorder: IncidentRecorder,
    metrics_callback: Callable[[RecordResult], None] | None = None,
) -> Callable[[Any], Awaitable[Any]]:
    """An aiohttp handler for `POST /api/v1/alerts` (authentication is the server's job).

    200 `{"status": "success", "recorded": n, ...}`; 400 malformed; 405 not POST; 413 too large.
    `metrics_callback(result)` runs after each accepted payload (e.g. to count incidents).
    """
    from aiohttp import web

    limit = recorder.max_payload_bytes

    def error(status: int, message: str) -> web.Response:
        return web.json_response({"status": "error", "error": message}, status=status)

    async def handle(request: web.Request) -> web.StreamResponse:
        if request.method != "POST":
            resp = error(405, f"method {request.method} not allowed; POST an Alertmanager webhook")
            resp.headers["Allow"] = "POST"
            return resp
        if request.content_length is not None and request.content_length > limit:
            return error(413, f"payload exceeds {limit} bytes")
        # Read at most limit + 1 bytes: enough to know it is too large, never more.
        chunks, size = [], 0
        while size <= limit:
            chunk = await request.content.read(limit + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > limit:
            return error(413, f"payload exceeds {limit} bytes")
        try:
            # Tiny synchronous file writes (incidents are rare): not worth an executor hop.
            result = recorder.record(b"".join(chunks))
        except IncidentPayloadTooLarge as err:
            return error(413, str(err))
        except IncidentPayloadError as err:
            return error(400, str(err))
        except IncidentStoreError as err:
            log.error("msg=\"incident not saved\" err=%r", str(err))
            return error(503, str(err))
        if metrics_callback is not None:
            metrics_callback(result)
        return web.json_response(
            {
                "status": "success",
                "received": result.received,
                "recorded": result.recorded,
                "resolved": result.resolved,
                "ignored": result.ignored,
            }
        )

    return handle
