"""`aura report`: an entity's report fetched from a running exporter, a backtest directory's
report (no browser)."""

from __future__ import annotations

import asyncio
import base64
import math
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from exporter.cli import main
from exporter.server import make_app
from tests.test_backtest import backtest_run  # noqa: F401 (module fixture: a tiny backtest)
from tests.test_console import XSS, _serve, basic_auth_config, demo_snapshots, with_entity_names


def _serve_and_run(app, argv_of_base) -> tuple[int, ...]:
    """Serve `app` on 127.0.0.1 and run `aura report` argument lists against it (a thread)."""
    async def go():
        runner, port = await _serve(app)
        try:
            return tuple([await asyncio.to_thread(main, argv)
                          for argv in argv_of_base(f"http://127.0.0.1:{port}")])
        finally:
            await runner.cleanup()
    return asyncio.run(go())


def test_entity_report_from_a_running_exporter_with_basic_auth(tmp_path, capsys):
    cfg, snaps = demo_snapshots()
    snap = with_entity_names(snaps[0], {"host-03:9100": XSS})
    app = make_app(lambda: snap, basic_auth_config(tmp_path), config=cfg)
    (tmp_path / "pw").write_text("s3cret\n")
    (tmp_path / "bad").write_text("nope\n")
    auth = ["--auth.username=prom", f"--auth.password-file={tmp_path / 'pw'}"]
    html_out, md_out = tmp_path / "r.html", tmp_path / "r.md"
    rcs = _serve_and_run(app, lambda base: [
        ["report", f"--url={base}", f"--entity=instance={XSS}", f"--output={html_out}", *auth],
        ["report", f"--url={base}", f"--entity=instance={XSS}", "--analysis=fleet",
         f"--output={md_out}", *auth],
        ["report", f"--url={base}", "--entity=instance=host-03:9100", "--output=x.html"],
        ["report", f"--url={base}", "--entity=instance=nobody", f"--output={tmp_path / 'n.md'}",
         *auth],
        ["report", f"--url={base}", "--entity=instance=x", f"--output={tmp_path / 'n.md'}",
         "--auth.username=prom", f"--auth.password-file={tmp_path / 'bad'}"],
    ])
    err = capsys.readouterr().err
    assert rcs == (0, 0, 1, 1, 1), err
    assert err.count("401 unauthorized") == 2 and "no entity {'instance': 'nobody'}" in err
    assert not (tmp_path / "n.md").exists() and not (tmp_path / "x.html").exists()
    page = html_out.read_text()
    assert page.startswith("<!doctype html>") and "<script" not in page and XSS not in page
    assert "&lt;script&gt;" in page and page.count("<svg") >= 10  # history + one per signal
    assert not re.search(r"""(src|href)=["']?https?:""", page)  # self-contained
    text = md_out.read_text()
    assert text.startswith("# AURA incident report: ") and "## Agents' votes" in text


def test_entity_report_unreachable_exporter_is_one_clear_line(tmp_path, capsys):
    from tests.promstack import free_port

    rc = main(["report", f"--url=http://127.0.0.1:{free_port()}", "--entity=instance=a",
               "--analysis=fleet", f"--output={tmp_path / 'r.html'}", "--timeout=5"])
    err = capsys.readouterr().err
    assert rc == 1 and err.startswith("aura report: http://127.0.0.1:") and "Traceback" not in err
    assert not (tmp_path / "r.html").exists()


def test_backtest_report_html_and_markdown(backtest_run, tmp_path):  # noqa: F811
    out = backtest_run["out"]
    alerts = (out / "alerts.csv").read_text().splitlines()
    assert main(["report", f"--backtest-dir={out}", f"--output={tmp_path / 'b.html'}"]) == 0
    page = (tmp_path / "b.html").read_text()
    assert "<h1>AURA backtest — analysis <code>fleet</code></h1>" in page
    assert "<th>precision</th>" in page and "<script" not in page
    assert page.count("<tr>") >= len(alerts)  # every alert row (+ header) plus the summary
    assert page.count("<svg") >= 1 and "Risk (blue)" in page  # --no-plots: SVG from scores.csv
    assert "time (UTC)" in page and "risk, anomaly score (0–1)" in page
    assert main(["report", f"--backtest-dir={out}", f"--output={tmp_path / 'b.md'}"]) == 0
    text = (tmp_path / "b.md").read_text()
    assert text.startswith("# AURA backtest") and "## Alerts" in text
    assert f"| {alerts[0].replace(',', ' | ')} |" in text


