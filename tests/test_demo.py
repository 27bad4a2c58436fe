"""`aura demo` as a new user runs it: a real subprocess, scraped over HTTP, checked by promtool."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from tests.promstack import free_port

ROOT = Path(__file__).resolve().parents[1]


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, ""
    except OSError:
        return 0, ""


def test_demo_serves_clean_metrics_and_explains_the_failing_entity(tmp_path):
    promtool = shutil.which("promtool")
    assert promtool, "promtool missing: scripts/setup.sh --stack installs it"
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = open(tmp_path / "demo.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "exporter", "demo",
                             f"--web.listen-address=127.0.0.1:{port}", "--topology.workers=1"],
                            stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    try:
        deadline = time.time() + 90
        while time.time() < deadline and _get(base + "/-/ready")[0] != 200:
            assert proc.poll() is None, (tmp_path / "demo.log").read_text()
            time.sleep(1)
        assert _get(base + "/-/ready")[0] == 200, (tmp_path / "demo.log").read_text()[-3000:]
        status, body = _get(base + "/metrics")
        assert status == 200
        for name in ("aura_up 1.0", "aura_build_info{", "aura_cycle_duration_seconds ",
                     'aura_stage_duration_seconds{stage="topology"}',
                     "aura_last_cycle_success_timestamp_seconds ", "aura_cycles_total ",
                     'aura_model_info{model="default"'):
            assert name in body, name
        check = subprocess.run([promtool, "check", "metrics"], input=body.encode(),
                               capture_output=True)
        assert check.returncode == 0, check.stdout + check.stderr
        # The scripted memory leak on host-03 is explained by the console.
        assert _get(base + "/")[0] == 200
        entity = base + "/api/v1/console/entity?analysis=fleet&instance=host-03%3A9100"
        deadline = time.time() + 60
        page = ""
        while time.time() < deadline:
            page = _get(entity)[1]
            if "raise_memory_limit" in page:
                break
            time.sleep(2)
        assert "host-03:9100" in page and "raise_memory_limit" in page, page[-2000:]
        assert "memory" in page and "capacity" in page
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def test_a_listen_address_in_use_is_a_clear_error_not_a_traceback(capsys):
    import socket

    from exporter.cli import main

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        status = main(["demo", f"--web.listen-address=127.0.0.1:{port}", "--topology.workers=1",
                       "--demo.entities=12"])
    err = capsys.readouterr().err
    assert status == 1
    assert f"aura: cannot listen on 127.0.0.1:{port}" in err and "Traceback" not in err
