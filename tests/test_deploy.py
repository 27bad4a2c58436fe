"""Dockerfile and Kubernetes manifests: linted and validated offline (no Docker engine here)."""

import shutil
import subprocess
from pathlib import Path

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
