// The schedules page: stored schedules, the editor (JSON text and a form kept in step
// both ways), validation with the path of what is wrong, a night's preview, a year's
// preview against another schedule, and pushing to a group or a site.

import { config, get, pollJob, post } from "./api.js";
import { barChart, clockText, timeChart } from "./charts.js";
import { clear, h, isoDate, localTime, num, select, showError, showText, table, working } from "./dom.js";
import { emptySchedule, pretty, ScheduleForm } from "./schedule-form.js";

export async function render(root, _params, ctx) {
  const cfg = await config();
  const list = h("div", { id: "schedule-list-wrap" });
  const text = h("textarea", {
    id: "schedule-json",
    spellcheck: "false",
    rows: "16",
    wrap: "off",
    "aria-label": "schedule as JSON",
  });
  const formEl = h("div", { id: "schedule-form", class: "schedule-form", hidden: true });
  const formNote = h("p", { id: "schedule-form-note", class: "result error", hidden: true });
  const errors = h("div", { id: "schedule-errors", class: "result", "aria-live": "polite" });
  const tabJson = h("button", { id: "tab-json", type: "button", role: "tab", "aria-selected": "true" }, "JSON");
  const tabForm = h("button", { id: "tab-form", type: "button", role: "tab", "aria-selected": "false" }, "Form");
  const validate = h("button", { id: "schedule-validate", type: "button", class: "primary" }, "Validate");
  const fresh = h("button", { id: "schedule-new", type: "button" }, "New schedule");

  const form = new ScheduleForm(formEl, (obj) => {
    text.value = pretty(obj);
    formNote.hidden = true;
  });
  function load(obj) {
    form.set(obj);
    text.value = pretty(form.value());
    formNote.hidden = true;
  }
  // JSON -> form, a moment after typing stops; text that does not parse leaves the form
  // at the last version that did, and says so.
  let timer = 0;
  text.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(syncFromText, 250);
  });
  function syncFromText() {
    clearTimeout(timer);
    try {
      form.set(JSON.parse(text.value));
      formNote.hidden = true;
    } catch (err) {
      formNote.hidden = false;
      formNote.textContent = `The JSON does not parse (${err.message}); the form shows the last version that did.`;
    }
  }
  function tab(which) {
    const json = which === "json";
    if (!json) syncFromText();
    text.hidden = !json;
    formEl.hidden = json;
    tabJson.setAttribute("aria-selected", String(json));
    tabForm.setAttribute("aria-selected", String(!json));
  }
  tabJson.addEventListener("click", () => tab("json"));
  tabForm.addEventListener("click", () => tab("form"));
  fresh.addEventListener("click", () => load(emptySchedule()));
  ctx.onLeave(() => clearTimeout(timer));

  validate.addEventListener("click", async () => {
    working(errors);
    try {
      const r = await post("/api/schedules/validate", { text: text.value });
      const sum = Object.entries(r.summary || {}).map(([k, v]) => `${k} ${v}`).join(", ");
      showText(errors, `valid: schedule ${r.id}${sum ? ` (${sum})` : ""}`, "ok");
    } catch (err) {
      showError(errors, err);
    }
  });

  // -- night preview -----------------------------------------------------------------------
  const siteNames = (cfg.sites || []).map((s) => s.name);
  const pSite = select("preview-site", siteNames, siteNames[0], "site");
  const pDate = h("input", { id: "preview-date", type: "date", value: isoDate(new Date()) });
  const pRun = h("button", { id: "preview-run", type: "button", class: "primary" }, "Preview the night");
  const pChart = h("canvas", { id: "preview-chart", class: "chart", hidden: true });
  const pEnergy = h("p", { id: "preview-energy", "aria-live": "polite" });
  const pResult = h("p", { id: "preview-result", class: "result", "aria-live": "polite" });
  pRun.addEventListener("click", async () => {
    working(pResult);
    try {
      const r = await post("/api/schedules/preview", {
        text: text.value,
        site: pSite.querySelector("select").value,
        date: pDate.value,
      });
      pChart.hidden = false;
      showPreview(r, pChart, pEnergy);
      showText(pResult, `${r.schedule}, profile ${r.profile}, night of ${r.date}`, "ok");
    } catch (err) {
      showError(pResult, err);
    }
  });

  // -- year preview ------------------------------------------------------------------------
  const against = h("textarea", {
    id: "against-json",
    rows: "6",
    spellcheck: "false",
    placeholder: "optional: another schedule's JSON to compare with",
    "aria-label": "schedule to compare against, JSON",
  });
  const yRun = h("button", { id: "year-run", type: "button", class: "primary" }, "Preview the year");
  const yChart = h("canvas", { id: "year-chart", class: "chart", hidden: true });
  const yTotals = h("div", { id: "year-totals-wrap" });
  const yResult = h("p", { id: "year-result", class: "result", "aria-live": "polite" });
  yRun.addEventListener("click", async () => {
    working(yResult);
    const body = {
      text: text.value,
      site: pSite.querySelector("select").value,
      year: Number((pDate.value || isoDate(new Date())).slice(0, 4)),
    };
    if (against.value.trim()) body.against = { text: against.value };
    try {
      const r = await post("/api/schedules/year", body);
      yChart.hidden = false;
      showYear(r, yChart, yTotals);
      showText(yResult, `year ${body.year} at ${body.site}`, "ok");
    } catch (err) {
      showError(yResult, err);
    }
  });

  // -- push --------------------------------------------------------------------------------
  const targets = [
    ...(cfg.groups || []).map((g) => [`group:${g.name}`, `group: ${g.name} (${g.nodes} nodes)`]),
    ...siteNames.map((s) => [`site:${s}`, `site: ${s}`]),
  ];
  const pushTarget = select("push-target", targets, targets[0] && targets[0][0], "push to");
  const pushSubmit = h("button", { id: "push-submit", type: "button", class: "primary" }, "Push");
  const bar = h("progress", { id: "push-bar", max: "1", value: "0" });
  const barText = h("span", { id: "push-text" }, "");
  const pushProgress = h("div", { id: "push-progress", class: "progress", hidden: true }, bar, barText);
  const pushResult = h("p", { id: "push-result", class: "result", "aria-live": "polite" });
  pushSubmit.addEventListener("click", async () => {
    const value = pushTarget.querySelector("select").value;
    if (!value) {
      showError(pushResult, new Error("no group or site to push to"));
      return;
    }
    const i = value.indexOf(":");
    const target = { [value.slice(0, i)]: value.slice(i + 1) };
    pushSubmit.disabled = true;
    working(pushResult);
    try {
      const { job, total } = await post("/api/schedules/push", { text: text.value, target });
      pushProgress.hidden = false;
      const tick = (j) => {
        bar.max = Math.max(1, j.total);
        bar.value = j.settled;
        barText.textContent = ` acked ${j.ok} of ${j.total}, failed ${j.failed}`;
      };
      tick({ total, settled: 0, ok: 0, failed: 0 });
      const done = await pollJob(job, tick, ctx.signal);
      const bad = (done.outcomes || []).filter((o) => o.status !== "ok");
      if (done.error) bad.unshift({ node: "job", status: "error", detail: done.error });
      const why = bad.slice(0, 5).map((o) => `${o.node}: ${o.status}${o.detail ? ` (${o.detail})` : ""}`);
      showText(
        pushResult,
        `done: acked ${done.ok} of ${done.total}, failed ${done.failed}${why.length ? ` — ${why.join("; ")}` : ""}`,
        done.failed || done.error ? "error" : "ok",
      );
    } catch (err) {
      if (ctx.isCurrent()) showError(pushResult, err);
    } finally {
      pushSubmit.disabled = false;
    }
  });

  root.append(
    h("h1", {}, "Schedules"),
    h(
      "div",
      { class: "sched-layout" },
      h("section", { class: "card" }, h("h2", {}, "Stored schedules"), list),
      h(
        "section",
        { class: "card" },
        h("h2", {}, "Editor"),
        h("div", { class: "tabs", role: "tablist" }, tabJson, tabForm),
        text,
        formNote,
        formEl,
        h("div", { class: "buttons" }, validate, fresh),
        errors,
      ),
    ),
    h(
      "section",
      { class: "card" },
      h("h2", {}, "Night preview"),
      h("div", { class: "toolbar" }, pSite, h("label", { class: "field" }, h("span", {}, "night of"), pDate), pRun),
      pResult,
      pChart,
      pEnergy,
    ),
    h(
      "section",
      { class: "card" },
      h("h2", {}, "Year preview"),
      h("label", { class: "field wide" }, h("span", {}, "against (optional)"), against),
      h("div", { class: "buttons" }, yRun),
      yResult,
      yChart,
      yTotals,
    ),
    h(
      "section",
      { class: "card" },
      h("h2", {}, "Push"),
      h("div", { class: "toolbar" }, pushTarget, pushSubmit),
      pushProgress,
      pushResult,
    ),
  );

  load(emptySchedule());
  const stored = await get("/api/schedules");
  clear(list).append(
    table(
      "schedule-list",
      ["id", "name", "version", "created", ""],
      stored.map((s) => {
        const b = h("button", { type: "button", "data-testid": `schedule-load-${s.id}` }, "Edit");
        b.addEventListener("click", async () => {
          try {
            const full = await get(`/api/schedules/${encodeURIComponent(s.id)}`);
            load(full.body);
            showText(errors, `loaded ${s.id} (version ${full.version})`, "ok");
          } catch (err) {
            showError(errors, err);
          }
        });
        return [s.id, s.name || "", String(s.version ?? ""), localTime(s.created), b];
      }),
      "no stored schedules yet",
    ),
  );
}

