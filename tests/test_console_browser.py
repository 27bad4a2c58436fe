"""The console in headless Chromium (Debian `chromium`, driven by Playwright's Python package).

Screenshots go to $AURA_CONSOLE_SHOTS (default: <tmp>/aura-console-shots); the path is printed.
`scripts/setup.sh --stack` installs chromium; without it these tests fail, they never skip.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import shutil
import tempfile
import threading
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from aiohttp import web

from exporter.server import make_app
from exporter.webconfig import WebConfig
from tests.test_console import (
    AM_CONFIG,
    XSS,
    basic_auth_config,
    demo_snapshots,
    seed_alertmanager,
    with_entity_names,
)

CHROMIUM = "/usr/bin/chromium"
SHOTS = Path(os.environ.get("AURA_CONSOLE_SHOTS",
                            Path(tempfile.gettempdir()) / "aura-console-shots"))


class Server:
    """The exporter's app on 127.0.0.1 in a thread; `snap` is served and may be swapped."""

    def __init__(self, snap, config, web_config=None, story=()):
        self.snap = snap
        self._config = config
        self._story = story
        self._web_config = web_config or WebConfig()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        assert self._ready.wait(20), "console server did not start"

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)

        async def start():
            app = make_app(lambda: self.snap, self._web_config, config=self._config,
                           story=self._story)
            self._runner = web.AppRunner(app)
            await self._runner.setup()
            site = web.TCPSite(self._runner, "127.0.0.1", 0)
            await site.start()
            self.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"

        self._loop.run_until_complete(start())
        self._ready.set()
        self._loop.run_forever()

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(20)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


@pytest.fixture(scope="module")
def demo():
    return demo_snapshots()


@pytest.fixture(scope="module")
def browser(demo):  # the snapshots first: Playwright runs an event loop in this thread
    assert shutil.which(CHROMIUM) or os.path.exists(CHROMIUM), \
        "chromium missing: scripts/setup.sh --stack installs it"
    from playwright.sync_api import sync_playwright

    SHOTS.mkdir(parents=True, exist_ok=True)
    print(f"\nconsole screenshots: {SHOTS}")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield b
        b.close()


@pytest.fixture
def server(demo):
    cfg, snaps = demo
    s = Server(snaps[0], cfg)
    yield s
    s.close()


def _page(browser, **kwargs):
    # bypass_csp: Playwright's wait_for_function evaluates strings, which the console's CSP
    # forbids; it also makes the XSS test prove escaping without the CSP's help.
    context = browser.new_context(color_scheme=kwargs.pop("color_scheme", "light"),
                                  bypass_csp=True, **kwargs)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda err: errors.append(str(err)))
    return context, page, errors


