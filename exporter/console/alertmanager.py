"""Live alerts and silences of the configured Alertmanager, for AURA's alert names.

Reads Alertmanager's API v2 (`GET /api/v2/alerts`, `GET /api/v2/silences`) with the
`alertmanager:` section's auth and TLS (verification on unless skipped), keeps the alerts whose
`alertname` is one of AURA's generated alerts and the silences (not expired) with an
`alertname` matcher that selects one of them, and links each alert to Alertmanager's UI form
that silences it (`#/silences/new?filter={...}`). A failure (connection, timeout, HTTP status,
bad JSON) becomes an `error` string in the answer, logged once when it first appears; the
answer is cached for `CACHE_SECONDS` so many open consoles cost Alertmanager one request pair.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import re
import time
import urllib.parse
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import aiohttp

from exporter.config import AlertmanagerConfig, SourceConfig

log = logging.getLogger("aura.console")
CACHE_SECONDS = 5.0


def _matcher_text(labels: dict[str, str]) -> str:
    def esc(v: str) -> str:
        return v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return "{" + ",".join(f'{k}="{esc(v)}"' for k, v in labels.items()) + "}"


def silence_link(ui: str, labels: dict[str, str]) -> str:
    """Alertmanager UI's new-silence form prefilled with the alert's labels."""
    return f"{ui}/#/silences/new?filter={urllib.parse.quote(_matcher_text(labels))}"


def _selects(matcher: dict[str, Any], names: set[str]) -> bool:
    if matcher.get("name") != "alertname":
        return False
    value, equal = str(matcher.get("value", "")), matcher.get("isEqual", True)
    if matcher.get("isRegex"):
        try:
            hit = any(re.fullmatch(value, n) for n in names)
        except re.error:
            return False
    else:
        hit = value in names
    return bool(hit) == bool(equal)


def select(alerts: Iterable[dict[str, Any]], silences: Iterable[dict[str, Any]],
           names: set[str], ui: str) -> dict[str, Any]:
    """Pure part: API v2 JSON lists -> the console's view ({alerts, silences})."""
    out_alerts = []
    for a in alerts:
        labels = {str(k): str(v) for k, v in (a.get("labels") or {}).items()}
        if labels.get("alertname") not in names:
            continue
        status = a.get("status") or {}
        out_alerts.append({"labels": labels, "state": status.get("state", ""),
                           "silenced_by": list(status.get("silencedBy") or []),
                           "starts_at": a.get("startsAt", ""),
                           "summary": (a.get("annotations") or {}).get("summary", ""),
                           "silence_url": silence_link(ui, labels)})
    out_alerts.sort(key=lambda x: (x["labels"]["alertname"], sorted(x["labels"].items())))
    out_silences = []
    for s in silences:
        state = (s.get("status") or {}).get("state", "")
        matchers = list(s.get("matchers") or [])
        if state == "expired" or not any(_selects(m, names) for m in matchers):
            continue
        ops = {(True, False): "=", (False, False): "!=", (True, True): "=~", (False, True): "!~"}
        text = ", ".join(f"{m.get('name')}{ops[(bool(m.get('isEqual', True)), bool(m.get('isRegex')))]}"
                         f'"{m.get("value", "")}"' for m in matchers)
        out_silences.append({"id": s.get("id", ""), "state": state, "matchers": text,
                             "created_by": s.get("createdBy", ""), "comment": s.get("comment", ""),
                             "ends_at": s.get("endsAt", ""),
                             "url": f"{ui}/#/silences/{urllib.parse.quote(str(s.get('id', '')))}"})
    return {"alerts": out_alerts, "silences": out_silences}


class AlertmanagerView:
    """Fetches and caches the Alertmanager part of the console's alerts page."""

    def __init__(self, cfg: AlertmanagerConfig, clock: Any = time.monotonic):
        self.cfg = cfg
        self.ui = cfg.url.rstrip("/")
        self.clock = clock
        self._cached: tuple[float, dict[str, Any]] | None = None
        self._lock = asyncio.Lock()
        self._last_error: str | None = None

    def _headers(self) -> dict[str, str]:
        if self.cfg.basic_auth is not None:
            ba = self.cfg.basic_auth
            pw = Path(ba.password_file).read_text().strip() if ba.password_file else ""
            pair = base64.b64encode(f"{ba.username}:{pw}".encode()).decode("ascii")
            return {"Authorization": f"Basic {pair}"}
        if self.cfg.authorization is not None and self.cfg.authorization.credentials_file:
            secret = Path(self.cfg.authorization.credentials_file).read_text().strip()
            return {"Authorization": f"{self.cfg.authorization.type or 'Bearer'} {secret}"}
        return {}

    async def _fetch(self, names: set[str]) -> dict[str, Any]:
        from exporter.source.http import ssl_context

        tls = ssl_context(SourceConfig(url=self.ui, tls_config=self.cfg.tls_config)) \
            if self.ui.startswith("https") else False
        timeout = aiohttp.ClientTimeout(total=float(self.cfg.timeout))
        async with aiohttp.ClientSession(headers=self._headers(), timeout=timeout) as s:
            async def get(path: str) -> list[dict[str, Any]]:
                async with s.get(self.ui + path, ssl=tls) as r:
                    if r.status != 200:
                        raise ValueError(f"GET {path}: HTTP {r.status}")
                    data = await r.json(content_type=None)
                    if not isinstance(data, list):
                        raise ValueError(f"GET {path}: expected a JSON list")
                    return data
            alerts, silences = await asyncio.gather(get("/api/v2/alerts"),
                                                    get("/api/v2/silences"))
        return select(alerts, silences, names, self.ui)

    async def view(self, names: set[str]) -> dict[str, Any]:
        """{configured, url, error?, alerts, silences} (cached CACHE_SECONDS)."""
        async with self._lock:
            now = self.clock()
            if self._cached is not None and now - self._cached[0] < CACHE_SECONDS:
                return self._cached[1]
            try:
                data = {"configured": True, "url": self.ui, "error": None,
                        **await self._fetch(names)}
                if self._last_error is not None:
                    log.info("alertmanager reachable again url=%s", self.ui)
                self._last_error = None
            except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as err:
                message = f"{type(err).__name__}: {err}" if str(err) else type(err).__name__
                if message != self._last_error:
                    log.warning("alertmanager fetch failed url=%s err=%r", self.ui, message)
                self._last_error = message
                data = {"configured": True, "url": self.ui, "error": message,
                        "alerts": [], "silences": []}
            self._cached = (now, data)
            return data
