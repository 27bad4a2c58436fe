"""First run (issue 15): the demo starts without reinstalling, simulate -> backtest is two
commands, and every `--help` names only documents that ship with the project."""

from __future__ import annotations

import hashlib
import re
import subprocess
import time
from pathlib import Path

import pytest

# See tests/test_hardening_cases.py: backtest.Progress binds sys.stderr at import.
import exporter.backtest  # noqa: F401
from exporter.cli import COMMANDS, build_parser, main

ROOT = Path(__file__).resolve().parents[1]


def test_simulate_writes_the_matching_config_so_backtest_is_two_commands(tmp_path, capsys):
    data = tmp_path / "d.csv"
    assert main(["simulate", "--scenario=mixed", "--entities=4", "--duration=3h", "--seed=3",
                 "--format=csv", f"--output={data}"]) == 0
    config = tmp_path / "d.yml"
    # The next command is printed where a new user looks.
    assert f"aura backtest --config.file={config} --input={data}" in capsys.readouterr().out
    assert config.read_text().startswith("# Written by `aura simulate`")
    assert main(["check-config", str(config)]) == 0
    assert main(["backtest", f"--config.file={config}", f"--input={data}",
                 f"--output-dir={tmp_path / 'out'}", "--no-plots", "--topology.workers=1"]) == 0
    assert (tmp_path / "out" / "scores.csv").stat().st_size > 0


def test_backtest_without_a_config_says_where_one_comes_from(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no aura.yml here: the default --config.file is missing
    assert main(["backtest", "--input=d.csv", f"--output-dir={tmp_path / 'o'}"]) != 0
    err = capsys.readouterr().err
    assert "aura.yml: no such file" in err and "aura simulate" in err


def test_simulate_never_overwrites_a_config_it_did_not_write(tmp_path):
    mine = tmp_path / "d.yml"
    mine.write_text("interval: 5m\n")
    assert main(["simulate", "--entities=2", "--duration=1h", "--format=csv",
                 f"--output={tmp_path / 'd.csv'}"]) == 0
    assert mine.read_text() == "interval: 5m\n"


# Files a command writes (named in its help as outputs), not documents to read.
OUTPUT_FILES = {"report.md"}


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_help_names_only_shipped_documents(command):
    parser = build_parser(command)
    sub = parser._subparsers._group_actions[0].choices[command]  # type: ignore[union-attr]
    text = sub.format_help()
    assert "design §" not in text and "shared/" not in text, text
    for ref in re.findall(r"[\w./-]+\.(?:md|rst|txt|html)\b", text):
        name = Path(ref).name
        assert name in OUTPUT_FILES or (ROOT / ref).is_file(), f"{command} --help names {ref}"


def test_demo_script_skips_setup_when_installed():
    """With the venv installed for this pyproject.toml the demo starts at once (no pip)."""
    stamp = ROOT / ".venv" / ".aura-setup-stamp"
    if not (ROOT / ".venv" / "bin" / "aura").exists():
        pytest.skip("no .venv in this checkout")
    # What demo.sh writes after a successful setup: the venv running these tests is installed.
    stamp.write_text(hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest() + "\n")
    began = time.perf_counter()
    done = subprocess.run([str(ROOT / "scripts" / "demo.sh"), "--help"], capture_output=True,
                          text=True, timeout=120)
    elapsed = time.perf_counter() - began
    assert done.returncode == 0, done.stderr
    assert "usage: aura demo" in done.stdout and "setup:" not in done.stdout + done.stderr
    assert elapsed < 5.0, elapsed
