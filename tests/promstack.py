"""Helpers to run the real Prometheus stack in tests (not tests themselves).

Everything binds 127.0.0.1 on a free port, lives in a caller-given directory, and is stopped by
PID in a `finally`. Missing binaries are installed when possible (root + apt) and otherwise raise
a loud RuntimeError: a test that needs the real stack must fail, never skip, without it.

Typical use::

    ensure_binaries()
    text = openmetrics_gauges("node_load5", {"instance": ["a", "b"]}, timestamps, values)
    backfill(text, tmp_path / "data")
    with PrometheusProcess(tmp_path / "data") as prom:
        prom.query("up")

Facts about these binaries on this machine: /work/shared/notes/prometheus-stack.md.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

PROMETHEUS = "prometheus"
PROMTOOL = "promtool"
ALERTMANAGER = "/usr/bin/prometheus-alertmanager"
AMTOOL = "amtool"

_BINARIES = {PROMETHEUS: "prometheus", PROMTOOL: "prometheus", ALERTMANAGER: "prometheus-alertmanager",
             AMTOOL: "prometheus-alertmanager"}


def _have(binary: str) -> bool:
    return (Path(binary).is_file() and os.access(binary, os.X_OK)) if "/" in binary else bool(
        shutil.which(binary)
    )


def ensure_binaries() -> None:
    """Make sure prometheus, promtool, prometheus-alertmanager and amtool exist, or raise."""
    missing = [b for b in _BINARIES if not _have(b)]
    if not missing:
        return
    packages = sorted({_BINARIES[b] for b in missing})
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise RuntimeError(
            f"Prometheus stack binaries missing ({', '.join(missing)}) and cannot be installed "
            f"here (need root and apt-get): apt-get install {' '.join(packages)}"
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update"],
                ["apt-get", "install", "-y", "--no-install-recommends", *packages]):
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    still = [b for b in _BINARIES if not _have(b)]
    if still:
        raise RuntimeError(f"installed {packages} but still missing: {still}")


def free_port() -> int:
    """A currently free TCP port on 127.0.0.1 (bind to port 0, read it, release it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def openmetrics_gauges(
    metric: str,
    labels: Mapping[str, Sequence[str]],
    timestamps: np.ndarray,
    values: np.ndarray,
    *,
    help_text: str = "test data",
    extra: str = "",
) -> str:
    """OpenMetrics text of one gauge family: series i has labels {k: labels[k][i]}.

    `values` is [series, T] (NaN = no sample); `timestamps` is [T] Unix seconds, ascending.
    An empty label value leaves the label out (as Prometheus does), so series of one family may
    carry different label sets. Ends with `# EOF` and no newline, as promtool requires. `extra` is prepended verbatim (other
    families, each ending in a newline) so several families can go in one file.
    """
    values = np.atleast_2d(np.asarray(values, dtype=np.float64))
    names = list(labels)
    n = values.shape[0]
    lines = [extra.rstrip("\n")] if extra else []
    lines += [f"# HELP {metric} {help_text}", f"# TYPE {metric} gauge"]
    for i in range(n):
        lab = ",".join(f'{k}="{_escape(str(labels[k][i]))}"' for k in names if labels[k][i] != "")
        prefix = f"{metric}{{{lab}}}" if lab else metric
        row = values[i]
        ok = ~np.isnan(row)
        lines.extend(f"{prefix} {v!r} {t:.3f}" for t, v in zip(
            timestamps[ok].tolist(), row[ok].tolist(), strict=True))
    return "\n".join(lines) + "\n# EOF"


def join_openmetrics(*texts: str) -> str:
    """Concatenate outputs of `openmetrics_gauges` into one file (one `# EOF` at the end)."""
    bodies = [t[: -len("# EOF")].rstrip("\n") if t.endswith("# EOF") else t for t in texts]
    return "\n".join(b for b in bodies if b) + "\n# EOF"


def backfill(openmetrics_text: str, data_dir: Path | str) -> None:
    """Write TSDB blocks for `openmetrics_text` into `data_dir` with promtool (raise on failure)."""
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    src = data_dir.parent / f".{data_dir.name}.om"
    src.write_text(openmetrics_text)
    try:
        proc = subprocess.run(
            [PROMTOOL, "tsdb", "create-blocks-from", "openmetrics", str(src), str(data_dir)],
            capture_output=True, text=True, timeout=300,
        )
    finally:
        src.unlink(missing_ok=True)
    if proc.returncode != 0:
        raise RuntimeError(f"promtool backfill failed:\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}")


def _http_get(url: str, timeout: float = 5.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 (loopback only)
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


class _Process:
    """A child server on 127.0.0.1: start, wait for readiness, stop by PID, show its log."""

    ready_path = "/-/ready"
    name = "server"

    def __init__(self, workdir: Path, port: int | None = None, startup_timeout: float = 30.0):
        self.workdir = Path(workdir)
        self.port = port or free_port()
        self.startup_timeout = startup_timeout
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = self.workdir / f"{self.name}.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        raise NotImplementedError

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-5000:]
        except OSError:
            return "<no log>"

    def __enter__(self) -> _Process:
        self.workdir.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "wb") as logf:
            self.proc = subprocess.Popen(self.command(), stdout=logf, stderr=subprocess.STDOUT,
                                         cwd=self.workdir)
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{self.log()}")
            try:
                status, _ = _http_get(self.url + self.ready_path, timeout=1.0)
                if status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} not ready after {self.startup_timeout}s:\n{self.log()}")

    def stop(self) -> None:
        """Stop the child by PID (SIGTERM, then SIGKILL after 10 s)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def __exit__(self, exc_type: object, *exc: object) -> None:
        self.stop()
        if exc_type is not None:
            # Shown by pytest with the failure: what the server said is often the answer.
            print(f"--- {self.name} log ({self.log_path}) ---\n{self.log()}")


DEFAULT_PROMETHEUS_CONFIG = """\
global:
  scrape_interval: 1s
  evaluation_interval: 1s