def test_fleet_lists_every_entity_and_updates_live(browser, server, demo):
    cfg, snaps = demo
    context, page, errors = _page(browser, viewport={"width": 1280, "height": 1000})
    page.goto(server.url + "/")
    page.wait_for_selector("tr.entity-row")
    names = page.locator("tr.entity-row td:first-child a").all_text_contents()
    expected = {k[0] for k in snaps[0].results[0].entities}
    assert set(names) == expected and len(names) == len(expected)
    assert page.locator("#shown").text_content() == f"1–{len(expected)} of {len(expected)}"
    placed = page.locator("#map canvas").get_attribute("data-points")
    assert int(placed) == len(expected)  # every entity has features after the bootstrap
    page.wait_for_function("document.body.dataset.live === 'ws'")
    # The two clocks of the health panel say which they are.
    health = page.locator("#health").text_content()
    assert "last cycle (data time): " in health
    assert "last fully successful cycle (wall time): " in health
    page.screenshot(path=str(SHOTS / "fleet.png"), full_page=True)
    seq = page.evaluate("document.body.dataset.seq")
    page.evaluate("window.__still_here = true")
    server.snap = snaps[1]  # the next cycle
    page.wait_for_function(f"document.body.dataset.seq !== '{seq}'", timeout=5000)
    assert page.evaluate("window.__still_here") is True  # no reload
    # The diff applied in the page gives what the server's full state says.
    full = context.request.get(server.url + "/api/v1/console/fleet").json()
    [a] = full["analyses"]
    col = {c: j for j, c in enumerate(a["columns"])}
    want = {e[0]: ("" if r[col["risk"]] is None else f"{r[col['risk']] / 100:.2f}",
                   "" if r[col["anomaly"]] is None else f"{r[col['anomaly']] / 100:.2f}")
            for e, r in zip(a["entities"], a["rows"], strict=True)}
    got = {}
    for row in page.locator("tr.entity-row").all():
        cells = row.locator("td").all_text_contents()
        got[cells[0]] = (cells[2].strip(), cells[-1].strip())
    assert got == want
    # The anomaly score says what it is, and only a tail of 1 in 100 or rarer is coloured.
    assert "1 window in 100" in page.locator("th:has(button:text('Anomaly'))").get_attribute("title")
    hot = page.locator("tr.entity-row td.hot").all_text_contents()
    assert all(float(v) >= 0.99 for v in hot)
    assert len(hot) == sum(v[1] != "" and float(v[1]) >= 0.99 for v in want.values())
    # Keyboard: the sort buttons and entity links are reachable and work with Enter.
    page.focus("th button.sort >> text=Entity")
    page.keyboard.press("Enter")
    assert page.locator("th:has(button.sort:text('Entity'))").get_attribute("aria-sort") == \
        "ascending"
    first = page.locator("tr.entity-row td:first-child a").first
    assert first.text_content() == sorted(expected)[0]
    first.focus()
    page.keyboard.press("Enter")
    page.wait_for_url("**/entity?**")
    assert not errors, errors
    context.close()


MAP_PIXELS = """([points, P]) => {
    const c = document.querySelector("#map canvas"), dpr = devicePixelRatio;
    const W = c.width / dpr, H = c.height / dpr, ctx = c.getContext("2d");
    const css = getComputedStyle(document.documentElement);
    const rgb = (name) => { ctx.fillStyle = css.getPropertyValue("--" + name).trim();
                            const s = ctx.fillStyle;
                            return [1, 3, 5].map((i) => parseInt(s.slice(i, i + 2), 16)); };
    return points.map(([x, y, level]) => {
      const px = Math.round((P + x * (W - 2 * P)) * dpr), py = Math.round((P + (1 - y) * (H - 2 * P)) * dpr);
      return [Array.from(ctx.getImageData(px, py, 1, 1).data), rgb(level)];
    });
}"""


def test_fleet_page_takes_the_preloaded_state_and_draws_every_point(browser, server, demo):
    context, page, errors = _page(browser, viewport={"width": 1100, "height": 900},
                                  device_scale_factor=2)
    sockets = []
    page.on("websocket", lambda ws: sockets.append(ws.url))
    page.goto(server.url + "/")
    page.wait_for_function("performance.getEntriesByName('aura:fleet-drawn').length > 0")
    page.wait_for_function("document.body.dataset.live === 'ws'")
    # One request for the fleet data: the document's preload, taken by the script's fetch;
    # the socket then starts from that state.
    url = server.url + "/api/v1/console/fleet"
    assert page.evaluate(f"performance.getEntriesByName('{url}').length") == 1
    seq = page.evaluate("document.body.dataset.seq")
    assert sockets == [server.url.replace("http", "ws") + f"/api/v1/console/ws?since={seq}"]
    # Every entity's point is on the map (opaque at its centre); the warning one in the
    # theme's warning colour (drawn above the ok ones).
    [a] = context.request.get(url).json()["analyses"]
    col = {c: j for j, c in enumerate(a["columns"])}
    names = {-1: "undecided", 0: "ok", 1: "warning", 2: "critical"}
    points = [(r[col["x"]] / a["map_scale"], r[col["y"]] / a["map_scale"],
               "nodata" if r[col["nodata"]] else names[r[col["level"]]]) for r in a["rows"]]
    assert len(points) == 12 and {p[2] for p in points} == {"ok", "warning"}
    pixels = page.evaluate(MAP_PIXELS, [points, 10])
    assert all(px[3] == 255 for px, _ in pixels)
    [(warning, want)] = [pix for pix, p in zip(pixels, points, strict=True) if p[2] == "warning"]
    assert warning[:3] == want
    assert not errors, errors
    context.close()