def test_backtest_report_inlines_plots_and_rejects_other_dirs(tmp_path, capsys):
    png = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk"
                           "+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==")
    (tmp_path / "plot.png").write_bytes(png)
    (tmp_path / "report.md").write_text("# T\n\n- a `b` <i>\n  continued\n\n## P\n\n"
                                        "![P](plot.png)\n")
    (tmp_path / "alerts.csv").write_text("alertname,severity,instance,start,end,top_signal,"
                                         "agents,action\nAuraFailureRisk,warning,a|b,1,,cpu,"
                                         "forecast,scale_up\n")
    assert main(["report", f"--backtest-dir={tmp_path}", f"--output={tmp_path / 'o.html'}"]) == 0
    page = (tmp_path / "o.html").read_text()
    uri = "data:image/png;base64," + base64.b64encode(png).decode()
    assert f'<img alt="P" src="{uri}">' in page and "plot.png" not in page
    assert "<li>a <code>b</code> &lt;i&gt; continued</li>" in page
    assert main(["report", f"--backtest-dir={tmp_path}", "--format=md",
                 f"--output={tmp_path / 'o.txt'}"]) == 0
    text = (tmp_path / "o.txt").read_text()
    assert f"![P]({uri})" in text and "| a\\|b |" in text
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["report", f"--backtest-dir={empty}", f"--output={tmp_path / 'e.html'}"]) == 1
    assert "has no alerts.csv" in capsys.readouterr().err


def test_backtest_report_charts_keep_the_rows_around_an_unreadable_timestamp(tmp_path):
    (tmp_path / "alerts.csv").write_text("alertname,severity,instance,start,end,top_signal,"
                                         "agents,action\nAuraFailureRisk,warning,a,1,,cpu,"
                                         "forecast,scale_up\n")
    (tmp_path / "scores.csv").write_text(
        "timestamp,instance,risk,level,anomaly_score\n1700000000,a,0.2,0,0.5\n"
        "yesterday,a,0.3,0,0.6\n2023-11-14T22:23:20Z,a,0.9,1,0.99\n")
    assert main(["report", f"--backtest-dir={tmp_path}", f"--output={tmp_path / 'o.html'}"]) == 0
    page = (tmp_path / "o.html").read_text()
    assert "Left out of the charts: 1 row(s) of scores.csv with an unreadable timestamp" in page
    assert "time (UTC)" in page and page.count("<svg") == 1


@pytest.mark.parametrize("argv", [["--entity=instance=a"], ["--url=http://x", "--backtest-dir=."]])
def test_report_needs_exactly_one_source(argv, tmp_path, capsys):
    assert main(["report", *argv, f"--output={tmp_path / 'r.html'}"]) == 1
    assert "give either --url" in capsys.readouterr().err


def test_report_time_to_failure_names_the_agents_that_projected_it():
    """The report's time to failure says whose projection it is (the console's
    `projected_by`); the failure probabilities next to it are the learned model's."""
    from exporter.console.report import _ttf

    assert _ttf(None, ["capacity"]) == "none projected"
    assert _ttf(5400.0, []) == "1h30m"
    assert _ttf(5400.0, ["capacity", "network"]) == (
        "1h30m (projected by capacity, network; the failure probabilities are the learned "
        "model's own)")


@pytest.fixture(scope="module")
def leaking_host() -> dict:
    """The entity view model of the demo's leaking host, with three points of history."""
    from exporter.console.history import History
    from exporter.console.live import Live
    from exporter.console.routes import Console

    cfg, snaps = demo_snapshots()
    history = History(86400, 60)
    for snap in snaps:
        history.record(snap.created, snap.results)
    r = snaps[-1].results[0]
    console = Console(Live(lambda: snaps[-1], history), history, cfg)
    return console._detail(r, r.entities.index(("host-03:9100",)))


def _charts(page: str) -> list[str]:
    return re.findall(r"<svg .*?</svg>", page)


def _texts(chart: str, cls: str) -> list[str]:
    return re.findall(rf'<text class="{cls}"[^>]*>([^<]*)</text>', chart)


