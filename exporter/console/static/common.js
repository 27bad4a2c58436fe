/* AURA console, shared helpers. Data is only ever inserted with textContent or attributes,
   never as HTML, so label values (an entity named "<script>") stay text. */
"use strict";
const AURA = (() => {
  const SVG = "http://www.w3.org/2000/svg";
  const LEVELS = { "-1": "undecided", "0": "ok", "1": "warning", "2": "critical" };

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "text") node.textContent = String(v);
      else if (k === "onclick") node.addEventListener("click", v);
      else node.setAttribute(k, v === true ? "" : String(v));
    }
    for (const c of children) {
      if (c === null || c === undefined) continue;
      node.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return node;
  }

  function svg(tag, attrs, ...children) {
    const node = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined) continue;
      if (k === "text") node.textContent = String(v); else node.setAttribute(k, String(v));
    }
    for (const c of children) if (c) node.append(c);
    return node;
  }

  function levelName(level, nodata) {
    if (nodata) return "nodata";
    if (level === null || level === undefined) return "undecided";
    return LEVELS[String(level)] || "undecided";
  }

  function badge(level, nodata) {
    const name = levelName(level, nodata);
    return el("span", { class: "badge lvl-" + name, text: name === "nodata" ? "no data" : name });
  }

  function pct(v) { return v === null || v === undefined ? "" : (v / 100).toFixed(2); }
  function num(v, digits) { return v === null || v === undefined ? "" : Number(v).toFixed(digits); }

  function duration(seconds) {
    if (seconds === null || seconds === undefined || !isFinite(seconds)) return "";
    let m = Math.round(seconds / 60);
    if (m < 1) return "<1m";
    const d = Math.floor(m / 1440); m -= d * 1440;
    const h = Math.floor(m / 60); m -= h * 60;
    return (d ? d + "d" : "") + (h ? h + "h" : "") + (m || (!d && !h) ? m + "m" : "");
  }

  /* The clock the times are on: "real", or "simulated" (aura demo: the clock started at the
     real time and runs data-speed times faster). Every time shown says which. */
  function clock() {
    const b = document.body;
    return { simulated: !!b && b.dataset.clock === "simulated", speed: b ? Number(b.dataset.speed || 1) : 1 };
  }

  /* A Unix time as local date and time; `real`: a wall-clock time (the exporter's own
     timestamps, Alertmanager's), so labelled when the pages run on a simulated clock. */
  function time(ts, real) {
    if (!ts) return "";
    const text = new Date(ts * 1000).toLocaleString();
    if (!clock().simulated) return text;
    return text + (real ? " (real time)" : " (simulated)");
  }

  /* A Unix time's clock time (HH:MM) and day ("Jan 15"), local and in the browser's locale
     as `time` writes them: the ticks of time axes. */
  function clockTime(ts) {
    return new Date(ts * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", hourCycle: "h23" });
  }
  function day(ts) { return new Date(ts * 1000).toLocaleDateString([], { month: "short", day: "numeric" }); }

  // Spacings of time-axis ticks, seconds: the first that fits, so ticks land on round times.
  const TICK_STEPS = [60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400];

  /* Evenly spaced Unix times within [t0, t1], at most `most` of them, on round local clock
     times (14:00, 14:30; midnight for days). */
  function clockTicks(t0, t1, most) {
    const tickStep = TICK_STEPS.find((s) => (t1 - t0) / s < most) ||
      86400 * Math.ceil((t1 - t0) / 86400 / most);
    const offset = -new Date(t0 * 1000).getTimezoneOffset() * 60;  // local time = UTC + offset
    const ticks = [];
    for (let t = Math.ceil((t0 + offset) / tickStep) * tickStep - offset; t <= t1; t += tickStep) ticks.push(t);
    return ticks;
  }

  /* The header's clock chip (simulated clocks only): what the clock is, and its time now. */
  function showClock(now) {
    const chip = document.getElementById("clock"), c = clock();
    if (!chip || !c.simulated) return;
    chip.hidden = false;
    chip.title = "aura demo runs a simulated clock: it started at your real time and runs " + c.speed +
      "× faster (one real second is " + duration(c.speed) + " simulated). Every time on these pages is simulated time.";
    chip.textContent = "Simulated time (" + c.speed + "× real)" + (now ? ": " + new Date(now * 1000).toLocaleTimeString() : "");
  }

  function entityHref(analysis, labelNames, values) {
    const q = new URLSearchParams({ analysis });
    labelNames.forEach((n, i) => q.append(n, values[i]));
    return "/entity?" + q.toString();
  }

  /* `preloaded`: the document preloads `url` (routes.PRELOAD); the default cache mode lets
     the fetch take that response. */
  async function getJSON(url, preloaded) {
    const r = await fetch(url, { credentials: "same-origin", cache: preloaded ? "default" : "no-store" });
    if (!r.ok) throw new Error(url + ": HTTP " + r.status);
    return r.json();
  }

  function gauge(value) {
    const g = el("span", { class: "gauge", "aria-hidden": "true" });
    const fill = el("span");
    fill.style.width = Math.max(0, Math.min(100, value || 0)) + "%";
    g.append(fill);
    return g;
  }

  /* Theme: the system preference unless the toggle chose one (kept in localStorage). */
  function applyTheme() {
    const chosen = localStorage.getItem("aura-theme");
    if (chosen) document.documentElement.dataset.theme = chosen;
    else delete document.documentElement.dataset.theme;
  }
  function currentTheme() {
    return document.documentElement.dataset.theme ||
      (matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light");
  }
  function setupTheme() {
    applyTheme();
    const button = document.getElementById("theme-toggle");
    if (!button) return;
    const label = () => { button.textContent = currentTheme() === "dark" ? "Light theme" : "Dark theme"; };
    label();
    button.addEventListener("click", () => {
      localStorage.setItem("aura-theme", currentTheme() === "dark" ? "light" : "dark");
      applyTheme(); label();
    });
  }

  /* The WebSocket with a polling fallback: onMessage(msg) for every update; while the socket
     is down, poll() runs every pollSeconds and the socket is retried with backoff. `since`:
     the state the page already holds (its seq), so the first connection does not send it
     again (later ones always start with the full state: the server may have restarted). */
  function live({ onMessage, poll, pollSeconds, status, since }) {
    let socket = null, timer = null, retry = 1;
    const setStatus = (mode) => {
      if (!status) return;
      status.textContent = mode === "ws" ? "live (WebSocket)" : "polling every " + pollSeconds + " s";
      status.classList.toggle("polling", mode !== "ws");
      document.body.dataset.live = mode;
    };
    const startPolling = () => {
      setStatus("poll");
      if (!timer) poll().catch(() => {});
      if (!timer) timer = setInterval(() => poll().catch(() => {}), pollSeconds * 1000);
    };
    const connect = () => {
      const proto = location.protocol === "https:" ? "wss://" : "ws://";
      const query = since ? "?since=" + encodeURIComponent(since) : "";
      since = null;
      try { socket = new WebSocket(proto + location.host + "/api/v1/console/ws" + query); }
      catch (e) { startPolling(); return; }
      socket.onopen = () => {
        retry = 1; setStatus("ws");
        if (timer) { clearInterval(timer); timer = null; }
      };
      socket.binaryType = "arraybuffer";
      // Updates are gzip-compressed JSON (compressed once on the server for every client).
      let chain = Promise.resolve();
      socket.onmessage = (ev) => {
        chain = chain.then(async () => {
          const text = typeof ev.data === "string" ? ev.data : await new Response(
            new Blob([ev.data]).stream().pipeThrough(new DecompressionStream("gzip"))).text();
          onMessage(JSON.parse(text));
        }).catch((e) => console.error(e));
      };
      socket.onclose = () => {
        startPolling();
        setTimeout(connect, Math.min(60, retry) * 1000); retry *= 2;
      };
    };
    connect();
  }

  /* A line chart: series [{values, cls, label}] over x = index (or `times`), optional band
     [lo[], hi[]], optional horizontal capacity line. `step`: each value holds until the next
     x (a step function, drawn with horizontal and vertical segments only). `timeAxis`:
     `times` are Unix times, ticked at round local clock times (clockTicks), the day under
     the first tick and each new day's when the span crosses days. `xLabel`: the x axis'
     name, drawn under it (with its first and last x unless a time axis). `yLabel`: the y
     axis' unit or name, above it. Returns the <svg>. */
  function lineChart({ series, times, band, capacity, yMin, yMax, width, height, label, step, timeAxis, xLabel, yLabel }) {
    const all = [];
    series.forEach((s) => s.values.forEach((v) => { if (v !== null) all.push(v); }));
    if (band) band.forEach((b) => b.forEach((v) => { if (v !== null) all.push(v); }));
    if (capacity !== null && capacity !== undefined) all.push(capacity);
    let lo = yMin !== undefined ? yMin : Math.min(...all, 0);
    let hi = yMax !== undefined ? yMax : Math.max(...all, lo + 1e-9);
    if (!all.length) { lo = 0; hi = 1; }
    if (hi <= lo) hi = lo + 1;
    const n = Math.max(1, ...series.map((s) => s.values.length));
    const xs = times && times.length ? times : null;
    const x0 = xs ? xs[0] : 0, x1 = xs ? xs[xs.length - 1] : n - 1;
    const clocked = !!(timeAxis && xs), days = clocked && day(x0) !== day(x1);
    const W = width || 360, H = height || 120, L = 34, R = clocked ? 16 : 6, T = yLabel ? 20 : 6;
    const B = 16 + (clocked ? 6 + (days ? 10 : 0) : 0) + (xLabel ? 12 : 0);
    const X = (x) => L + (x - x0) / Math.max(1e-9, x1 - x0) * (W - L - R);
    const Xi = (i) => X(xs ? xs[i] : i);
    const Y = (v) => T + (1 - (v - lo) / (hi - lo)) * (H - T - B);
    const root = svg("svg", { class: "chart", viewBox: `0 0 ${W} ${H}`, role: "img",
      "aria-label": (label || "chart") + (yLabel ? " (" + yLabel + ")" : "") +
        (clocked ? ", " + time(x0) + " to " + time(x1) : "") });
    root.append(svg("line", { class: "axis", x1: L, x2: W - R, y1: H - B, y2: H - B }));
    root.append(svg("line", { class: "axis", x1: L, x2: L, y1: T, y2: H - B }));
    for (const [v, text] of niceTicks(lo, hi)) {
      root.append(svg("line", { class: "axis", x1: L - 3, x2: L, y1: Y(v), y2: Y(v) }),
        svg("text", { class: "tick y", x: L - 5, y: Y(v) + 3, "text-anchor": "end", text }));
    }
    if (yLabel) root.append(svg("text", { class: "axis-name y", x: 2, y: 9, text: yLabel }));
    if (clocked) {
      let lastDay = null;
      for (const t of clockTicks(x0, x1, Math.max(2, Math.floor((W - L - R) / 60)))) {
        root.append(svg("line", { class: "axis", x1: X(t), x2: X(t), y1: H - B, y2: H - B + 3 }),
          svg("text", { class: "tick x", "data-t": t, x: X(t), y: H - B + 12, "text-anchor": "middle", text: clockTime(t) }));
        if (days && day(t) !== lastDay) {
          root.append(svg("text", { class: "tick day", "data-t": t, x: X(t), y: H - B + 22, "text-anchor": "middle", text: day(t) }));
        }
        lastDay = day(t);
      }
    } else if (xLabel) {
      root.append(svg("text", { x: L, y: H - B + 12, text: fmtAxis(x0) }),
        svg("text", { x: W - R, y: H - B + 12, "text-anchor": "end", text: fmtAxis(x1) }));
    }
    if (xLabel) root.append(svg("text", { class: "axis-name x", x: (L + W - R) / 2, y: H - 3, "text-anchor": "middle", text: xLabel }));
    if (band && band[0].length) {
      const up = [], down = [];
      band[1].forEach((v, i) => { if (v !== null && band[0][i] !== null) up.push(`${Xi(i)},${Y(v)}`); });
      for (let i = band[0].length - 1; i >= 0; i--) {
        if (band[0][i] !== null && band[1][i] !== null) down.push(`${Xi(i)},${Y(band[0][i])}`);
      }
      if (up.length) root.append(svg("polygon", { class: "band", points: up.concat(down).join(" ") }));
    }
    if (capacity !== null && capacity !== undefined) {
      root.append(svg("line", { class: "capacity", x1: L, x2: W - R, y1: Y(capacity), y2: Y(capacity) },
        svg("title", { text: "capacity " + capacity })));
    }
    series.forEach((s, k) => {
      let d = "", pen = false;
      s.values.forEach((v, i) => {
        if (v === null) { pen = false; return; }
        if (step && pen) d += "H" + Xi(i).toFixed(1) + "V" + Y(v).toFixed(1);
        else d += (pen ? "L" : "M") + Xi(i).toFixed(1) + "," + Y(v).toFixed(1);
        pen = true;
      });
      if (d) root.append(svg("path", { class: s.cls || "s" + k, d }, svg("title", { text: s.label || "" })));
      // A single point draws no line: mark it.
      if (s.values.length === 1 && s.values[0] !== null) {
        root.append(svg("circle", { class: s.cls || "s" + k, cx: Xi(0), cy: Y(s.values[0]), r: 2.5 }));
      }
    });
    return root;
  }

  /* Round values within [lo, hi] (1, 2 or 5 × 10^k apart, two to five of them), each with
     its label: as many decimals as the spacing needs, k/M for thousands and millions. */
  function niceTicks(lo, hi) {
    const raw = (hi - lo) / 4, mag = 10 ** Math.floor(Math.log10(raw));
    const spacing = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw * (1 - 1e-9));
    const big = Math.max(Math.abs(lo), Math.abs(hi));
    const [unit, suffix] = big >= 1e6 ? [1e6, "M"] : big >= 1e3 ? [1e3, "k"] : [1, ""];
    const digits = Math.max(0, -Math.floor(Math.log10(spacing / unit) + 1e-9));
    const ticks = [];
    for (let k = Math.ceil(lo / spacing - 1e-9); k * spacing <= hi + spacing * 1e-9; k++) {
      const v = k * spacing;
      ticks.push([v, v === 0 ? "0" : (v / unit).toFixed(digits) + suffix]);
    }
    return ticks;
  }

  function fmtAxis(v) {
    const a = Math.abs(v);
    if (a >= 1e6) return (v / 1e6).toFixed(1) + "M";
    if (a >= 1e3) return (v / 1e3).toFixed(1) + "k";
    if (a >= 10 || v === 0) return v.toFixed(0);
    return v.toPrecision(2);
  }

  function legend(items) {
    return el("div", { class: "legend" }, ...items.map(([cls, text]) =>
      el("span", {}, el("i", { class: cls }), text)));
  }

  return { el, svg, badge, levelName, pct, num, duration, time, clock, showClock, entityHref, getJSON, gauge,
           setupTheme, live, lineChart, niceTicks, legend, LEVELS };
})();
document.addEventListener("DOMContentLoaded", () => {
  AURA.setupTheme();
  AURA.showClock();
  for (const a of document.querySelectorAll("header.top nav a")) {
    if (a.getAttribute("href") === location.pathname) a.setAttribute("aria-current", "page");
  }
});