def _two_groups_and_an_outlier(snap):
    """The snapshot with its entities' topology features in two clear groups (7 and 4), and
    the last entity far from both (fleet outlier score 0.9)."""
    r = snap.results[0]
    t = r.topology
    rng = np.random.default_rng(3)
    e, k = t.features.shape
    features = rng.normal(0.0, 0.05, (e, k))
    features[7:] += 5.0
    features[-1] += 200.0
    outlier = np.zeros(e)
    outlier[-1] = 0.9
    topology = dataclasses.replace(t, features=features, fleet_outlier=outlier)
    return dataclasses.replace(snap, results=(dataclasses.replace(r, topology=topology),))


def test_fleet_map_marks_clusters_and_draws_outliers_inside(browser, demo):
    cfg, snaps = demo
    s = Server(_two_groups_and_an_outlier(snaps[0]), cfg)
    try:
        context, page, errors = _page(browser, viewport={"width": 1100, "height": 900})
        page.goto(s.url + "/")
        page.wait_for_selector("#map-legend .cluster-item")
        canvas = page.locator("#map canvas")
        assert canvas.get_attribute("data-clusters") == "2"
        assert page.locator("#map-legend .cluster-item").all_text_contents() == \
            ["C1: 7 entities", "C2: 4 entities"]
        # Every point, the far outlier too, is inside the map: its centre at least a point's
        # radius plus the canvas padding from each border.
        assert canvas.get_attribute("data-points") == "12"
        margins = [float(v) for v in canvas.get_attribute("data-extent").split(",")]
        assert min(margins) > 10, margins
        [outlier] = page.locator("#map-legend a").all_text_contents()
        assert outlier.startswith(snaps[0].results[0].entities[-1][0] + " (fleet): ")
        page.locator("#map").screenshot(path=str(SHOTS / "fleet-map-clusters.png"))
        assert not errors, errors
        context.close()
    finally:
        s.close()


def test_entity_diagram_has_a_point_per_bar(browser, server):
    context, page, errors = _page(browser, viewport={"width": 1280, "height": 1000})
    query = "analysis=fleet&instance=host-03:9100"
    data = context.request.get(server.url + "/api/v1/console/entity?" + query).json()
    page.goto(server.url + "/entity?" + query)
    page.wait_for_selector("#diagram circle.pt")
    bars = len(data["diagram"]["h0"]) + len(data["diagram"]["h1"])
    assert bars > 0
    assert page.locator("#diagram circle.pt").count() == bars
    assert page.locator("#barcode line.bar").count() == bars
    # The barcode has a filtration-scale axis and bars thick and long enough to see; the
    # Betti curve is drawn as steps (no slanted segment) of whole counts >= 0.
    assert "filtration scale" in page.locator("#barcode").text_content()
    widths = page.locator("#barcode line.bar").evaluate_all(
        "ls => ls.map(l => [+l.getAttribute('stroke-width'), l.x2.baseVal.value - l.x1.baseVal.value])")
    assert all(w >= 4 and length >= 3 for w, length in widths)
    for path in page.locator("#betti path").all():
        d = path.get_attribute("d")
        assert d.startswith("M") and set(d[1:]) - set("HV0123456789.,") == set(), d
    curve = data["diagram"]["betti_curve"]
    assert all(v >= 0 and v == int(v) for v in curve["b0"] + curve["b1"])
    assert page.locator("tr.vote").count() == len(data["votes"])
    assert page.locator("#signals svg").count() == len(data["signals"])
    # Each signal's band is the entity's own baseline, so labelled with the reservoir's size.
    own = f"band: own baseline ({data['baseline']['windows']} healthy windows)"
    assert page.locator("#signals [data-band='own'] .band-label").all_text_contents() == \
        [own] * len(data["signals"])
    # The baseline's score diagram next to the current window's: a point per bar of each.
    base, cur = data["baseline"]["baseline"], data["baseline"]["current"]
    assert len(base["h0"]) == data["baseline"]["stored"]["h0"] > 0
    assert page.locator("#score-baseline circle.pt").count() == len(base["h0"]) + len(base["h1"])
    assert page.locator("#score-current circle.pt").count() == len(cur["h0"]) + len(cur["h1"])
    assert "healthy windows admitted" in page.locator("#baseline-note").text_content()
    assert page.locator("#clock").is_hidden()  # real time: no simulated-clock chip
    assert "(simulated)" not in page.locator("main").text_content()
    summary = page.locator("#summary").text_content()
    assert data["action"] in summary and data["explanation"] in summary
    # The time to failure says whose projection it is (the probabilities are the model's):
    # the supporters with a projection, here the leak's capacity agent.
    assert data["ttf"] is not None and "capacity" in data["ttf_by"], data["ttf_by"]
    assert all(v["ttf"] is not None for v in data["votes"] if v["agent"] in data["ttf_by"])
    assert f"(projected by {', '.join(data['ttf_by'])}; the failure probabilities" in summary
    page.screenshot(path=str(SHOTS / "entity.png"), full_page=True)
    page.goto(server.url + "/alerts")
    page.wait_for_selector("section[data-alert='AuraFailureRisk']")
    # A rule only Prometheus evaluates is not called inactive.
    down = page.locator("section[data-alert='AuraDown']").text_content()
    assert "not evaluated here" in down and "inactive" not in down, down
    page.screenshot(path=str(SHOTS / "alerts.png"), full_page=True)
    assert not errors, errors
    context.close()


