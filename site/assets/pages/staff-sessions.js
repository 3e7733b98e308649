// A site's sessions: the day's open ones with their places and bookings, cancel one (and, when asked,
// its bookings, each person texted), and open a new one.
import {
  Invalid, api, el, fillDate, formatDate, onSubmit, productName, readDate, showProblem, todayIso,
} from "/assets/app.js";
import { clearSuccess, currentSite, showSite, showSuccess, staffLayout, table, wallTime } from "/assets/pages/staff.js";

staffLayout();
const siteId = currentSite();
const base = `/admin/sites/${encodeURIComponent(siteId || "")}/sessions`;
let day = todayIso();
fillDate("list", day);
fillDate("date", day);

async function load() {
  const listed = await api.get(`${base}?date=${day}`);
  const rows = listed.sessions.map((s) => [
    `${wallTime(s.start)} to ${wallTime(s.end)}`, productName(s.product), String(s.places), String(s.booked),
    el("button", { class: "nhsuk-button nhsuk-button--secondary nhsuk-button--small", type: "button",
      onclick: () => confirmCancel(s) }, "Cancel session",
    el("span", { class: "nhsuk-u-visually-hidden", text: ` ${wallTime(s.start)} ${productName(s.product)}` })),
  ]);
  document.getElementById("sessions").replaceChildren(rows.length
    ? table(["Time", "Vaccine", "Places", "Booked", "Action"], rows,
      { caption: `Open sessions on ${formatDate(listed.date)}`, numeric: [2, 3] })
    : el("p", { text: `No open sessions on ${formatDate(listed.date)}.` }));
}

function confirmCancel(session) {
  clearSuccess();
  const what = `the ${productName(session.product)} session from ${wallTime(session.start)} to ${wallTime(session.end)}`;
  const bookings = session.booked > 0
    ? el("div", { class: "nhsuk-form-group" }, el("div", { class: "nhsuk-checkboxes" },
      el("div", { class: "nhsuk-checkboxes__item" },
        el("input", { class: "nhsuk-checkboxes__input", id: "cancel-bookings", type: "checkbox" }),
        el("label", { class: "nhsuk-label nhsuk-checkboxes__label", for: "cancel-bookings",
          text: `Also cancel the ${session.booked} booking${session.booked === 1 ? "" : "s"}. Each person gets a text.` }))))
    : null;
  const form = el("form", { class: "vb-inline-form", id: "cancel-form" },
    el("h2", { class: "nhsuk-heading-m", text: `Cancel ${what}?` }),
    el("p", { text: "Nobody can book it once it is cancelled." }),
    bookings,
    el("div", { class: "vb-actions" },
      el("button", { class: "nhsuk-button nhsuk-button--warning", type: "submit", text: "Yes, cancel this session" }),
      el("button", { class: "nhsuk-button nhsuk-button--secondary", type: "button", text: "Keep it",
        onclick: () => document.querySelector("[data-cancel]").replaceChildren() })));
  document.querySelector("[data-cancel]").replaceChildren(form);
  form.querySelector("h2").setAttribute("tabindex", "-1");
  form.querySelector("h2").focus();
  onSubmit(form, async () => {
    const cancelBookings = Boolean(document.getElementById("cancel-bookings")?.checked);
    const answer = await api.post(`${base}/${encodeURIComponent(session.sessionId)}/cancel`, { cancelBookings });
    document.querySelector("[data-cancel]").replaceChildren();
    await load();
    showSuccess(`Session cancelled: ${answer.slotsCancelled} appointment times closed, ${answer.bookingsCancelled} bookings cancelled`);
  });
}

const TIME = /^([01]?\d|2[0-3]):[0-5]\d$/;

function whole(id, label, min, max) {
  const text = document.getElementById(id).value.trim();
  if (!/^\d+$/.test(text) || Number(text) < min || Number(text) > max) {
    return { error: `${label} must be a whole number from ${min} to ${max}`, id };
  }
  return { value: Number(text) };
}

if (showSite()) {
  onSubmit(document.getElementById("list-form"), async () => {
    const read = readDate("list", { label: "Day" });
    if (read.error) throw new Invalid([{ id: read.id, message: read.error }]);
    day = read.iso;
    await load();
  });
  onSubmit(document.getElementById("open-form"), async () => {
    const errors = [];
    const date = readDate("date", { label: "Date", future: true });
    if (date.error) errors.push({ id: date.id, message: date.error });
    const times = {};
    for (const [id, label] of [["start", "Start time"], ["end", "End time"]]) {
      const text = document.getElementById(id).value.trim().replace(".", ":");
      if (!TIME.test(text)) errors.push({ id, message: `${label} must be a time like 09:00` });
      else times[id] = text.padStart(5, "0");
    }
    if (!errors.length && times.end <= times.start) errors.push({ id: "end", message: "End time must be after the start time" });
    const minutes = whole("slot-minutes", "Minutes for each appointment", 5, 120);
    const capacity = whole("capacity", "People vaccinated in each appointment", 1, 1000);
    for (const read of [minutes, capacity]) if (read.error) errors.push({ id: read.id, message: read.error });
    if (errors.length) throw new Invalid(errors);
    const body = { date: date.iso, start: times.start, end: times.end, slotMinutes: minutes.value,
      capacityPerSlot: capacity.value, product: document.getElementById("product").value };
    const opened = await api.create(base, body, api.newKey());
    day = date.iso;
    fillDate("list", day);
    await load();
    showSuccess(`Session opened on ${formatDate(date.iso)}: ${opened.slotCount} appointment times`);
  }, { fields: {
    date: { id: "date-day", message: "Date must be today or within a year" },
    start: { id: "start", message: "Start time must be a time the clocks do not skip or repeat" },
    end: { id: "end", message: "End time must be after the start time" },
    slotMinutes: { id: "slot-minutes", message: "Minutes for each appointment must be from 5 to 120" },
    capacityPerSlot: { id: "capacity", message: "People vaccinated in each appointment must be from 1 to 1000" },
    product: { id: "product", message: "This site does not offer that vaccine" },
  } });
  load().catch((error) => showProblem(error));
} else {
  document.getElementById("list-form").remove();
  document.getElementById("open-form").remove();
}
