// The national operators' live view (GET /api/admin/dashboard): headline figures, bookings each hour
// as a bar chart, free places in the next 7 days by region, the waiting room, texts and poison queues.
// Charts are SVG drawn here, each with its figures in a table beside it for screen readers and print.
import { api, clearErrors, el, formatTime, productName, showProblem } from "/assets/app.js";
import { staffLayout, table } from "/assets/pages/staff.js";

staffLayout();
const REFRESH_MS = 15_000;
const SVG = "http://www.w3.org/2000/svg";
const number = new Intl.NumberFormat("en-GB");

function svg(tag, attributes = {}, ...children) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (name === "text") node.textContent = value;
    else node.setAttribute(name, String(value));
  }
  node.append(...children);
  return node;
}

/** "Sun 6 Dec" for a YYYY-MM-DD date: seven of them fit across a table. */
function shortDate(isoDate) {
  const [y, m, d] = isoDate.split("-").map(Number);
  return new Intl.DateTimeFormat("en-GB", { timeZone: "UTC", weekday: "short", day: "numeric", month: "short" })
    .format(new Date(Date.UTC(y, m - 1, d))).replace(",", "");
}

function figure(label, value, note, alert = false) {
  return el("li", { class: `vb-figure${alert ? " vb-figure--alert" : ""}` },
    el("span", { class: "vb-figure__label", text: label }),
    el("span", { class: "vb-figure__value", text: value }),
    note ? el("span", { class: "vb-figure__note", text: note }) : null);
}

function minutes(seconds) {
  if (seconds <= 0) return "nobody waiting";
  if (seconds < 60) return "under a minute";
  const m = Math.round(seconds / 60);
  return m < 120 ? `${m} minute${m === 1 ? "" : "s"}` : `${Math.round(m / 60)} hours`;
}

/** A tidy top for an axis: 1, 2 or 5 times a power of ten, at least the largest value. */
function niceMax(value) {
  if (value <= 4) return 4;
  const power = 10 ** Math.floor(Math.log10(value));
  return [1, 2, 5, 10].map((m) => m * power).find((candidate) => candidate >= value);
}

/** Drawn at the width it is shown at, so its text stays the page's size on a phone too. */
function chartWidth() {
  return Math.max(280, Math.min(960, document.getElementById("dashboard").clientWidth || 720));
}

function hourChart(hours, nowHour) {
  const width = chartWidth(), height = 240, left = 40, bottom = 28, top = 12, right = 8;
  const labelEvery = width >= 560 ? 3 : 6;
  const plotW = width - left - right, plotH = height - top - bottom;
  const max = niceMax(Math.max(...hours.map((h) => h.booked)));
  const slot = plotW / 24;
  const total = hours.reduce((sum, h) => sum + h.booked, 0);
  const busiest = hours.reduce((best, h) => (h.booked > best.booked ? h : best), hours[0]);
  const chart = svg("svg", { class: "vb-chart", viewBox: `0 0 ${width} ${height}`, role: "img",
    "aria-labelledby": "hours-title" },
  svg("title", { id: "hours-title", text: `Bookings each hour today: ${number.format(total)} in total`
    + (busiest.booked ? `, most between ${busiest.hour}:00 and ${busiest.hour + 1}:00 (${number.format(busiest.booked)})` : "") }));
  for (const tick of [0, max / 2, max]) {
    const y = top + plotH - (tick / max) * plotH;
    chart.append(svg("line", { class: "vb-grid", x1: left, x2: width - right, y1: y, y2: y }),
      svg("text", { x: left - 6, y: y + 4, "text-anchor": "end", text: number.format(tick) }));
  }
  for (const h of hours) {
    const barH = (h.booked / max) * plotH;
    const x = left + h.hour * slot + 2;
    const bar = svg("rect", { class: `vb-bar${h.hour === nowHour ? " vb-bar--now" : ""}`, x, y: top + plotH - barH,
      width: slot - 4, height: Math.max(barH, 0) }, svg("title", { text: `${h.hour}:00 to ${h.hour + 1}:00: ${number.format(h.booked)} booked` }));
    chart.append(bar);
    if (h.hour % labelEvery === 0) {
      chart.append(svg("text", { x: x + (slot - 4) / 2, y: height - 8, "text-anchor": "middle", text: `${String(h.hour).padStart(2, "0")}:00` }));
    }
  }
  chart.append(svg("line", { class: "vb-axis", x1: left, x2: width - right, y1: top + plotH, y2: top + plotH }));
  return chart;
}

