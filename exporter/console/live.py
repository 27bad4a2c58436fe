"""The console's live side: watches the snapshot, feeds the history, pushes WebSocket updates.

One background task per application checks `snapshot()` every `poll` seconds; for each new
snapshot it records the history frame and builds the fleet state and its gzip-compressed JSON
in a worker thread (the event loop keeps serving scrapes meanwhile) whether or not a console
is open, so the first page view finds them ready (~60 ms of CPU per cycle at 10 000 entities,
most of it in zlib, which releases the GIL; built on the first request instead, they delayed
the first render by as much). With clients connected, it also encodes the update once as
gzip-compressed JSON and sends the same bytes to every client as a binary message (browsers
inflate it with DecompressionStream): one compression per cycle instead of one per client, as
per-connection permessage-deflate would cost. A client that cannot take an
update within `send_timeout` is dropped (its page falls back to polling and reconnects). At
most `max_clients` WebSockets are open at a time; more get 503.
"""

from __future__ import annotations

import asyncio
import gzip
import logging
from collections.abc import Callable
from typing import Any

from aiohttp import WSMsgType, web

from exporter.console.health import exporter_health
from exporter.console.history import History
from exporter.console.views import FleetState, diff_text, fleet_state

log = logging.getLogger("aura.console")


def health_of(snapshot: Any) -> dict[str, Any]:
    """The exporter's health (health.exporter_health's dict) from a pipeline Snapshot.

    Reads its exposition `body` (bytes), `created` (Unix s) and `ready`; a missing attribute
    counts as b"" / 0 / False (so any object will do: the self metrics are then None, failures
    0). Never raises for a missing metric.
    """
    return exporter_health(getattr(snapshot, "body", b""), float(getattr(snapshot, "created", 0)),
                           bool(getattr(snapshot, "ready", False)))


class Live:
    """Snapshot watcher and WebSocket broadcaster (see the module docstring)."""

    def __init__(self, snapshot: Callable[[], Any], history: History, *, poll: float = 0.25,
                 max_clients: int = 100, send_timeout: float = 5.0):
        self.snapshot = snapshot
        self.history = history
        self.poll = poll
        self.max_clients = max_clients
        self.send_timeout = send_timeout
        self.clients: set[web.WebSocketResponse] = set()
        self.state: FleetState | None = None
        self.full: bytes | None = None  # the current state as a gzip-compressed "full" message
        self.last_update_bytes = 0
        self._seen: Any = None
        self._built = False
        self._seq = 0
        self._lock = asyncio.Lock()

    async def current(self) -> tuple[FleetState, bytes]:
        """The latest fleet state the watcher built, at once (built now only if there is none
        yet). A snapshot published in the last `poll` seconds or still being built is not in
        it: the page gets that one as its next update instead of waiting for the build (up
        to ~0.2 s of a first render at 10 000 entities on a busy machine)."""
        if self.state is None:
            await self.refresh()
        assert self.state is not None and self.full is not None
        return self.state, self.full

    async def refresh(self) -> None:
        """Record a new snapshot in the history, build its fleet state and, when clients are
        connected, broadcast the update (see the module docstring)."""
        async with self._lock:
            snap = self.snapshot()
            if snap is not self._seen:
                self._seen, self._built = snap, False
                if getattr(snap, "ready", False):
                    self.history.record(float(snap.created), tuple(getattr(snap, "results", ())))
            if self._built:
                return
            self._seq += 1
            # Without a client no diff: one that connects later starts from the full state.
            prev = self.state if self.clients else None
            state, update, full = await asyncio.to_thread(self._build, snap, self._seq, prev)
            self.state, self.full, self._built = state, full, True
        if update is not None:
            self.last_update_bytes = len(update)
        if self.clients:  # those that connected during the build hold the previous state
            await self._broadcast(full if update is None else update)

    @staticmethod
    def _build(snap: Any, seq: int,
               prev: FleetState | None) -> tuple[FleetState, bytes | None, bytes]:
        state = fleet_state(snap, seq, health_of(snap))
        full = gzip.compress(state.to_text().encode(), compresslevel=6)
        update = None if prev is None else gzip.compress(diff_text(prev, state).encode(),
                                                         compresslevel=6)
        return state, update, full

    async def _broadcast(self, data: bytes) -> None:
        if not self.clients:
            return
        clients = list(self.clients)
        results = await asyncio.gather(
            *(asyncio.wait_for(ws.send_bytes(data), self.send_timeout) for ws in clients),
            return_exceptions=True)
        for ws, res in zip(clients, results, strict=True):
            if isinstance(res, BaseException):
                self.clients.discard(ws)
                await ws.close()

    async def run(self) -> None:
        """Watch the snapshot until cancelled; never raises otherwise."""
        while True:
            try:
                await self.refresh()
            except asyncio.CancelledError:
                raise
            except Exception:  # the console must never take the exporter down
                log.exception("console refresh failed")
            await asyncio.sleep(self.poll)

    async def websocket(self, request: web.Request) -> web.StreamResponse:
        """GET /api/v1/console/ws[?since=SEQ]: the full state (unless it is state SEQ, which
        the client already holds from /api/v1/console/fleet), then one update per cycle (gzip
        JSON)."""
        if len(self.clients) >= self.max_clients:
            return web.Response(status=503, text="too many console clients\n")
        ws = web.WebSocketResponse(heartbeat=30.0, compress=False)  # the payload is gzip
        await ws.prepare(request)
        state, full = await self.current()
        if request.query.get("since") != str(state.seq):
            await ws.send_bytes(full)
        self.clients.add(ws)
        try:
            async for msg in ws:
                if msg.type == WSMsgType.ERROR:
                    break
        finally:
            self.clients.discard(ws)
        return ws

    async def close(self) -> None:
        """Close every open WebSocket (close code 1000) and forget the clients; idempotent."""
        for ws in list(self.clients):
            await ws.close()
        self.clients.clear()
