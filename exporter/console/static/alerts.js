/* AURA console: alerts as the generated rules would fire them from the current snapshot. */
"use strict";
(() => {
  const { el, duration, getJSON, entityHref, live } = AURA;
  let lastSeq = -1;

  async function load() {
    const data = await getJSON("/api/v1/console/alerts");
    const box = document.getElementById("alerts");
    box.replaceChildren(...data.alerts.map((a) => {
      const firing = a.active.filter((x) => x.state === "firing").length;
      const head = el("h3", { class: "small" }, a.name + " ",
        el("span", { class: "muted", text: `severity ${a.severity}, for ${a.for ? duration(a.for) : "0s"}, evaluated by ${a.evaluated}` }));
      const summary = el("p", { class: "small" }, el("code", { text: a.expr }), " — ",
        el("a", { href: a.runbook, target: "_blank", rel: "noopener", text: "runbook" }));
      // A rule only Prometheus evaluates is not known here to be inactive (AuraDown fires
      // when this exporter cannot answer at all): say where to look instead.
      const state = a.evaluated === "prometheus only" ? "not evaluated here: see Prometheus or Alertmanager" : "inactive";
      const count = el("p", { class: "small", text: a.active.length ? `${firing} firing, ${a.active.length - firing} pending or active` : state });
      let table = null;
      if (a.active.length && a.active[0].labels) {
        table = el("div", { class: "table-wrap" }, el("table", {},
          el("thead", {}, el("tr", {}, ...["Entity", "State", "Since", "Value"].map((h) => el("th", { scope: "col", text: h })))),
          el("tbody", {}, ...a.active.slice(0, 200).map((x) => {
            const names = Object.keys(x.labels), values = Object.values(x.labels);
            return el("tr", { class: "alert-row" },
              el("td", {}, el("a", { href: entityHref(x.analysis, names, values), text: values.join(" / ") }),
                el("span", { class: "muted small", text: " " + x.analysis })),
              el("td", {}, el("span", { class: "badge " + (x.state === "firing" ? "lvl-critical" : "lvl-warning"), text: x.state }),
                x.kept_until ? el("span", { class: "muted small", text: ` kept: condition cleared, resolves ${AURA.time(x.kept_until)} unless it returns` }) : null),
              el("td", { text: AURA.time(x.since) }), el("td", { text: Number(x.value).toFixed(2) }));
          }))));
      }
      if (!table && a.active.length && a.active[0].analysis) {
        // Per analysis (AuraFleetWideEvent): the analyses and how many entities they hold.
        table = el("p", { class: "small", text: a.active.map((x) => `${x.analysis}: ${x.value} entities at a level at once`).join("; ") });
      }
      return el("section", { class: "panel", "data-alert": a.name }, head, summary, count, table);
    }));
    renderAlertmanager(data.alertmanager || { configured: false });
    const inc = data.incidents, ibox = document.getElementById("incidents");
    if (!inc.configured) {
      ibox.replaceChildren(el("p", { class: "muted", text: "No state_dir configured: the Alertmanager webhook records no incidents." }));
    } else if (!inc.incidents.length) {
      ibox.replaceChildren(el("p", { class: "muted", text: "None recorded yet." }));
    } else {
      ibox.replaceChildren(el("p", { class: "small", text: `${inc.incidents.length} newest of ${inc.total}` }),
        el("div", { class: "table-wrap" }, el("table", {},
          el("thead", {}, el("tr", {}, ...["Start", "End", "Kind", "Labels"].map((h) => el("th", { scope: "col", text: h })))),
          el("tbody", {}, ...inc.incidents.map((x) => el("tr", { class: "incident-row" },
            el("td", { text: AURA.time(x.start) }), el("td", { text: x.end ? AURA.time(x.end) : "open" }),
            el("td", { text: x.kind }),
            el("td", { class: "wrap", text: Object.entries(x.labels).map(([k, v]) => k + "=" + v).join(", ") })))))));
    }
  }

  function renderAlertmanager(am) {
    const box = document.getElementById("alertmanager");
    if (!am.configured) {
      box.replaceChildren(el("p", { class: "muted", text: "No alertmanager.url configured (see aura.example.yml): only AURA's own evaluation above." }));
      return;
    }
    const link = el("a", { href: am.url, target: "_blank", rel: "noopener", text: am.url });
    if (am.error) {
      box.replaceChildren(el("p", { class: "am-error", role: "status" }, "Could not read Alertmanager at ", link, ": ", am.error,
        ". AURA's own evaluation above is unaffected; retrying on the next update."));
      return;
    }
    const rows = am.alerts.map((a) => {
      const rest = Object.entries(a.labels).filter(([k]) => k !== "alertname").map(([k, v]) => k + "=" + v).join(", ");
      return el("tr", { class: "am-alert-row" }, el("td", { text: a.labels.alertname }), el("td", { class: "wrap", text: rest }),
        el("td", {}, el("span", { class: "badge " + (a.state === "active" ? "lvl-critical" : "lvl-undecided"), text: a.state + (a.silenced_by.length ? " (silenced)" : "") })),
        el("td", { text: a.starts_at }),
        el("td", {}, el("a", { href: a.silence_url, target: "_blank", rel: "noopener", text: "silence…" })));
    });
    const sil = am.silences.map((s) => el("tr", { class: "am-silence-row" },
      el("td", {}, el("a", { href: s.url, target: "_blank", rel: "noopener", text: s.id.slice(0, 8) })),
      el("td", { text: s.state }), el("td", { class: "wrap", text: s.matchers }), el("td", { text: s.ends_at }),
      el("td", { class: "wrap", text: s.created_by + (s.comment ? ": " + s.comment : "") })));
    const table = (heads, body) => el("div", { class: "table-wrap" }, el("table", {},
      el("thead", {}, el("tr", {}, ...heads.map((h) => el("th", { scope: "col", text: h })))), el("tbody", {}, ...body)));
    box.replaceChildren(el("p", { class: "small" }, `${am.alerts.length} AURA alerts and ${am.silences.length} silences in `, link, "."),
      rows.length ? table(["Alert", "Labels", "State", AURA.clock().simulated ? "Since (real time)" : "Since", ""], rows) : el("p", { class: "muted", text: "No AURA alert in Alertmanager." }),
      sil.length ? table(["Silence", "State", "Matchers", "Ends", "By"], sil) : el("p", { class: "muted", text: "No silence for AURA's alerts." }));
  }

  document.addEventListener("DOMContentLoaded", () => {
    load();
    live({ onMessage: (msg) => { if (lastSeq === -1) { lastSeq = msg.seq; return; } if (msg.seq !== lastSeq) { lastSeq = msg.seq; load(); } },
           poll: load, pollSeconds: 10, status: document.getElementById("live-status") });
  });
})();
