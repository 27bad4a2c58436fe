/* AURA console: the fleet page. State = the server's compact rows (exporter/console/views.py),
   updated in place by WebSocket diffs; the table shows one page of the filtered, sorted rows. */
"use strict";
(() => {
  const { el, badge, levelName, pct, duration, entityHref, getJSON, gauge, live, legend } = AURA;
  const PAGE = 100;
  const state = { seq: 0, created: 0, analyses: new Map(), order: [] };
  const view = { sort: "risk", dir: -1, page: 0 };
  let drawn = false;  // the first state has been rendered (performance marks, see apply)
  const COLUMNS = [
    ["entity", "Entity"], ["level", "Level"], ["risk", "Risk"], ["p_1h", "P(1h)"],
    ["p_2h", "P(2h)"], ["p_4h", "P(4h)"], ["ttf", "Time to failure"], ["action", "Action"],
    ["top", "Top signal"], ["anomaly", "Anomaly"],
  ];
  const NARROW = new Set(["p_1h", "p_2h", "p_4h", "top", "anomaly", "action"]);
  const HINTS = {
    anomaly: "Tail probability of this window's topology under the entity's own history: 0.99 = as unusual as 1 window in 100. Values up to ~0.9 are ordinary; highlighted from 0.99.",
    ttf: "Time until the forecast crosses the failure threshold (whole minutes).",
  };
  const ANOMALY_HOT = 99;  // percent: highlighted from 0.99 (1 window in 100)

  function setFull(a) {
    state.analyses.set(a.name, {
      head: a, col: Object.fromEntries(a.columns.map((c, i) => [c, i])),
      entities: a.entities, rows: a.rows, labels: a.entities.map((e) => e.join(" ")),
    });
  }

  function apply(msg) {
    if (!drawn) performance.mark("aura:fleet-data");
    if (msg.type === "full") {
      state.analyses.clear();
      msg.analyses.forEach(setFull);
    } else if (msg.type === "diff") {
      if (msg.base !== state.seq) { refetch(); return; }
      for (const a of msg.analyses) {
        if (a.full) { setFull(a); continue; }
        const cur = state.analyses.get(a.name);
        if (!cur) { refetch(); return; }
        for (const [col, { i, v }] of Object.entries(a.cols)) {
          const j = cur.col[col];
          let row = -1;
          i.forEach((gap, k) => { row += gap; cur.rows[row][j] = v[k]; });
        }
      }
      const names = new Set(msg.analyses.map((a) => a.name));
      for (const name of [...state.analyses.keys()]) if (!names.has(name)) state.analyses.delete(name);
    } else return;
    state.seq = msg.seq; state.created = msg.created;
    document.body.dataset.seq = String(msg.seq);
    AURA.showClock(msg.created);
    renderHealth(msg.health); renderCounts(msg.counts); renderFilters(); render(); renderMap();
    if (!drawn) {
      drawn = true;
      performance.mark("aura:fleet-rendered");
      // After the frame that shows it is painted: what bench_console.py times as the first render.
      requestAnimationFrame(() => setTimeout(() => performance.mark("aura:fleet-drawn")));
    }
  }

  async function refetch(preloaded) { apply(await getJSON("/api/v1/console/fleet", preloaded)); }

  function value(a, row, key) {
    if (key === "level") {
      const nodata = row[a.col.nodata] === 1;
      return nodata ? -2 : (row[a.col.level] === null ? -1 : row[a.col.level]);
    }
    const i = a.col[key];
    return i === undefined ? null : row[i];
  }

  function flat() {
    const out = [];
    const q = document.getElementById("filter").value.trim().toLowerCase();
    const lf = document.getElementById("level-filter").value;
    const af = document.getElementById("analysis-filter").value;
    for (const [name, a] of state.analyses) {
      if (af && af !== name) continue;
      a.rows.forEach((row, i) => {
        const lvl = levelName(row[a.col.level], row[a.col.nodata] === 1);
        if (lf === "atrisk" ? !(lvl === "warning" || lvl === "critical") : lf && lvl !== lf) return;
        const label = a.labels[i];
        if (q) {
          const action = row[a.col.action] === null ? "" : a.head.actions[row[a.col.action]];
          const top = row[a.col.top] === null ? "" : a.head.signals[row[a.col.top]];
          if (!(label + " " + name + " " + action + " " + top).toLowerCase().includes(q)) return;
        }
        out.push({ a, name, i, row, label });
      });
    }
    const key = view.sort, dir = view.dir;
    out.sort((x, y) => {
      let vx, vy;
      if (key === "entity") { vx = x.label; vy = y.label; return dir * vx.localeCompare(vy); }
      vx = value(x.a, x.row, key); vy = value(y.a, y.row, key);
      if (key === "action" || key === "top") {
        vx = vx === null ? "" : (key === "action" ? x.a.head.actions : x.a.head.signals)[vx];
        vy = vy === null ? "" : (key === "action" ? y.a.head.actions : y.a.head.signals)[vy];
        return dir * String(vx).localeCompare(String(vy));
      }
      if (vx === vy) return x.label.localeCompare(y.label);
      if (vx === null) return 1;
      if (vy === null) return -1;
      return dir * (vx - vy);
    });
    return out;
  }

  function renderHead() {
    const tr = document.getElementById("fleet-head");
    tr.replaceChildren();
    for (const [key, title] of COLUMNS) {
      const th = el("th", { scope: "col", class: NARROW.has(key) ? "hide-narrow" : null, title: HINTS[key] || null,
        "aria-sort": view.sort === key ? (view.dir > 0 ? "ascending" : "descending") : "none" });
      th.append(el("button", { class: "sort" + (HINTS[key] ? " hint" : ""), type: "button", text: title, onclick: () => {
        view.dir = view.sort === key ? -view.dir : (key === "entity" || key === "ttf" ? 1 : -1);
        view.sort = key; view.page = 0; renderHead(); render();
      } }));
      tr.append(th);
    }
  }

  function render() {
    const rows = flat();
    const total = [...state.analyses.values()].reduce((n, a) => n + a.rows.length, 0);
    const pages = Math.max(1, Math.ceil(rows.length / PAGE));
    view.page = Math.min(view.page, pages - 1);
    const start = view.page * PAGE, page = rows.slice(start, start + PAGE);
    const body = document.getElementById("fleet-body");
    const frag = document.createDocumentFragment();
    for (const r of page) {
      const a = r.a, row = r.row, c = a.col;
      const nodata = row[c.nodata] === 1;
      const link = el("a", { href: entityHref(r.name, a.head.labels, a.entities[r.i]), text: r.label });
      const cells = [
        el("td", {}, link, state.analyses.size > 1 ? el("span", { class: "muted small", text: " " + r.name }) : null),
        el("td", {}, badge(row[c.level], nodata)),
        el("td", {}, gauge(row[c.risk]), pct(row[c.risk])),
      ];
      for (const h of ["1h", "2h", "4h"]) {
        const i = c["p_" + h];
        cells.push(el("td", { class: "hide-narrow" }, i === undefined ? "" : pct(row[i])));
      }
      cells.push(el("td", {}, duration(row[c.ttf])));
      cells.push(el("td", { class: "hide-narrow", text: row[c.action] === null ? "" : a.head.actions[row[c.action]] }));
      cells.push(el("td", { class: "hide-narrow", text: row[c.top] === null ? "" : a.head.signals[row[c.top]] }));
      const score = row[c.anomaly];
      cells.push(el("td", { class: "hide-narrow" + (score !== null && score >= ANOMALY_HOT ? " hot" : "") }, pct(score)));
      frag.append(el("tr", { class: "entity-row", "data-level": levelName(row[c.level], nodata) }, ...cells));
    }
    body.replaceChildren(frag);
    const shown = rows.length ? `${start + 1}–${start + page.length}` : "0";
    document.getElementById("shown").textContent =
      `${shown} of ${rows.length}` + (rows.length !== total ? ` (filtered from ${total})` : "");
    document.getElementById("prev").disabled = view.page === 0;
    document.getElementById("next").disabled = view.page >= pages - 1;
  }

  function renderHealth(h) {
    const box = document.getElementById("health");
    if (!h) return;
    const up = h.up === null ? "unknown" : h.up >= 1 ? "1 (source queries ok)" : "0 (source queries failing)";
    // Two clocks: a cycle's data time is the evaluation time of its windows (the demo's
    // simulated clock, or the time the cycle started); the exporter stamps its own health
    // metrics with its wall clock (aura_last_cycle_success_timestamp_seconds).
    const items = [
      ["aura_up", up], ["ready", h.ready ? "yes" : "no (first cycle running)"],
      ["last cycle (data time)", AURA.time(h.created),
       "The evaluation time of the latest cycle's windows: the data's clock (in aura demo, the simulated clock)."],
      ["cycle time", h.cycle_seconds === null ? "" : h.cycle_seconds.toFixed(2) + " s"],
      ["last fully successful cycle (wall time)", AURA.time(h.last_success, true),
       "When the exporter last finished a cycle without a stage failure, on its own wall clock (aura_last_cycle_success_timestamp_seconds)."],
      ["cycles", h.cycles === null ? "" : String(h.cycles)],
      ["stage failures", String(h.failures)],
    ];
    box.replaceChildren(...items.map(([k, v, title]) =>
      el("span", { class: "stat", title: title || null }, el("span", { class: "muted", text: k + ": " }), el("b", { text: v }))));
  }

  function renderCounts(counts) {
    const box = document.getElementById("counts");
    if (!counts) return;
    const order = ["critical", "warning", "ok", "undecided", "nodata"];
    box.replaceChildren(...order.map((k) => el("span", { class: "badge lvl-" + k,
      text: (k === "nodata" ? "no data" : k) + " " + counts[k] })));
  }

  function renderFilters() {
    const sel = document.getElementById("analysis-filter");
    const names = [...state.analyses.keys()];
    const have = [...sel.options].slice(1).map((o) => o.value);
    if (names.join("\n") === have.join("\n")) return;
    const keep = sel.value;
    sel.replaceChildren(el("option", { value: "", text: "all" }), ...names.map((n) => el("option", { value: n, text: n })));
    sel.value = names.includes(keep) ? keep : "";
  }

  /* The map is a canvas (10 000 SVG nodes took seconds to lay out): points are drawn in the
     theme's level colours, a click opens the nearest entity within a few pixels, and the
     outliers are also listed as links below it (the keyboard path; the table is the other).
     The points live in typed arrays (CSS px), their labels and links are made only when
     needed (hover, click, the outlier list): 10 000 objects and URLSearchParams per update
     were a third of the first render. */
  const DRAW_ORDER = ["ok", "undecided", "nodata", "warning", "critical"];  // last on top
  const map = { n: 0, x: new Float32Array(0), y: new Float32Array(0), level: new Uint8Array(0),
    ringed: new Uint8Array(0), row: new Int32Array(0), group: new Int32Array(0), analysis: [],
    name: [], groups: [] };

  function pointLabel(j) {
    const a = map.analysis[j];
    return a.labels[map.row[j]] + " (" + map.name[j] + "): " + DRAW_ORDER[map.level[j]];
  }
  function pointHref(j) {
    const a = map.analysis[j];
    return entityHref(map.name[j], a.head.labels, a.entities[map.row[j]]);
  }

  function placePoints(W, H) {
    const P = 10;
    let n = 0;
    for (const a of state.analyses.values()) n += a.rows.length;
    if (map.x.length < n) {
      map.x = new Float32Array(n); map.y = new Float32Array(n); map.level = new Uint8Array(n);
      map.ringed = new Uint8Array(n); map.row = new Int32Array(n); map.group = new Int32Array(n);
    }
    map.analysis = []; map.name = []; map.groups = [];
    let j = 0;
    for (const [name, a] of state.analyses) {
      const c = a.col, k = a.head.map_scale, rows = a.rows, first = map.groups.length;
      for (let i = 0; i < rows.length; i++) {
        const row = rows[i];
        if (row[c.x] === null || row[c.x] === undefined) continue;
        map.x[j] = P + row[c.x] / k * (W - 2 * P);
        map.y[j] = P + (1 - row[c.y] / k) * (H - 2 * P);
        map.level[j] = DRAW_ORDER.indexOf(levelName(row[c.level], row[c.nodata] === 1));
        map.ringed[j] = row[c.outlier] === 1 ? 1 : 0;
        map.row[j] = i; map.analysis[j] = a; map.name[j] = name;
        const g = row[c.cluster];
        if (g === null || g === undefined) map.group[j] = -1;
        else {
          while (map.groups.length <= first + g) {
            const label = "C" + (map.groups.length - first + 1);
            map.groups.push({ label: state.analyses.size > 1 ? name + " " + label : label, n: 0 });
          }
          map.group[j] = first + g; map.groups[first + g].n++;
        }
        j++;
      }
    }
    map.n = j;
  }

  function renderMap() {
    const box = document.getElementById("map");
    let canvas = box.querySelector("canvas");
    if (!canvas) {
      canvas = el("canvas", { tabindex: "-1", role: "img",
        "aria-label": "Fleet topology map: entities as points of a 2-D embedding of their features" });
      canvas.addEventListener("click", (ev) => { const j = nearest(canvas, ev); if (j >= 0) location.href = pointHref(j); });
      canvas.addEventListener("mousemove", (ev) => {
        const j = nearest(canvas, ev);
        canvas.title = j >= 0 ? pointLabel(j) : "";
        canvas.style.cursor = j >= 0 ? "pointer" : "default";
      });
      box.replaceChildren(canvas);
    }
    const W = Math.max(200, box.clientWidth), H = Math.round(Math.min(360, Math.max(200, W * 0.5)));
    const dpr = window.devicePixelRatio || 1;
    canvas.width = W * dpr; canvas.height = H * dpr;
    canvas.style.width = W + "px"; canvas.style.height = H + "px";
    const ctx = canvas.getContext("2d");
    ctx.scale(dpr, dpr);
    const css = getComputedStyle(document.documentElement);
    const colour = (k) => rgbOf(ctx, css.getPropertyValue("--" + k).trim());
    placePoints(W, H);
    const bitmap = new Bitmap(canvas.width, canvas.height), fg = colour("fg");
    const ringed = DRAW_ORDER.map(() => []);
    DRAW_ORDER.forEach((lvl, code) => {
      const r = (lvl === "critical" || lvl === "warning" ? 5 : 3.5) * dpr;
      const fill = disc(r, 0), ring = disc(r, 1.5 * dpr), rgb = colour(lvl);
      for (let j = 0; j < map.n; j++) {
        if (map.level[j] !== code) continue;
        const px = Math.round(map.x[j] * dpr), py = Math.round(map.y[j] * dpr);
        bitmap.stamp(fill, px, py, rgb);
        if (map.ringed[j]) { bitmap.stamp(ring, px, py, fg); ringed[code].push(j); }
      }
    });
    // Frame and cluster areas first, the points over them (an image drawn, composited).
    drawFrame(ctx, W, H, css);
    drawClusters(ctx, css);
    const layer = document.createElement("canvas");
    layer.width = canvas.width; layer.height = canvas.height;
    const lctx = layer.getContext("2d");
    lctx.putImageData(bitmap.image(lctx), 0, 0);
    ctx.drawImage(layer, 0, 0, W, H);
    if (!map.n) {
      ctx.fillStyle = css.getPropertyValue("--fg").trim();
      ctx.fillText("no topology features (warming up, or no recent samples)", W / 2 - 150, H / 2);
    }
    canvas.dataset.points = String(map.n);
    canvas.dataset.clusters = String(map.groups.length);
    let x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity;  // for the tests: all inside
    for (let j = 0; j < map.n; j++) {
      x0 = Math.min(x0, map.x[j]); x1 = Math.max(x1, map.x[j]); y0 = Math.min(y0, map.y[j]); y1 = Math.max(y1, map.y[j]);
    }
    canvas.dataset.extent = map.n ? [x0, y0, W - x1, H - y1].map((v) => v.toFixed(1)).join(",") : "";
    const outliers = ringed.reverse().flat();  // the levels that matter first
    const shown = outliers.slice(0, 20);
    document.getElementById("map-legend").replaceChildren(
      legend(["critical", "warning", "ok", "undecided", "nodata"].map((k) => ["lvl-" + k, k === "nodata" ? "no data" : k])),
      el("p", { class: "small clusters" }, el("span", { class: "muted", text: "Clusters (shaded): " }),
        ...(map.groups.length ? map.groups.flatMap((g, i) => [i ? ", " : "",
          el("span", { class: "cluster-item", text: `${g.label}: ${g.n} ${g.n === 1 ? "entity" : "entities"}` })])
          : [el("span", { class: "muted", text: "none" })])),
      el("p", { class: "small" }, el("span", { class: "muted", text: "Outliers (ringed): " }),
        ...(shown.length ? shown.flatMap((j, i) => [i ? ", " : "", el("a", { href: pointHref(j), text: pointLabel(j) })])
          : [el("span", { class: "muted", text: "none" })]),
        outliers.length > shown.length ? el("span", { class: "muted", text: ` and ${outliers.length - shown.length} more` }) : null));
  }

  /* The frame the non-outliers span (fleetmap.INNER_LO..INNER_HI): outside it the axes are
     compressed (a broken axis), so far outliers stay inside the map. */
  function drawFrame(ctx, W, H, css) {
    const P = 10, lo = 0.12, hi = 0.88, out = 7;  // 7 px outside the frame's points
    ctx.save();
    ctx.strokeStyle = css.getPropertyValue("--line").trim(); ctx.setLineDash([4, 4]);
    ctx.strokeRect(P + lo * (W - 2 * P) - out, P + (1 - hi) * (H - 2 * P) - out,
      (hi - lo) * (W - 2 * P) + 2 * out, (hi - lo) * (H - 2 * P) + 2 * out);
    ctx.restore();
  }

  /* Each cluster as a shaded area: its convex hull (Andrew's monotone chain) filled and
     stroked with a wide round pen, so a cluster of one or two points, or of points in a line,
     still gets an area; labelled above it. */
  function drawClusters(ctx, css) {
    if (map.groups.length < 2) return;  // one cluster: nothing to tell apart
    const members = map.groups.map(() => []);
    for (let j = 0; j < map.n; j++) if (map.group[j] >= 0) members[map.group[j]].push(j);
    ctx.save();
    ctx.strokeStyle = ctx.fillStyle = css.getPropertyValue("--accent").trim();
    ctx.lineWidth = 18; ctx.lineJoin = ctx.lineCap = "round";
    const hulls = members.map((js) => convexHull(js.map((j) => [map.x[j], map.y[j]])));
    ctx.globalAlpha = 0.13;
    for (const hull of hulls) {
      if (!hull.length) continue;
      ctx.beginPath();
      hull.forEach(([x, y], i) => (i ? ctx.lineTo(x, y) : ctx.moveTo(x, y)));
      ctx.closePath(); ctx.fill(); ctx.stroke();
    }
    ctx.globalAlpha = 1; ctx.fillStyle = css.getPropertyValue("--fg").trim();
    ctx.font = "bold 11px system-ui, sans-serif";
    hulls.forEach((hull, g) => {
      if (!hull.length) return;
      const top = hull.reduce((b, p) => (p[1] < b[1] ? p : b));
      ctx.fillText(map.groups[g].label, Math.max(2, top[0] - 6), Math.max(11, top[1] - 12));
    });
    ctx.restore();
  }

  function convexHull(pts) {
    if (pts.length < 3) return pts;
    pts.sort((p, q) => p[0] - q[0] || p[1] - q[1]);
    const cross = (o, a, b) => (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0]);
    const half = (seq) => {
      const h = [];
      for (const p of seq) {
        while (h.length >= 2 && cross(h[h.length - 2], h[h.length - 1], p) <= 0) h.pop();
        h.push(p);
      }
      h.pop();
      return h;
    };
    return half(pts).concat(half([...pts].reverse()));
  }

  /* The points are stamped into one bitmap instead of drawn as one canvas arc each: at 10 000
     points the canvas rasterised its shapes in 100-200 ms of the first frame (headless
     Chromium, 2 cores), the stamps take a few ms. `disc(r, w)`: the pixels (offsets from the
     centre, antialiased coverage 0..1) of a disc of radius r px, or with w > 0 of a ring of
     width w. */
  function disc(r, w) {
    const R = Math.ceil(r + w + 1), dx = [], dy = [], cov = [];
    for (let y = -R; y <= R; y++) {
      for (let x = -R; x <= R; x++) {
        const d = Math.hypot(x, y);
        const a = Math.min(1, Math.max(0, w ? w / 2 + 0.5 - Math.abs(d - r) : r + 0.5 - d));
        if (a > 0) { dx.push(x); dy.push(y); cov.push(a); }
      }
    }
    return { R, dx: Int32Array.from(dx), dy: Int32Array.from(dy), cov: Float32Array.from(cov) };
  }

  /* A CSS colour as [r, g, b] 0..255 (the canvas normalises it to #rrggbb or rgba()). */
  function rgbOf(ctx, css) {
    ctx.fillStyle = "#000"; ctx.fillStyle = css;
    const s = String(ctx.fillStyle);
    if (s[0] === "#") return [1, 3, 5].map((i) => parseInt(s.slice(i, i + 2), 16));
    return s.replace(/[^\d.,]/g, "").split(",").slice(0, 3).map(Number);
  }

  /* Premultiplied RGBA in floats, composited "over" in the order stamped. */
  class Bitmap {
    constructor(w, h) { this.w = w; this.h = h; this.px = new Float32Array(w * h * 4); }
    stamp(shape, cx, cy, rgb) {
      const { R, dx, dy, cov } = shape, r = rgb[0], g = rgb[1], b = rgb[2];
      const { w, h, px } = this, inside = cx >= R && cy >= R && cx < w - R && cy < h - R;
      for (let m = 0; m < cov.length; m++) {
        const x = cx + dx[m], y = cy + dy[m];
        if (!inside && (x < 0 || y < 0 || x >= w || y >= h)) continue;
        const k = (y * w + x) * 4, a = cov[m], keep = 1 - a;
        px[k] = r * a + px[k] * keep; px[k + 1] = g * a + px[k + 1] * keep;
        px[k + 2] = b * a + px[k + 2] * keep; px[k + 3] = a + px[k + 3] * keep;
      }
    }
    image(ctx) {  // ImageData is not premultiplied
      const img = ctx.createImageData(this.w, this.h), out = img.data, px = this.px;
      for (let k = 3; k < px.length; k += 4) {
        const a = px[k];
        if (a <= 0) continue;
        out[k - 3] = px[k - 3] / a; out[k - 2] = px[k - 2] / a; out[k - 1] = px[k - 1] / a; out[k] = a * 255;
      }
      return img;
    }
  }

  function nearest(canvas, ev) {  // the index of the point within 8 px of the pointer, or -1
    const rect = canvas.getBoundingClientRect();
    const x = ev.clientX - rect.left, y = ev.clientY - rect.top;
    let best = -1, bestD = 64;
    for (let j = 0; j < map.n; j++) {
      const d = (map.x[j] - x) ** 2 + (map.y[j] - y) ** 2;
      if (d < bestD) { best = j; bestD = d; }
    }
    return best;
  }

  document.addEventListener("DOMContentLoaded", async () => {
    renderHead();
    for (const id of ["filter", "level-filter", "analysis-filter"]) {
      document.getElementById(id).addEventListener("input", () => { view.page = 0; render(); });
    }
    document.getElementById("prev").addEventListener("click", () => { view.page--; render(); });
    document.getElementById("next").addEventListener("click", () => { view.page++; render(); });
    document.getElementById("theme-toggle").addEventListener("click", () => renderMap());
    window.addEventListener("resize", () => renderMap());
    // The first state is the response the document preloaded (routes.PRELOAD), there before
    // a WebSocket could open; the socket then sends only what changes after it.
    await refetch(true).catch(() => {});
    live({ onMessage: apply, poll: refetch, pollSeconds: 5, status: document.getElementById("live-status"),
           since: state.seq || null });
  });
})();