const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

// The UTC offset (s) written in an ISO time ("...+01:00", "...Z"), or null.
function isoOffset(text) {
  const m = /([+-])(\d\d):?(\d\d)$|Z$/.exec(text || "");
  if (!m) return null;
  if (!m[1]) return 0;
  return (m[1] === "-" ? -1 : 1) * (Number(m[2]) * 3600 + Number(m[3]) * 60);
}

function showPreview(r, canvas, energyEl) {
  const sun = r.sun || {};
  const offset = Object.values(sun).map(isoOffset).find((o) => o !== null) ?? 0;
  let levels = r.levels || [];
  if (!levels.length && r.transitions) {
    levels = r.transitions.map((t) => [Date.parse(t.time) / 1000, t.level]);
  }
  const t = levels.map((p) => p[0]);
  const markers = [];
  for (const [k, row, colour] of [
    ["sunset", 0, "#b34700"],
    ["sunrise", 0, "#b34700"],
    ["dusk", 1, "#6a3d9a"],
    ["dawn", 1, "#6a3d9a"],
  ]) {
    if (!sun[k]) continue;
    const at = Date.parse(sun[k]) / 1000;
    markers.push({ t: at, label: `${k} ${clockText(at, offset)}`, row, color: colour });
  }
  timeChart(canvas, {
    title: `night of ${r.date}`,
    t,
    xMin: t[0],
    xMax: t.at(-1),
    tzOffset: offset,
    markers,
    series: [{ label: "level", unit: "%", values: levels.map((p) => p[1]), step: true, min: 0, max: 100 }],
    empty: "no levels in the answer",
  });
  const e = r.energy || {};
  energyEl.textContent =
    `schedule ${num(e.kwh, 3, "kWh")}, baseline ${num(e.baseline_kwh, 3, "kWh")} ` +
    `(${e.baseline || "full power from sunset to sunrise"}), saving ` +
    `${e.saving_pct === null || e.saving_pct === undefined ? "—" : `${e.saving_pct} %`} ` +
    `at ${num(e.rated_w, 0, "W")} rated`;
}