"""


class PrometheusProcess(_Process):
    """A real Prometheus on 127.0.0.1 over `data_dir` (which may hold backfilled blocks).

    `config` is the prometheus.yml text; `extra_args` are appended to the command line.
    """

    name = "prometheus"

    def __init__(self, data_dir: Path | str, config: str = DEFAULT_PROMETHEUS_CONFIG, *,
                 port: int | None = None, extra_args: Sequence[str] = (),
                 startup_timeout: float = 30.0):
        data_dir = Path(data_dir)
        super().__init__(data_dir.parent / f"{data_dir.name}-run", port, startup_timeout)
        self.data_dir = data_dir
        self.config = config
        self.extra_args = list(extra_args)

    def command(self) -> list[str]:
        cfg = self.workdir / "prometheus.yml"
        cfg.write_text(self.config)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        return [
            PROMETHEUS,
            f"--config.file={cfg}",
            f"--storage.tsdb.path={self.data_dir}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--storage.tsdb.retention.time=400d",
            *self.extra_args,
        ]

    def __enter__(self) -> PrometheusProcess:
        super().__enter__()
        return self

    def api(self, path: str, **params: Any) -> Any:
        """GET /api/v1/<path> with params; return the decoded `data` or raise with the error."""
        url = f"{self.url}/api/v1/{path}?{urllib.parse.urlencode(params)}"
        status, body = _http_get(url, timeout=30)
        doc = json.loads(body)
        if doc.get("status") != "success":
            raise RuntimeError(f"{path} {params}: HTTP {status} {doc.get('errorType')}: "
                               f"{doc.get('error')}")
        return doc["data"]

    def query(self, expr: str, time_: float | None = None) -> list[dict[str, Any]]:
        """Instant query; the `result` list (raise on a PromQL error)."""
        params: dict[str, Any] = {"query": expr}
        if time_ is not None:
            params["time"] = f"{time_:.3f}"
        return self.api("query", **params)["result"]

    def self_metric(self, name: str, labels: Mapping[str, str]) -> float:
        """Sum of Prometheus' own /metrics samples of `name` matching `labels` (no scrape delay).

        Summing over the other labels (e.g. `code`) makes a counter of requests by handler.
        """
        _, body = _http_get(self.url + "/metrics")
        want = [f'{k}="{v}"' for k, v in labels.items()]
        total = 0.0
        for line in body.decode().splitlines():
            if line.startswith(name + "{") and all(w in line for w in want):
                total += float(line.rsplit(" ", 1)[1])
        return total


class AlertmanagerProcess(_Process):
    """A real Alertmanager on 127.0.0.1 (no cluster listener) with `config` as alertmanager.yml."""

    name = "alertmanager"

    def __init__(self, workdir: Path | str, config: str, *, port: int | None = None,
                 startup_timeout: float = 30.0):
        super().__init__(Path(workdir), port, startup_timeout)
        self.config = config

    def command(self) -> list[str]:
        cfg = self.workdir / "alertmanager.yml"
        cfg.write_text(self.config)
        return [
            ALERTMANAGER,
            f"--config.file={cfg}",
            f"--storage.path={self.workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--cluster.listen-address=",
        ]

    def __enter__(self) -> AlertmanagerProcess:
        super().__enter__()
        return self