/* Demo only: the story panel (the next scripted failure, AURA's prediction, its arrival). */
(() => {
  const { el, badge, duration, entityHref, getJSON } = AURA;
  async function tell() {
    let s;
    try { s = await getJSON("/api/v1/console/story"); } catch (_) { return; }
    const box = document.getElementById("story");
    if (!s.enabled) { box.hidden = true; return; }
    box.hidden = false;
    const f = s.failure, names = Object.keys(f.labels), values = Object.values(f.labels);
    const who = el("a", { href: entityHref(f.analysis, names, values), text: values.join(" / ") });
    const p = s.prediction, lines = [];
    // What was warned when, and what the forecast said then: the lead is measured from the
    // first warning to the arrival; the forecast's time to failure is quoted as it was.
    const warnedThen = s.first_warned === null ? "" : s.warned_ttf === null
      ? " (its forecast then gave no time to failure)"
      : ` (its forecast then: failure in ${duration(s.warned_ttf)}, at about ${AURA.time(s.first_warned + s.warned_ttf)})`;
    if (s.arrived) {
      lines.push(el("p", { class: "story-head" }, "The ", f.kind.replace(/_/g, " "), " failure of ", who, " arrived at ",
        AURA.time(f.at), s.first_warned !== null && s.first_warned <= f.at
          ? `. AURA first warned at ${AURA.time(s.first_warned)}, ${duration(f.at - s.first_warned)} before it arrived${warnedThen}.`
          : ". AURA did not warn before it."));
    } else if (p && p.level !== null && p.level >= 1) {
      lines.push(el("p", { class: "story-head" }, who, " is predicted to fail ", badge(p.level, p.nodata),
        p.eta ? ` in ${duration(p.eta - s.now)}, at about ${AURA.time(p.eta)} (the forecast now)` : "",
        s.first_warned !== null && s.first_warned < s.now ? `. AURA has warned since ${AURA.time(s.first_warned)}${warnedThen}` : "", "."));
    } else {
      lines.push(el("p", { class: "story-head" }, "Watch ", who, ": its ", f.kind.replace(/_/g, " "), " is building up (the simulation fails it at ",
        AURA.time(f.at), ", ", duration(f.at - s.now), " from now). AURA has not raised a warning yet."));
    }
    if (p) {
      lines.push(el("ul", { class: "small" },
        el("li", { text: `risk ${p.risk === null ? "—" : p.risk.toFixed(2)}, top signal: ${p.signal || "—"}` }),
        el("li", { text: `agents voting at warning or above: ${p.agents.length ? p.agents.join(", ") : "none"}` }),
        el("li", {}, `recommended action: ${p.action}`, p.runbook ? " — " : "", p.runbook ? el("a", { href: p.runbook, target: "_blank", rel: "noopener", text: "runbook" }) : ""),
        el("li", { class: "muted", text: p.explanation || "" })));
    }
    const c = AURA.clock();
    lines.push(el("p", { class: "muted small", text: "All times are the demo's simulated clock: it started at your real time and runs " + c.speed +
      "× faster (--demo.speed), so one real minute shows " + duration(60 * c.speed) + " of the fleet. Open the entity for its charts, persistence diagrams and votes." }));
    document.getElementById("story-body").replaceChildren(...lines);
  }
  document.addEventListener("DOMContentLoaded", () => { tell(); setInterval(tell, 5000); });
})();
