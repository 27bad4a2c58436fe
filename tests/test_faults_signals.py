"""Fault injection: SIGTERM / SIGINT while a cycle is in flight, then a restart.

`aura run` runs as a real process against a stub Prometheus on 127.0.0.1 whose answers are made
slow on demand, so the signal lands in the middle of a cycle. Expected: the cycle finishes and
saves state, the process exits 0 with a shutdown log line, and a restart resumes from the saved
buffers without fetching the whole window again.
"""

from __future__ import annotations

import json
import math
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


class SlowProm:
    """query_range for two hosts; `delay` seconds per answer; records (start, end, t_received)."""

    def __init__(self) -> None:
        self.delay = 0.0
        self.requests: list[tuple[float, float, float]] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                length = int(self.headers.get("Content-Length") or 0)
                form = urllib.parse.parse_qs(self.rfile.read(length).decode())
                start, end = float(form["start"][0]), float(form["end"][0])
                step = float(form["step"][0].rstrip("s"))
                owner.requests.append((start, end, time.time()))
                time.sleep(owner.delay)
                n = int((end - start) // step) + 1
                ts = [start + k * step for k in range(n)]
                result = [{"metric": {"instance": f"h{i}"},
                           "values": [[t, repr(0.3 + 0.05 * i + 0.02 * math.sin(t / 600))]
                                      for t in ts]} for i in range(2)]
                body = json.dumps({"status": "success",
                                   "data": {"resultType": "matrix", "result": result}}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cycles(port: int) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as resp:
            for line in resp.read().decode().splitlines():
                if line.startswith("aura_cycles_total "):
                    return int(float(line.split()[1]))
    except OSError:
        pass
    return -1


def _start(cfg: Path, port: int, log: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-m", "exporter", "run", f"--config.file={cfg}",
         f"--web.listen-address=127.0.0.1:{port}", "--topology.workers=1"],
        cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)


def _wait(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_mid_cycle_saves_state_exits_cleanly_and_restart_resumes(tmp_path, sig):
    prom = SlowProm()
    state = tmp_path / "state"
    cfg = tmp_path / "aura.yml"
    cfg.write_text(f"""source: {{url: "{prom.url}", timeout: 20s, retries: 0}}
interval: 5s
state_dir: {state}
analyses:
  - name: nodes
    entity_labels: [instance]
    window: 2h
    step: 1m
    topology: {{bootstrap: 0s}}
    signals:
      - {{name: cpu, query: cpu_q, kind: saturation, capacity: 1.0}}
      - {{name: memory, query: mem_q, kind: resource, capacity: 1.0}}
""")
    port = _free_port()
    proc = _start(cfg, port, tmp_path / "run1.log")
    try:
        _wait(lambda: _cycles(port) >= 1, 90, "the first cycle")
        prom.delay = 3.0
        seen = len(prom.requests)
        _wait(lambda: len(prom.requests) > seen, 30, "a cycle in flight")
        signalled = time.time()
        proc.send_signal(sig)
        rc = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    log = (tmp_path / "run1.log").read_text()
    assert rc == 0, log
    assert "Traceback" not in log
    assert f"stopping after the current cycle\" signal={sig.name}" in log
    assert f"msg=\"shut down\" signal={sig.name}" in log
    saved = state / "nodes.npz"
    assert saved.is_file() and saved.stat().st_mtime >= signalled - 0.5  # the cycle finished

    prom.delay = 0.0
    before = len(prom.requests)
    proc = _start(cfg, port, tmp_path / "run2.log")
    try:
        _wait(lambda: _cycles(port) >= 1, 90, "the first cycle after the restart")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        prom.close()
    first = prom.requests[before]
    assert "restored buffer" in (tmp_path / "run2.log").read_text()
    assert first[1] - first[0] < 15 * 60, "the restart fetched the whole window again"