def _ticks(chart, kind: str) -> list[tuple[float, str]]:
    """(data-t, text) of a chart's time-axis ticks of `kind` ("x": clock times, "day")."""
    return [(float(t.get_attribute("data-t")), t.text_content())
            for t in chart.locator(f"text.tick.{kind}").all()]


def test_entity_charts_have_clock_ticks_units_and_diagram_axes(browser, server):
    # Kathmandu is UTC+5:45: ticks on round UTC times would read :15 and :45 there, so round
    # local ticks prove the axis uses the page's local time, as every other time on it does.
    zone = "Asia/Kathmandu"
    context, page, errors = _page(browser, viewport={"width": 1280, "height": 1000},
                                  timezone_id=zone, locale="en-US")
    query = "analysis=fleet&instance=host-03:9100"
    data = context.request.get(server.url + "/api/v1/console/entity?" + query).json()
    page.goto(server.url + "/entity?" + query)
    page.wait_for_selector("#score-baseline circle.pt")
    start, step = data["window"]["start"], data["window"]["step"]
    charts = page.locator("#signals section.signal")
    assert charts.count() == len(data["signals"])
    for k, signal in enumerate(data["signals"]):
        chart = charts.nth(k)
        ticks = _ticks(chart, "x")
        end = start + (len(signal["values"]) - 1) * step  # a 2 h window: 30-minute ticks
        assert 3 <= len(ticks) <= 6, ticks
        assert all(start <= t <= end for t, _ in ticks), (start, end, ticks)
        assert {b[0] - a[0] for a, b in zip(ticks, ticks[1:], strict=False)} == {1800.0}, ticks
        local = [datetime.fromtimestamp(t, ZoneInfo(zone)) for t, _ in ticks]
        assert [text for _, text in ticks] == [d.strftime("%H:%M") for d in local]
        assert all(d.minute in (0, 30) for d in local), ticks
        assert chart.locator("text.tick.day").count() == 0  # one day: no dates
        # The unit the API knows, on the axis and by the name; none where it knows none.
        unit = chart.locator("text.axis-name.y").all_text_contents()
        heading = chart.locator("h3").text_content()
        if signal["unit"]:
            assert unit == [signal["unit"]], unit
            assert heading.startswith(f"{signal['name']} ({signal['unit']})"), heading
        else:
            assert unit == [] and "(" not in heading, heading
    units = {s["name"]: s["unit"] for s in data["signals"]}
    assert units["latency_seconds"] == "seconds" and units["memory"] is None, units
    history = page.locator("#history svg")
    assert history.locator("text.tick.x").count() >= 1
    assert history.locator("text.axis-name.y").all_text_contents() == ["0–1"]
    # Both persistence-diagram axes are named and carry values from 0, with the diagonal.
    for box in ("#diagram", "#score-current", "#score-baseline"):
        plot = page.locator(box + " svg.diagram")
        names = [plot.locator(f"text.axis-name.{a}").all_text_contents() for a in "xy"]
        assert names == [["birth, filtration scale (robust units)"],
                         ["death, filtration scale (robust units)"]], names
        for axis in "xy":
            values = [float(v) for v in plot.locator(f"text.tick.{axis}").all_text_contents()]
            assert len(values) >= 3 and values[0] == 0 and values == sorted(values), values
        assert plot.locator("line.diag").count() == 1
        assert plot.get_attribute("role") == "img" and "birth" in plot.get_attribute("aria-label")
    page.locator("section[aria-labelledby='h-signals']").screenshot(
        path=str(SHOTS / "entity-signals-axes.png"))
    # In the dark theme the ticks follow the theme's muted colour.
    tick = "getComputedStyle(document.querySelector('#diagram text.tick.x')).fill"
    light = page.evaluate(tick)
    page.click("#theme-toggle")
    assert page.evaluate(tick) != light
    assert not errors, errors
    context.close()
    # Seven hours behind UTC the same window runs over midnight: the first tick and the
    # first tick of the new day are dated.
    zone = "America/Phoenix"
    context, page, errors = _page(browser, viewport={"width": 1280, "height": 1000},
                                  timezone_id=zone, locale="en-US")
    page.goto(server.url + "/entity?" + query)
    page.wait_for_selector("#signals section.signal text.tick.day")
    chart = page.locator("#signals section.signal").first
    ticks, days = _ticks(chart, "x"), _ticks(chart, "day")
    midnight = next(t for t, text in ticks if text == "00:00")
    assert days == [(ticks[0][0], datetime.fromtimestamp(ticks[0][0], ZoneInfo(zone))
                     .strftime("%b %-d")),
                    (midnight, datetime.fromtimestamp(midnight, ZoneInfo(zone))
                     .strftime("%b %-d"))], (ticks, days)
    page.screenshot(path=str(SHOTS / "entity-axes-phoenix.png"), full_page=True)
    assert not errors, errors
    context.close()