// The year answer (lanterna.fleet.schedules.YearPreview.as_json): `months` of
// {month, kwh, baseline_kwh, against_kwh?}, `totals` of this schedule against the
// baseline (kwh, eur, co2_kg, baseline_*, saved_*, saving_pct), and `against`
// ({schedule, totals}) when another schedule was given.
function showYear(r, canvas, totalsEl) {
  const months = r.months || [];
  const series = [{ label: `schedule ${r.schedule}`, values: months.map((m) => m.kwh), color: "#c98a00" }];
  if (r.against) {
    series.push({
      label: `against ${r.against.schedule}`,
      values: months.map((m) => m.against_kwh ?? null),
      color: "#2d6cdf",
    });
  }
  series.push({
    label: `baseline (${r.baseline || "full power from sunset to sunrise"})`,
    values: months.map((m) => m.baseline_kwh),
    color: "#9aa5b1",
  });
  barChart(canvas, {
    title: `energy per month, ${r.year}`,
    labels: months.map((m) => MONTHS[Number(String(m.month).slice(5, 7)) - 1] || m.month),
    series,
    unit: "kWh",
  });
  const t = r.totals || {};
  const rows = [[`schedule ${r.schedule}`, t]];
  if (r.against) rows.push([`against ${r.against.schedule}`, r.against.totals || {}]);
  const pct = (x) => (x.saving_pct === null || x.saving_pct === undefined ? "—" : `${num(x.saving_pct, 1)} %`);
  const body = rows.map(([name, x]) => [
    name,
    num(x.kwh, 1),
    num(x.eur, 2),
    num(x.co2_kg, 1),
    num(x.saved_kwh, 1),
    num(x.saved_eur, 2),
    num(x.saved_co2_kg, 1),
    pct(x),
  ]);
  body.push(["baseline", num(t.baseline_kwh, 1), num(t.baseline_eur, 2), num(t.baseline_co2_kg, 1), "—", "—", "—", "—"]);
  clear(totalsEl).append(
    table(
      "year-totals",
      ["", "energy (kWh)", "cost (EUR)", "CO2 (kg)", "saved (kWh)", "saved (EUR)", "saved CO2 (kg)", "saving"],
      body,
    ),
    h("p", { class: "muted" }, `${(r.nights || []).length} nights at ${num(r.rated_w, 0, "W")} rated, ` +
      `${num(r.price_eur_kwh, 2, "EUR/kWh")}, ${num(r.co2_kg_kwh, 3, "kg CO2/kWh")}`),
  );
  if (r.against && r.against.totals) {
    const a = r.against.totals;
    totalsEl.append(
      h("p", {}, `${r.schedule} against ${r.against.schedule}: ${num(a.kwh - t.kwh, 1, "kWh")} less, ` +
        `${num(a.eur - t.eur, 2, "EUR")} and ${num(a.co2_kg - t.co2_kg, 1, "kg CO2")} saved in ${r.year}`),
    );
  }
}
