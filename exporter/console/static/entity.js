/* AURA console: the entity page, refreshed on every cycle (WebSocket tick, else polling). */
"use strict";
(() => {
  const { el, svg, badge, duration, getJSON, lineChart, niceTicks, legend, live, clock } = AURA;
  const params = new URLSearchParams(location.search);
  const api = "/api/v1/console/entity?" + params.toString();
  let lastSeq = -1;

  const f2 = (v) => v === null || v === undefined ? "" : Number(v).toFixed(2);
  // The scale of the persistence diagrams, barcode and Betti curve, as the page names it.
  const SCALE = "filtration scale (robust units)";
  // Time axes say so when the clock is simulated (aura demo), as every time on the page does.
  const timeName = () => clock().simulated ? "simulated time" : null;

  async function load() {
    let d;
    try { d = await getJSON(api); }
    catch (e) {
      const err = document.getElementById("error");
      err.hidden = false; err.textContent = "This entity is not in the current snapshot (" + e.message + ").";
      return;
    }
    document.getElementById("error").hidden = true;
    render(d);
  }

  function dl(pairs) {
    const box = el("dl", { class: "key" });
    for (const [k, v] of pairs) box.append(el("dt", { text: k }), el("dd", {}, v instanceof Node ? v : String(v ?? "")));
    return box;
  }

  function link(href, text) { return href ? el("a", { href, text, target: "_blank", rel: "noopener" }) : null; }

  // The time to failure is the supporting agents' projection (`ttf_by`), the probabilities
  // the learned model's: say whose (exporter/console/views.py `projected_by`).
  function ttfText(d) {
    const t = duration(d.ttf);
    if (!t) return "none projected";
    return (d.ttf_by || []).length ? t + " (projected by " + d.ttf_by.join(", ") +
      "; the failure probabilities are the learned model's own)" : t;
  }

  function render(d) {
    const name = Object.values(d.labels).join(" / ");
    document.getElementById("entity-name").textContent = name + " (" + d.analysis + ")";
    document.title = "AURA console: " + name;
    const probs = d.horizons.map((h, i) => "P(" + h + ") " + f2(d.probability[i])).join(", ");
    const level = el("span", {}, badge(d.level, d.nodata),
      d.nodata ? el("span", { class: "muted small", text: " no samples in the last steps; the verdict below is not current" }) : null);
    document.getElementById("summary").replaceChildren(dl([
      ["level", level],
      ["risk", f2(d.risk)],
      ["failure probability", probs || "no forecast"],
      ["time to failure", ttfText(d)],
      ["action", el("span", {}, d.action, d.runbook ? " — " : "", link(d.runbook, "runbook"))],
      ["explanation", d.explanation],
      ["anomaly score", d.anomaly === null ? "warming up" : f2(d.anomaly) +
        " (tail probability under the entity's own history: 0.99 = 1 window in 100)"],
      ["Betti numbers (H0, H1)", d.betti.join(", ")],
      ["persistence entropy", d.entropy.map(f2).join(", ")],
      ["fleet outlier score", f2(d.fleet_outlier)],
      ["labels", d.selector],
      ["export", el("span", {}, el("a", { href: "/api/v1/console/report?format=html&" + params.toString(), text: "HTML report" }),
        " · ", el("a", { href: "/api/v1/console/report?format=md&" + params.toString(), text: "Markdown report" }))],
    ]));
    renderHistory(d);
    renderConsensus(d.consensus);
    renderVotes(d.votes);
    renderSignals(d);
    renderTopology(d.diagram);
    renderBaseline(d);
  }

  function renderHistory(d) {
    const h = d.history, box = document.getElementById("history");
    if (!h.times.length) { box.replaceChildren(el("p", { class: "muted", text: "No history yet: the console records one point per few minutes from its start." })); return; }
    const series = [{ values: h.risk, label: "risk", cls: "s0" }, { values: h.anomaly, label: "anomaly score", cls: "s1" }];
    Object.entries(h.probability).forEach(([k, v], i) => series.push({ values: v, label: "P(" + k + ")", cls: "s" + (2 + i) }));
    box.replaceChildren(
      lineChart({ series, times: h.times, timeAxis: true, xLabel: timeName(), yMin: 0, yMax: 1, yLabel: "0–1",
        label: "risk, failure probability and anomaly score over the last day" }),
      legend(series.map((s) => ["sw-" + s.cls, s.label])),
      el("p", { class: "muted small", text: h.times.length + " points from " + AURA.time(h.times[0]) + " to " + AURA.time(h.times[h.times.length - 1]) }),
      d.links.risk ? el("p", { class: "small" }, link(d.links.risk, "risk in Prometheus"), " · ",
        link(d.links.probability, "probability"), " · ", link(d.links.anomaly, "anomaly score")) : "");
  }

  function renderConsensus(c) {
    const box = document.getElementById("consensus");
    if (!c) { box.replaceChildren(el("p", { class: "muted", text: "No votes this cycle." })); return; }
    box.replaceChildren(dl([
      ["ballots n", c.ballots + " of " + c.agents + " agents (votes with confidence ≥ " + c.min_confidence + ")"],
      ["faults tolerated f", "⌊(n − 1) / 3⌋ = " + c.f],
      ["quorum", "2f + 1 = " + c.quorum],
      ["trimmed mean", "drop the " + c.f + " highest and " + c.f + " lowest ballots, weighted mean of the rest = " + f2(c.trimmed_mean)],
      ["consensus risk", f2(c.consensus_risk)],
      ["ballots ≥ warning (" + c.warning_risk + ")", c.at_warning + (c.at_warning >= c.quorum ? " ≥ quorum" : " < quorum")],
      ["ballots ≥ critical (" + c.critical_risk + ")", c.at_critical + (c.at_critical >= c.quorum ? " ≥ quorum" : " < quorum")],
      ["decision gate", c.gate === null ? "none (the level stands as voted)" :
        "a level passes only when the consensus risk exceeds " + f2(c.gate + c.margin) + ", what this entity and the fleet usually reach (+ " + c.margin + ")" +
        (c.consensus_risk !== null && c.consensus_risk <= c.gate + c.margin ? ": not exceeded" : ": exceeded")],
      ["exported risk", f2(c.risk) + " (aura_risk_score: the consensus risk read against the entity's bar, a bar above " + c.warning_risk + " mapping onto it; at least the topology anomaly's rarity below " + c.warning_risk + " once that score has agents.decision.sustained_anomaly_min_history (2d) of history; banded by level: under " + c.warning_risk + " at ok, from " + c.warning_risk + " at a warning, from " + c.critical_risk + " at critical)"],
      ["level", badge(c.level, false)],
    ]));
  }

  function renderVotes(votes) {
    const t = document.getElementById("votes");
    // Each cell carries its column's name: at phone widths the CSS stacks a row as a card
    // with the names inline (table.cards), so nothing is scrolled out of sight.
    const names = ["Agent", "Risk", "Confidence", "Counts as", "Weight", "Action", "Time to failure", "Reasons"];
    const head = el("tr", {}, ...names.map((h) => el("th", { scope: "col", text: h })));
    const rows = votes.map((v) => el("tr", { class: "vote" }, ...[
      [v.agent], [f2(v.risk)], [f2(v.confidence)],
      [v.role === "ballot" ? (v.trimmed ? "ballot (trimmed)" : "ballot") : v.role],
      [v.role === "ballot" ? f2(v.weight) : ""], [v.action], [duration(v.ttf)], [v.reasons, "wrap reasons"],
    ].map(([text, cls], i) => el("td", { class: cls || null, "data-label": names[i], text }))));
    t.replaceChildren(el("thead", {}, head), el("tbody", {}, ...rows));
  }

  function renderSignals(d) {
    const box = document.getElementById("signals");
    const start = d.window.start, step = d.window.step;
    box.replaceChildren(...d.signals.map((s) => {
      const times = s.values.map((_, i) => start + i * step);
      const chart = lineChart({ series: [{ values: s.values, label: s.name, cls: "s0" }], times, timeAxis: true,
        xLabel: timeName(), band: s.band, capacity: s.capacity, yLabel: s.unit, label: "signal " + s.name });
      const share = s.contribution === null ? "" : " — share of the risk " + f2(s.contribution);
      const bandText = s.band_source === "own" ? "band: own baseline (" + d.baseline.windows + " healthy windows)"
        : s.band_source === "fleet" ? "band: fleet 10–90 % (no own baseline yet)" : "no band";
      return el("section", { class: "panel signal", "data-band": s.band_source || "none" },
        el("h3", { class: "small" }, s.name, s.unit ? el("span", { class: "unit muted", text: " (" + s.unit + ")" }) : null, share), chart,
        el("p", { class: "legend band-label" }, el("span", {}, el("i", { class: "sw-band" }), bandText)),
        s.promql ? el("p", { class: "small" }, link(s.promql, "PromQL in Prometheus")) : null);
    }));
  }

  const W = 300, H = 300, P = 28;
  // The diagram's frame: room left of and under its square plot for tick values and names.
  const DL = 46, DR = 10, DT = 10, DB = 46, SIDE = W - DL - DR;  // SIDE == H - DT - DB
  const barsOf = (dg) => dg.h0.map((b) => [0, b]).concat(dg.h1.map((b) => [1, b]));
  const topOf = (...dgs) => Math.max(1e-9, ...dgs.flatMap((dg) => barsOf(dg).map(([, b]) => b[1]))) * 1.05;

  /* A persistence diagram (births against deaths, both on the filtration scale) scaled to
     `top`, with the diagonal birth = death. */
  function diagramPlot(dg, top, what) {
    const X = (v) => DL + v / top * SIDE, Y = (v) => H - DB - v / top * SIDE;
    const plot = svg("svg", { class: "chart diagram", viewBox: `0 0 ${W} ${H}`, role: "img",
      "aria-label": what + ": " + dg.h0.length + " H0 and " + dg.h1.length + " H1 points, death against birth on the " + SCALE });
    plot.append(svg("line", { class: "axis", x1: X(0), y1: Y(0), x2: X(top), y2: Y(0) }));
    plot.append(svg("line", { class: "axis", x1: X(0), y1: Y(0), x2: X(0), y2: Y(top) }));
    plot.append(svg("line", { class: "diag", x1: X(0), y1: Y(0), x2: X(top), y2: Y(top) }));
    for (const [t, text] of niceTicks(0, top)) {
      plot.append(svg("line", { class: "axis", x1: X(t), x2: X(t), y1: Y(0), y2: Y(0) + 4 }),
        svg("text", { class: "tick x", x: X(t), y: Y(0) + 14, "text-anchor": "middle", text }),
        svg("line", { class: "axis", x1: X(0) - 4, x2: X(0), y1: Y(t), y2: Y(t) }),
        svg("text", { class: "tick y", x: X(0) - 6, y: Y(t) + 3, "text-anchor": "end", text }));
    }
    plot.append(svg("text", { class: "axis-name x", x: DL + SIDE / 2, y: H - 10, "text-anchor": "middle", text: "birth, " + SCALE }),
      svg("text", { class: "axis-name y", x: -(DT + SIDE / 2), y: 12, transform: "rotate(-90)", "text-anchor": "middle", text: "death, " + SCALE }));
    for (const [dim, b] of barsOf(dg)) {
      plot.append(svg("circle", { class: "pt h" + dim, cx: X(b[0]), cy: Y(b[1]), r: 3, "fill-opacity": 0.7 },
        svg("title", { text: "H" + dim + " (" + b[0] + ", " + b[1] + ")" })));
    }
    return plot;
  }

  function renderBaseline(d) {
    const b = d.baseline, note = document.getElementById("baseline-note"),
      cur = document.getElementById("score-current"), base = document.getElementById("score-baseline");
    if (!b) {
      note.textContent = "No own baseline yet: the entity's reservoir has not admitted a window (charts show the fleet's band).";
      cur.replaceChildren(); base.replaceChildren(); return;
    }
    note.textContent = "Own baseline: " + b.windows + " healthy windows admitted from " + AURA.time(b.first) + " to " + AURA.time(b.last) +
      (b.fitted ? "" : " (still warming up: not fitted yet)") + "; the typical one shown was admitted at " + AURA.time(b.at) + "." +
      (b.recomputed ? "" : " One-signal analyses score a delay embedding the baseline does not keep for the current window: only the baseline's stored diagram is shown.");
    const top = topOf(...[b.baseline, b.current].filter(Boolean));
    cur.replaceChildren(...(b.current ? [diagramPlot(b.current, top, "current window's score diagram"), legend([["sw-h0", "H0"], ["sw-h1", "H1"]])]
      : [el("p", { class: "muted", text: "Not available for this window." })]));
    base.replaceChildren(diagramPlot(b.baseline, top, "own baseline's score diagram"), legend([["sw-h0", "H0"], ["sw-h1", "H1"]]));
  }

  function renderTopology(dg) {
    const dBox = document.getElementById("diagram"), bBox = document.getElementById("barcode"),
      cBox = document.getElementById("betti");
    if (!dg) { dBox.replaceChildren(el("p", { class: "muted", text: "No diagram (too few samples)." })); bBox.replaceChildren(); cBox.replaceChildren(); return; }
    const bars = barsOf(dg);
    const top = topOf(dg);
    const S = (v) => P + v / top * (W - 2 * P);
    dBox.replaceChildren(diagramPlot(dg, top, "persistence diagram"), legend([["sw-h0", "H0"], ["sw-h1", "H1"]]));
    // One bar per row, BAR px thick with a gap, at least MIN_LEN px long (a short-lived H1
    // loop stays visible), over a filtration-scale axis shared with the diagram.
    const BAR = 4, ROW = 6, MIN_LEN = 3, AX = 36;
    const BH = Math.max(60, bars.length * ROW + 10 + AX);
    const code = svg("svg", { class: "chart barcode", viewBox: `0 0 ${W} ${BH}`, role: "img", "aria-label": "barcode: " + bars.length + " bars" });
    const sorted = bars.slice().sort((x, y) => x[0] - y[0] || (y[1][1] - y[1][0]) - (x[1][1] - x[1][0]));
    sorted.forEach(([dim, b], i) => {
      const y = 8 + i * ROW, x1 = S(b[0]), x2 = Math.max(S(b[1]), x1 + MIN_LEN);
      code.append(svg("line", { class: "bar h" + dim, x1, x2, y1: y, y2: y, "stroke-width": BAR },
        svg("title", { text: "H" + dim + " [" + b[0] + ", " + b[1] + ")" })));
    });
    const axisY = BH - AX + 4;
    code.append(svg("line", { class: "axis", x1: S(0), x2: S(top), y1: axisY, y2: axisY }));
    for (const [t, text] of niceTicks(0, top)) {
      code.append(svg("line", { class: "axis", x1: S(t), x2: S(t), y1: axisY, y2: axisY + 4 }),
        svg("text", { x: S(t), y: axisY + 14, "text-anchor": "middle", text }));
    }
    code.append(svg("text", { x: W / 2, y: BH - 2, "text-anchor": "middle", text: SCALE }));
    bBox.replaceChildren(code, legend([["sw-h0", "H0"], ["sw-h1", "H1"]]));
    cBox.replaceChildren(lineChart({ series: [{ values: dg.betti_curve.b0, label: "β0", cls: "s0" }, { values: dg.betti_curve.b1, label: "β1", cls: "s4" }],
      times: dg.betti_curve.scale, yMin: 0, step: true, xLabel: SCALE, yLabel: "count", label: "Betti curve" }),
    legend([["sw-s0", "β0 (components)"], ["sw-s4", "β1 (loops)"]]));
  }

  document.addEventListener("DOMContentLoaded", () => {
    load();
    live({ onMessage: (msg) => { if (lastSeq === -1) { lastSeq = msg.seq; return; } if (msg.seq !== lastSeq) { lastSeq = msg.seq; load(); } },
           poll: load, pollSeconds: 10, status: document.getElementById("live-status") });
  });
})();