def test_dark_mode_toggles(browser, server):
    context, page, errors = _page(browser, viewport={"width": 1280, "height": 900})
    page.goto(server.url + "/")
    page.wait_for_selector("tr.entity-row")
    bg = "getComputedStyle(document.body).backgroundColor"
    light = page.evaluate(bg)
    page.click("#theme-toggle")
    assert page.evaluate("document.documentElement.dataset.theme") == "dark"
    dark = page.evaluate(bg)
    assert light != dark
    page.screenshot(path=str(SHOTS / "fleet-dark.png"), full_page=True)
    page.reload()  # the choice is remembered
    page.wait_for_selector("tr.entity-row")
    assert page.evaluate(bg) == dark
    page.click("#theme-toggle")
    assert page.evaluate(bg) == light
    context.close()
    # The system preference alone gives the dark theme too.
    context, page, errors = _page(browser, color_scheme="dark")
    page.goto(server.url + "/")
    assert page.evaluate(bg) == dark
    context.close()


def test_phone_width_has_no_horizontal_scroll(browser, server):
    context, page, errors = _page(browser, viewport={"width": 390, "height": 844},
                                  device_scale_factor=1, is_mobile=True, has_touch=True)
    for path, ready in (("/", "tr.entity-row"),
                        ("/entity?analysis=fleet&instance=host-03:9100", "#diagram circle.pt"),
                        ("/alerts", "section[data-alert]")):
        page.goto(server.url + path)
        page.wait_for_selector(ready)
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, (path, width)
        if path.startswith("/entity"):
            # The agents' votes stack as cards: every vote's reasons, action and time to
            # failure are on screen, none scrolled out of its panel.
            votes = page.locator("tr.vote").all()
            assert votes
            for vote in votes:
                for label in ("Action", "Time to failure", "Reasons"):
                    cell = vote.locator(f"td[data-label='{label}']")
                    box = cell.bounding_box()
                    assert box and box["x"] >= 0 and box["x"] + box["width"] <= 390, (label, box)
                    assert cell.is_visible()
                reasons = vote.locator("td.reasons")
                assert reasons.evaluate("e => e.scrollWidth <= e.clientWidth + 1")
            assert page.evaluate("document.querySelector('#votes').closest('.table-wrap')"
                                 ".scrollWidth <= 390")
            page.screenshot(path=str(SHOTS / "entity-390.png"), full_page=True)
    page.goto(server.url + "/")
    page.wait_for_selector("tr.entity-row")
    page.screenshot(path=str(SHOTS / "fleet-390.png"), full_page=True)
    context.close()


