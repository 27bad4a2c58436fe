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
      const count = el("p", { class: "small", text: a.active.length ? `${firing} firing, ${a.active.length - firing} pending or active` : "inactive" });
      let table = null;
      if (a.active.length && a.active[0].labels) {
        table = el("div", { class: "table-wrap" }, el("table", {},
          el("thead", {}, el("tr", {}, ...["Entity", "State", "Since", "Value"].map((h) => el("th", { scope: "col", text: h })))),
          el("tbody", {}, ...a.active.slice(0, 200).map((x) => {
            const names = Object.keys(x.labels), values = Object.values(x.labels);
            return el("tr", { class: "alert-row" },
              el("td", {}, el("a", { href: entityHref(x.analysis, names, values), text: values.join(" / ") }),
                el("span", { class: "muted small", text: " " + x.analysis })),
              el("td", {}, el("span", { class: "badge " + (x.state === "firing" ? "lvl-critical" : "lvl-warning"), text: x.state })),
              el("td", { text: AURA.time(x.since) }), el("td", { text: Number(x.value).toFixed(2) }));
          }))));
      }
      return el("section", { class: "panel", "data-alert": a.name }, head, summary, count, table);
    }));
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

  document.addEventListener("DOMContentLoaded", () => {
    load();
    live({ onMessage: (msg) => { if (lastSeq === -1) { lastSeq = msg.seq; return; } if (msg.seq !== lastSeq) { lastSeq = msg.seq; load(); } },
           poll: load, pollSeconds: 10, status: document.getElementById("live-status") });
  });
})();