function regionChart(rows) {
  const byRegion = new Map();
  for (const row of rows) byRegion.set(row.regionName, (byRegion.get(row.regionName) || 0) + row.total);
  const regions = [...byRegion.entries()].sort((a, b) => b[1] - a[1]);
  const width = chartWidth(), narrow = width < 560;
  const rowH = narrow ? 48 : 30, left = narrow ? 0 : 200, right = 70, height = Math.max(1, regions.length) * rowH + 8;
  const max = Math.max(1, ...regions.map(([, total]) => total));
  const chart = svg("svg", { class: "vb-chart", viewBox: `0 0 ${width} ${height}`, role: "img",
    "aria-labelledby": "regions-title" },
  svg("title", { id: "regions-title", text: `Free places in the next 7 days by region: ${regions.map(([name, total]) => `${name} ${number.format(total)}`).join(", ") || "none"}` }));
  regions.forEach(([name, total], i) => {
    const y = 4 + i * rowH;
    const barW = ((width - left - right) * total) / max;
    // On a narrow screen the region's name sits above its bar rather than beside it.
    const barY = narrow ? y + 22 : y + 4, barH = narrow ? rowH - 28 : rowH - 10;
    chart.append(narrow ? svg("text", { x: 0, y: y + 16, text: name })
      : svg("text", { x: left - 8, y: y + rowH / 2 + 4, "text-anchor": "end", text: name }),
    svg("rect", { class: "vb-bar", x: left, y: barY, width: Math.max(barW, 1), height: barH },
      svg("title", { text: `${name}: ${number.format(total)} free places` })),
    svg("text", { x: left + barW + 6, y: barY + barH / 2 + 5, text: number.format(total) }));
  });
  return chart;
}

function render(view) {
  const b = view.bookings, room = view.waitingRoom, texts = view.texts;
  const poisoned = view.poisonQueues.reduce((sum, q) => sum + q.depth, 0);
  const nowHour = Number(new Intl.DateTimeFormat("en-GB", { timeZone: "Europe/London", hour: "numeric", hourCycle: "h23" })
    .format(new Date(view.generatedAt)));
  const days = view.freePlaces.days;
  const placeRows = view.freePlaces.rows.map((r) => [r.regionName, productName(r.product), ...r.byDay.map((n) => number.format(n)),
    number.format(r.total)]);
  const content = [
    el("h2", { class: "nhsuk-u-visually-hidden", text: "Headline figures" }),
    el("ul", { class: "vb-figures", "data-figures": "" },
      figure("Bookings in the last hour", number.format(b.lastHour)),
      figure("Bookings today", number.format(b.today), `${number.format(b.cancelledToday)} cancelled, ${number.format(b.vaccinatedToday)} vaccinated`),
      figure("Free places, next 7 days", number.format(view.freePlaces.total)),
      figure("Waiting room", room.enabled ? `${number.format(room.waiting)} waiting` : "Off",
        room.enabled ? `${number.format(room.admitPerMinute)} let through a minute; longest wait ${minutes(room.longestWaitSeconds)}` : "Everyone can book straight away"),
      figure("Texts sent today", number.format(texts.sentToday), `${number.format(texts.sentLastHour)} in the last hour; `
        + (texts.waiting === null ? "queue not readable" : `${number.format(texts.waiting)} waiting to go`)),
      figure("Messages on poison queues", number.format(poisoned), poisoned ? "Investigate, then replay" : "None", poisoned > 0)),
    el("h2", { text: "Bookings each hour today" }),
    hourChart(b.byHour, nowHour),
    el("p", { class: "nhsuk-body-s", text: "The darker bar is the hour now, still filling." }),
    el("details", { class: "nhsuk-details" },
      el("summary", { class: "nhsuk-details__summary" }, el("span", { class: "nhsuk-details__summary-text", text: "Bookings each hour as a table" })),
      el("div", { class: "nhsuk-details__text vb-table-scroll", tabindex: "0", role: "region",
        "aria-label": "Bookings each hour, table" }, table(["Hour", "Booked", "Cancelled", "Texts sent"],
        b.byHour.filter((h) => h.booked || h.cancelled || h.textsSent).map((h) => [`${h.hour}:00 to ${h.hour + 1}:00`,
          number.format(h.booked), number.format(h.cancelled), number.format(h.textsSent)]), { numeric: [1, 2, 3] }))),
    el("h2", { text: "Free places in the next 7 days by region" }),
    view.freePlaces.rows.length ? regionChart(view.freePlaces.rows) : el("p", { text: "No sessions are open in the next 7 days." }),
    view.freePlaces.rows.length ? el("div", { class: "vb-table-scroll", tabindex: "0", role: "region",
      "aria-label": "Free places by region, vaccine and day, table" }, table(
      ["Region", "Vaccine", ...days.map(shortDate), "Total"], placeRows,
      { caption: "Free places by region, vaccine and day", numeric: [...days.map((_, i) => i + 2), days.length + 2] })) : null,
    el("h2", { text: "Poison queues" }),
    table(["Queue", "Messages"], view.poisonQueues.map((q) => [q.queue, number.format(q.depth)]), { numeric: [1] }),
  ];
  document.getElementById("dashboard").replaceChildren(...content.filter(Boolean));
  document.getElementById("updated").textContent = `Figures as at ${formatTime(view.generatedAt)} (UK time)`;
}

async function refresh() {
  try {
    render(await api.get("/admin/dashboard"));
    clearErrors();
  } catch (error) {
    showProblem(error);
  }
}

document.getElementById("refresh").addEventListener("click", refresh);
refresh();
setInterval(() => { if (!document.hidden) refresh(); }, REFRESH_MS);