def _stopped(snap, instance: str):
    """The snapshot with `instance`'s last samples missing (its scrapes stopped)."""
    r = snap.results[0]
    values = r.window.values.copy()
    values[r.entities.index((instance,)), :, -3:] = np.nan
    window = dataclasses.replace(r.window, values=values)
    return dataclasses.replace(snap, results=(dataclasses.replace(r, window=window),))


def test_xss_label_stays_text_and_a_silent_entity_is_no_data(browser, demo):
    cfg, snaps = demo
    snap = _stopped(with_entity_names(snaps[0], {"host-03:9100": XSS}), "host-05:9100")
    s = Server(snap, cfg)
    try:
        context, page, errors = _page(browser)
        page.goto(s.url + "/")
        page.wait_for_selector("tr.entity-row")
        row = page.locator("tr.entity-row", has_text="host-05:9100")
        assert row.locator(".badge").text_content() == "no data"
        assert "no data 1" in page.locator("#counts").text_content()
        assert XSS in page.locator("#fleet-body").text_content()
        link = page.get_by_text(XSS, exact=True)
        link.click()
        page.wait_for_selector("#diagram circle.pt")
        assert XSS in page.locator("#entity-name").text_content()
        assert page.evaluate("window.__xss") is None
        assert page.locator("script:not([src])").count() == 0
        assert page.locator("img[src=x]").count() == 0
        context.close()
    finally:
        s.close()


def test_basic_auth_protects_page_assets_and_websocket(browser, demo, tmp_path):
    cfg, snaps = demo
    s = Server(snaps[0], cfg, basic_auth_config(tmp_path))
    try:
        context, page, errors = _page(browser)
        for path in ("/", "/entity?analysis=fleet&instance=host-03:9100",
                     "/console/static/fleet.js", "/api/v1/console/fleet"):
            assert context.request.get(s.url + path).status == 401
        context.close()
        context, page, errors = _page(browser, http_credentials={"username": "prom",
                                                                 "password": "s3cret"})
        sockets = []
        page.on("websocket", lambda ws: sockets.append(ws.url))
        assert page.goto(s.url + "/").status == 200
        page.wait_for_selector("tr.entity-row")
        # The WebSocket handshake carried the credentials (else the page falls back to polling).
        page.wait_for_function("document.body.dataset.live === 'ws'", timeout=5000)
        # So did the preloaded fetch of the fleet state: the socket starts from its state.
        assert len(sockets) == 1 and "?since=" in sockets[0]
        context.close()
    finally:
        s.close()


def test_alerts_page_shows_the_real_alertmanagers_alerts_and_silences(browser, demo, tmp_path):
    from exporter.config import AlertmanagerConfig
    from tests.promstack import AlertmanagerProcess, ensure_binaries, free_port

    ensure_binaries()
    cfg, snaps = demo
    with AlertmanagerProcess(tmp_path / "am", AM_CONFIG) as am:
        silence = seed_alertmanager(am.url)
        s = Server(snaps[0], dataclasses.replace(
            cfg, alertmanager=AlertmanagerConfig(url=am.url)))
        try:
            context, page, errors = _page(browser, viewport={"width": 1280, "height": 900})
            page.goto(s.url + "/alerts")
            page.wait_for_selector("tr.am-alert-row")
            [row] = page.locator("tr.am-alert-row").all()  # NodeDown is not AURA's: not shown
            cells = row.locator("td").all_text_contents()
            assert cells[0] == "AuraFailurePredicted" and XSS in cells[1]
            assert page.evaluate("window.__xss") is None  # the label stayed text
            href = row.locator("a").get_attribute("href")
            assert href.startswith(am.url + "/#/silences/new?filter=")
            [sil] = page.locator("tr.am-silence-row").all()
            assert "maintenance" in sil.text_content()
            assert sil.locator("a").get_attribute("href") == f"{am.url}/#/silences/{silence}"
            assert f"1 AURA alerts and 1 silences in {am.url}" in \
                page.locator("#alertmanager").text_content()
            page.screenshot(path=str(SHOTS / "alerts-alertmanager.png"), full_page=True)
            assert not errors, errors
            context.close()
        finally:
            s.close()
    # Alertmanager unreachable: the panel says so, AURA's own alerts still show.
    s = Server(snaps[0], dataclasses.replace(cfg, alertmanager=AlertmanagerConfig(
        url=f"http://127.0.0.1:{free_port()}", timeout=3)))
    try:
        context, page, errors = _page(browser)
        page.goto(s.url + "/alerts")
        page.wait_for_selector("#alertmanager .am-error")
        assert "Could not read Alertmanager" in page.locator(".am-error").text_content()
        assert page.locator("section[data-alert]").count() > 0
        assert not errors, errors
        context.close()
    finally:
        s.close()