def _utc(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%H:%M")


def test_report_charts_have_utc_clock_ticks_y_ticks_and_the_signals_unit(leaking_host):
    """As the console's entity charts: a time axis ticked at round clock times, y ticks and
    the unit the API knows; a static file has no browser zone, so the times are UTC, said
    on every time axis and next to the times written out."""
    from exporter.console.report import html_report, markdown

    d = leaking_host
    page = html_report(d, now=1_800_000_200.0)
    assert "Every time in this file is UTC" in page
    history, *signals = _charts(page)
    assert len(signals) == len(d["signals"])
    assert _texts(history, "axis-name y") == ["risk, anomaly score (0–1)"]
    assert _texts(history, "tick y") == ["0", "0.5", "1.0"]
    assert _texts(history, "axis-name x") == ["time (UTC)"]
    assert "3 points from 2027-01-15 08:00 to 2027-01-15 08:02 UTC." in page
    start, step = d["window"]["start"], d["window"]["step"]
    for chart, signal in zip(signals, d["signals"], strict=True):
        end = start + (len(signal["values"]) - 1) * step  # a 2 h window: 30-minute ticks
        want = [_utc(t) for t in range(math.ceil(start / 1800) * 1800, int(end) + 1, 1800)]
        assert 3 <= len(want) <= 6 and _texts(chart, "tick x") == want, signal["name"]
        assert _texts(chart, "tick day") == []  # one day: no dates
        assert _texts(chart, "axis-name x") == ["time (UTC)"]
        assert len(_texts(chart, "tick y")) >= 2
        unit = {"latency_seconds": ["seconds"], "error_ratio": ["ratio"]}.get(signal["name"], [])
        assert unit == ([signal["unit"]] if signal["unit"] else []), signal["name"]
        assert _texts(chart, "axis-name y") == unit, signal["name"]
    assert "<figcaption>latency_seconds (seconds) (band: own baseline" in page
    assert "<figcaption>memory (band: own baseline" in page
    text = markdown(d, now=1_800_000_200.0)
    assert re.search(r"^- latency_seconds: last \d+\.\d{4} seconds,", text, re.M)
    assert re.search(r"^- memory: last \d+\.\d{4},", text, re.M)
    assert "\n3 points from 2027-01-15 08:00 to 2027-01-15 08:02 UTC; risk " in text


def test_report_time_axis_dates_a_span_across_midnight_and_names_a_simulated_clock(
        leaking_host):
    from exporter.console.report import html_report

    t0 = 1_800_000_000.0 - 12 * 3600  # 2027-01-14 20:00 UTC, 12 h to 08:00 the next day
    times = [t0 + 600 * k for k in range(73)]
    d = {**leaking_host, "clock": {"simulated": True, "speed": 60},
         "history": {**leaking_host["history"], "times": times, "risk": [0.2] * 73,
                     "anomaly": [0.1] * 73}}
    history = _charts(html_report(d, now=1_800_000_200.0))[0]
    assert _texts(history, "tick x") == ["21:00", "00:00", "03:00", "06:00"]
    assert _texts(history, "tick day") == ["2027-01-14", "2027-01-15"]  # first, new day
    assert _texts(history, "axis-name x") == ["simulated time (UTC)"]


def test_report_is_the_same_in_any_machine_time_zone(leaking_host):
    """UTC by construction: the same bytes under TZ=Asia/Kathmandu (UTC+5:45)."""
    import json
    import os
    import subprocess
    import sys

    from exporter.console.report import html_report, markdown

    code = ("import json, sys; from exporter.console.report import html_report, markdown; "
            "d = json.load(sys.stdin); print(json.dumps([html_report(d, 1.8e9), "
            "markdown(d, 1.8e9)]))")
    out = subprocess.run([sys.executable, "-c", code], input=json.dumps(leaking_host),
                         capture_output=True, text=True, check=True,
                         cwd=Path(__file__).parents[1],  # this checkout's exporter
                         env={**os.environ, "TZ": "Asia/Kathmandu"}).stdout
    assert json.loads(out) == [html_report(leaking_host, 1.8e9), markdown(leaking_host, 1.8e9)]


def test_nice_ticks_are_round_values_with_k_m_g():
    from exporter.console.report import clock_ticks, nice_ticks

    assert nice_ticks(0, 1) == [(0.0, "0"), (0.5, "0.5"), (1.0, "1.0")]
    assert [x for _, x in nice_ticks(0, 2.4e7)] == ["0", "10M", "20M"]
    assert [x for _, x in nice_ticks(0, 7.9e9)] == ["0", "2G", "4G", "6G"]
    assert [x for _, x in nice_ticks(0, 0.013)] == ["0", "0.005", "0.010"]
    # 2 h in at most 5 ticks: every 30 minutes, on the half hour.
    assert clock_ticks(1_800_000_100.0, 1_800_007_300.0, 5) == [
        1_800_001_800.0 + 1800 * k for k in range(4)]
