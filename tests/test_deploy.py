"""Dockerfile and Kubernetes manifests: linted and validated offline (no Docker engine here)."""

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(__file__).resolve().parents[1] / ".venv" / "bin"


def _tool(name: str) -> str:
    path = shutil.which(name) or (str(BIN / name) if (BIN / name).exists() else None)
    assert path, f"{name} missing: scripts/setup.sh --dev installs it"
    return path


def test_dockerfile_lints_clean_and_has_the_essentials():
    out = subprocess.run([_tool("hadolint"), str(ROOT / "Dockerfile")], capture_output=True,
                         text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    text = (ROOT / "Dockerfile").read_text()
    assert "FROM python:3.11-slim" in text
    assert "torch==2.13.0" in text and "whl/cpu" in text
    assert "USER 10977" in text and "EXPOSE 10977" in text
    assert "HEALTHCHECK" in text and "/-/healthy" in text
    # The check copes with TLS without curl (the slim image has none): deploy/healthcheck.py.
    assert "COPY deploy/healthcheck.py ./healthcheck.py" in text
    assert 'CMD ["python", "/opt/aura/healthcheck.py"]' in text and "curl " not in text
    assert "COPY models ./models" in text


def _docs(name: str) -> list[dict]:
    return [d for d in yaml.safe_load_all((ROOT / "deploy/kubernetes" / name).read_text()) if d]


def test_kubernetes_manifests_validate_against_schemas():
    core = [str(p) for p in sorted((ROOT / "deploy/kubernetes").glob("*.yaml"))
            if p.name not in ("servicemonitor.yaml", "prometheusrule.yaml")]
    out = subprocess.run([_tool("kubernetes-validate"), "--strict", "--quiet", *core],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_statefulset_and_servicemonitor_fit_aura():
    (sts,) = _docs("statefulset.yaml")
    container = sts["spec"]["template"]["spec"]["containers"][0]
    assert "--shard.index=auto" in container["args"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/-/ready"
    from exporter.webconfig import PROBE_PATHS

    # Probes carry no credentials: they must hit the paths basic auth leaves open.
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"]["path"] in PROBE_PATHS
    assert container["resources"]["requests"]["memory"]
    (sm,) = _docs("servicemonitor.yaml")
    assert sm["kind"] == "ServiceMonitor"
    assert all(e["honorLabels"] is True for e in sm["spec"]["endpoints"])
    (cm,) = _docs("configmap.yaml")
    from exporter.config import parse_config

    parse_config(yaml.safe_load(cm["data"]["aura.yml"]))  # the shipped config is valid


def test_prometheusrule_carries_the_generated_rules():
    (pr,) = _docs("prometheusrule.yaml")
    rules = yaml.safe_load((ROOT / "rules" / "aura-rules.yml").read_text())
    assert pr["kind"] == "PrometheusRule"
    assert pr["spec"] == rules


# ------------------------------------------------------------------------------------------
# deploy/healthcheck.py: the image's HEALTHCHECK, against a real server


def _healthcheck():
    import importlib.util

    spec = importlib.util.spec_from_file_location("aura_healthcheck",
                                                  ROOT / "deploy" / "healthcheck.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _web_yml(tmp_path: Path, *, tls: bool, client_auth: str | None = None) -> Path:
    import bcrypt

    hashed = bcrypt.hashpw(b"s3cret", bcrypt.gensalt(rounds=4)).decode()
    lines = ["basic_auth_users:", f"  prom: '{hashed}'"]
    if tls:
        subprocess.run([_tool("openssl"), "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                        "-days", "1", "-subj", "/CN=aura.example", "-addext",
                        "subjectAltName=DNS:aura.example", "-keyout", str(tmp_path / "key.pem"),
                        "-out", str(tmp_path / "cert.pem")], check=True, capture_output=True)
        lines += ["tls_server_config:", "  cert_file: cert.pem", "  key_file: key.pem"]
        if client_auth:
            lines += [f"  client_auth_type: {client_auth}", "  client_ca_file: cert.pem"]
    path = tmp_path / "web.yml"
    path.write_text("\n".join(lines) + "\n")
    return path


def _check_against_server(web_yml: Path, argv_for) -> list[int]:
    """Serve make_app with `web_yml` on 127.0.0.1; run healthcheck.main(argv_for(port)) each."""
    import asyncio

    from aiohttp import web

    from exporter.server import make_app
    from exporter.webconfig import load_web_config
    from tests.test_server import _Snap as Snap

    cfg = load_web_config(web_yml)
    hc = _healthcheck()

    async def go() -> list[int]:
        runner = web.AppRunner(make_app(lambda: Snap(), cfg), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=cfg.ssl_context)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        try:
            return [await asyncio.to_thread(hc.main, argv) for argv in argv_for(port)]
        finally:
            await runner.cleanup()

    return asyncio.run(go())


@pytest.mark.parametrize("tls", [False, True], ids=["plain", "tls"])
def test_healthcheck_passes_with_basic_auth_plain_or_tls(tmp_path, tls):
    codes = _check_against_server(_web_yml(tmp_path, tls=tls), lambda port: [
        [f":{port}"], [f"127.0.0.1:{port}", "/-/ready"],
        [f"127.0.0.1:{port}", "/metrics"]])  # /metrics needs credentials: unhealthy
    assert codes == [0, 0, 1]


def test_healthcheck_fails_when_client_certificates_are_required(tmp_path):
    # Documented limit (README "Security"): no probe without a client certificate.
    codes = _check_against_server(
        _web_yml(tmp_path, tls=True, client_auth="RequireAndVerifyClientCert"),
        lambda port: [[f":{port}"]])
    assert codes == [1]


def test_healthcheck_fails_when_nothing_listens():
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    assert _healthcheck().main([f"127.0.0.1:{port}"]) == 1


def test_healthcheck_ignores_proxy_settings(monkeypatch):
    # A proxy that answers 200 to anything must not make a dead listener look healthy.
    import http.server
    import socket
    import threading

    class Always200(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's name)
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    proxy = http.server.HTTPServer(("127.0.0.1", 0), Always200)
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{proxy.server_address[1]}"
        for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
            monkeypatch.setenv(name, url)
        monkeypatch.delenv("no_proxy", raising=False)
        monkeypatch.delenv("NO_PROXY", raising=False)
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        assert _healthcheck().main([f"127.0.0.1:{port}"]) == 1
    finally:
        proxy.shutdown()


def test_healthcheck_reads_the_listen_address_of_the_main_process(tmp_path):
    hc = _healthcheck()
    cmdline = tmp_path / "cmdline"
    cmdline.write_bytes(b"/usr/local/bin/python\0/usr/local/bin/aura\0run\0"
                        b"--config.file=/etc/aura/aura.yml\0--web.listen-address=:9999\0")
    assert hc.listen_address(cmdline) == ":9999"
    cmdline.write_bytes(b"aura\0run\0--web.listen-address\0[::1]:8080\0")
    assert hc.listen_address(cmdline) == "[::1]:8080" and hc.target("[::1]:8080") == ("::1", 8080)
    cmdline.write_bytes(b"tini\0--\0aura\0")
    assert hc.listen_address(cmdline) == ":10977"
    assert hc.listen_address(tmp_path / "missing") == ":10977"
    assert hc.target(":10977") == ("127.0.0.1", 10977)
    assert hc.target("0.0.0.0:1") == ("127.0.0.1", 1)