def test_demo_story_panel_tells_prediction_then_arrival_on_a_simulated_clock(browser, demo):
    from exporter.console.story import Failure, Story

    cfg, snaps = demo
    at = snaps[0].created + 3 * 3600
    story = Story((Failure("fleet", {"instance": "host-03:9100"}, "memory_leak", at,
                           at + 1800),), speed=60.0)
    s = Server(snaps[0], cfg, story=story)
    try:
        context, page, errors = _page(browser, viewport={"width": 1280, "height": 900})
        page.goto(s.url + "/")
        page.wait_for_selector("#story:not([hidden]) .story-head")
        data = context.request.get(s.url + "/api/v1/console/story").json()
        head = page.locator("#story .story-head").text_content()
        assert data["prediction"]["level"] >= 1  # the leaking host is warned about
        assert head.startswith("host-03:9100 is predicted to fail") and "(simulated)" in head
        link = page.locator("#story .story-head a")
        assert link.get_attribute("href") == "/entity?analysis=fleet&instance=host-03%3A9100"
        body = page.locator("#story").text_content()
        assert f"recommended action: {data['prediction']['action']}" in body
        assert f"top signal: {data['prediction']['signal']}" in body
        # The clock: a chip in the header, and every time on the page says "simulated".
        page.wait_for_selector("#clock:not([hidden])")
        # The chip gets its time with the fleet state (which may land after the story).
        page.wait_for_function("document.getElementById('clock').textContent.includes('): ')")
        assert page.locator("#clock").text_content().startswith("Simulated time (60× real): ")
        assert "(simulated)" in page.locator("#health").text_content()
        assert "runs 60× faster" in body and "one real minute shows 1h" in body
        page.screenshot(path=str(SHOTS / "fleet-story.png"), full_page=False)
        # The failure arrives (a later snapshot): the panel says how far ahead AURA warned.
        s.snap = dataclasses.replace(snaps[0], created=at + 60)
        page.reload()
        page.wait_for_selector("#story .story-head >> text=arrived at")
        head = page.locator("#story .story-head").text_content()
        assert head.startswith("The memory leak failure of host-03:9100 arrived at ")
        assert "did not warn" in head or "before it arrived (its forecast then" in head
        page.screenshot(path=str(SHOTS / "fleet-story-arrived.png"), full_page=False)
        # The entity page shows the same clock.
        page.goto(s.url + "/entity?analysis=fleet&instance=host-03:9100")
        page.wait_for_selector("#score-baseline circle.pt")
        assert page.locator("#clock").is_visible()
        assert "(simulated)" in page.locator("#baseline-note").text_content()
        assert not errors, errors
        context.close()
        # The clock chip and the story still fit a phone.
        context, page, errors = _page(browser, viewport={"width": 390, "height": 844},
                                      is_mobile=True, has_touch=True)
        page.goto(s.url + "/")
        page.wait_for_selector("#clock:not([hidden])")
        page.wait_for_selector("#story:not([hidden]) .story-head")
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        page.screenshot(path=str(SHOTS / "fleet-story-390.png"))
        context.close()
    finally:
        s.close()
