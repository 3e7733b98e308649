// Manage a booking: find it (reference, NHS number, date of birth, posted in a body), see it, change a
// time, cancel. The details found live in the tab's sessionStorage ("manage") until the tab closes.
import {
  ApiProblem, Invalid, addDays, api, doseName, el, fillDate, formatDate, formatDateTime, formatTime, go, layout,
  londonDate, onSubmit, productName, readDate, showProblem, state, todayIso, validNhsNumber,
} from "/assets/app.js";

layout();

const held = () => state.get("manage") || {};
const save = (changes) => state.update("manage", changes);
const STATUS = { confirmed: "Booked", cancelled: "Cancelled", checkedIn: "Checked in", vaccinated: "Vaccinated",
  didNotAttend: "Missed" };
const SEARCH_DAYS = 28;

function need() {
  const current = held();
  if (current.booking) return current;
  go("/manage");
  throw new Error("journey not started");
}

function credentials(current) {
  return { nhsNumber: current.nhsNumber, dateOfBirth: current.dateOfBirth };
}

function openAppointments(booking) {
  return booking.appointments.filter((a) => (a.status || booking.status) === "confirmed");
}

function radio(name, value, label, hint) {
  const id = `${name}-${value}`.replace(/[^A-Za-z0-9_-]/g, "_");
  return el("div", { class: "nhsuk-radios__item" },
    el("input", { class: "nhsuk-radios__input", id, name, type: "radio", value, "aria-describedby": hint ? `${id}-hint` : null }),
    el("label", { class: "nhsuk-label nhsuk-radios__label", for: id }, label),
    hint ? el("div", { class: "nhsuk-hint nhsuk-radios__hint", id: `${id}-hint` }, hint) : null);
}

async function freeSlots(appointment, from, to) {
  const query = new URLSearchParams({ from, to, product: appointment.product });
  const answer = await api.get(`/sites/${encodeURIComponent(appointment.siteId)}/slots?${query}`);
  return answer.slots.filter((s) => s.remaining > 0);
}

const pages = {
  find() {
    const current = held();
    document.getElementById("reference").value = current.reference || "";
    document.getElementById("nhs-number").value = current.nhsNumber || "";
    fillDate("dob", current.dateOfBirth);
    onSubmit(document.getElementById("form"), async () => {
      const reference = document.getElementById("reference").value.trim().toUpperCase();
      const nhsNumber = document.getElementById("nhs-number").value.replace(/[\s-]/g, "");
      const errors = [];
      if (!reference) errors.push({ id: "reference", message: "Enter your booking reference" });
      else if (!/^[A-Z0-9]{9}$/.test(reference)) errors.push({ id: "reference", message: "Booking reference must be 9 letters and numbers" });
      if (!nhsNumber) errors.push({ id: "nhs-number", message: "Enter your NHS number" });
      else if (!validNhsNumber(nhsNumber)) errors.push({ id: "nhs-number", message: "Enter a valid NHS number, like 999 123 4567" });
      const date = readDate("dob", { label: "Date of birth", past: true });
      if (date.error) errors.push({ id: date.id, message: date.error });
      if (errors.length) throw new Invalid(errors);
      const booking = await api.post("/bookings/lookup", { reference, nhsNumber, dateOfBirth: date.iso });
      state.set("manage", { reference, nhsNumber, dateOfBirth: date.iso, booking });
      go("/manage/booking");
    }, {
      fields: {
        reference: { id: "reference", message: "Booking reference must be 9 letters and numbers" },
        nhsNumber: { id: "nhs-number", message: "Enter a valid NHS number" },
        dateOfBirth: { id: "dob-day", message: "Date of birth must be a real date in the past" },
      },
      messages: {
        NOT_FOUND: "We could not find a booking with those details. Check your booking reference, NHS number and date of birth.",
        RATE_LIMITED: (e) => `There have been too many attempts to find this booking. For your security, try again ${e.retryAfter ? `in ${Math.ceil(e.retryAfter / 60)} minutes` : "later"}.`,
      },
    });
  },

  booking() {
    const current = need();
    const { booking } = current;
    const banner = current.banner;
    if (banner) {
      save({ banner: null });
      document.getElementById("banner").append(
        el("div", { class: "nhsuk-panel", role: "status" },
          el("h2", { class: "nhsuk-panel__heading" }, banner)));
    }
    const place = document.getElementById("booking");
    place.append(el("p", {}, "Booking reference: ", el("strong", { id: "reference" }, booking.reference)),
      el("p", {}, "Status: ", el("strong", { id: "status" }, STATUS[booking.status] || booking.status)));
    const list = el("dl", { class: "nhsuk-summary-list" });
    for (const appointment of booking.appointments) {
      const status = appointment.status || booking.status;
      const open = status === "confirmed";
      list.append(el("div", { class: "nhsuk-summary-list__row" },
        el("dt", { class: "nhsuk-summary-list__key" }, doseName(appointment.dose)),
        el("dd", { class: "nhsuk-summary-list__value" }, formatDateTime(appointment.start), el("br"),
          `${appointment.siteName || appointment.siteId}, ${productName(appointment.product)}`,
          open ? "" : el("span", {}, el("br"), STATUS[status] || status)),
        el("dd", { class: "nhsuk-summary-list__actions" }, open
          ? el("a", { href: "/manage/change-day", "data-dose": String(appointment.dose),
            onclick: () => save({ changing: appointment.dose, newDay: null }) },
          "Change time", el("span", { class: "nhsuk-u-visually-hidden" }, ` of your ${doseName(appointment.dose)}`))
          : "")));
    }
    place.append(list);
    if (openAppointments(booking).length) {
      place.append(el("a", { class: "nhsuk-button nhsuk-button--secondary", href: "/manage/cancel", role: "button",
        draggable: "false" }, "Cancel appointments"));
    } else {
      place.append(el("p", {}, el("a", { href: "/" }, "Book a new appointment")));
    }
  },

  async "change-day"() {
    const current = need();
    const appointment = current.booking.appointments.find((a) => a.dose === current.changing);
    if (!appointment) { go("/manage/booking"); return; }
    // Four weeks either side of the appointment (never the past): a 2nd dose weeks away moves near its own date.
    const appointmentDay = londonDate(appointment.start);
    const earliest = addDays(appointmentDay, -SEARCH_DAYS);
    const from = earliest > todayIso() ? earliest : todayIso();
    const to = addDays(appointmentDay, SEARCH_DAYS);
    const slots = await freeSlots(appointment, from, to);
    const days = new Map();
    for (const slot of slots) {
      if (slot.slotId === appointment.slotId) continue;
      const day = londonDate(slot.start);
      days.set(day, (days.get(day) || 0) + 1);
    }
    const hint = el("div", { class: "nhsuk-hint", id: "day-hint" },
      `Your ${doseName(appointment.dose)} is now on ${formatDateTime(appointment.start)} at ${appointment.siteName || appointment.siteId}.`);
    document.querySelector("[data-field=day] legend").after(hint);
    document.querySelector("[data-field=day] .nhsuk-fieldset").setAttribute("aria-describedby", "day-hint");
    const options = document.getElementById("day-options");
    if (!days.size) {
      const empty = document.getElementById("day-empty");
      empty.classList.remove("vb-hidden");
      empty.textContent = "There are no other times at this place within 4 weeks of your appointment.";
      document.querySelector("#form button").classList.add("vb-hidden");
      return;
    }
    for (const [day, count] of days) options.append(radio("day", day, formatDate(day), `${count} time${count === 1 ? "" : "s"} available`));
    onSubmit(document.getElementById("form"), () => {
      const day = document.querySelector("input[name=day]:checked")?.value;
      if (!day) throw new Invalid([{ id: document.querySelector("input[name=day]").id, message: "Choose a day" }]);
      save({ newDay: day });
      go("/manage/change-time");
    });
  },

  async "change-time"() {
    const current = need();
    const appointment = current.booking.appointments.find((a) => a.dose === current.changing);
    if (!appointment || !current.newDay) { go("/manage/booking"); return; }
    const slots = (await freeSlots(appointment, current.newDay, current.newDay)).filter((s) => s.slotId !== appointment.slotId);
    document.querySelector("[data-field=time] legend").after(
      el("div", { class: "nhsuk-hint", id: "time-hint" }, formatDate(current.newDay)));
    document.querySelector("[data-field=time] .nhsuk-fieldset").setAttribute("aria-describedby", "time-hint");
    const options = document.getElementById("time-options");
    for (const slot of slots) options.append(radio("time", slot.slotId, `${formatTime(slot.start)} to ${formatTime(slot.end)}`));
    onSubmit(document.getElementById("form"), async () => {
      const slotId = document.querySelector("input[name=time]:checked")?.value;
      if (!slotId) throw new Invalid([{ id: document.querySelector("input[name=time]")?.id || null, message: "Choose a time" }]);
      // The booking's other appointments still to happen keep their slots: a reschedule names every open dose.
      const appointments = openAppointments(current.booking)
        .map((a) => ({ slotId: a.dose === appointment.dose ? slotId : a.slotId }));
      const booking = await api.post(`/bookings/${encodeURIComponent(current.reference)}/reschedule`,
        { ...credentials(current), appointments });
      save({ booking, banner: "Your appointment has been changed", changing: null, newDay: null });
      go("/manage/booking");
    }, { messages: { SLOT_FULL: "Sorry, that time has just been taken. Choose another time." } });
  },

  cancel() {
    const current = need();
    document.getElementById("cancel-summary").append(el("ul", {}, openAppointments(current.booking).map((a) =>
      el("li", {}, `${doseName(a.dose)}: ${formatDateTime(a.start)}, ${a.siteName || a.siteId}`))));
    onSubmit(document.getElementById("form"), async () => {
      await api.post(`/bookings/${encodeURIComponent(current.reference)}/cancel`, credentials(current));
      const booking = await api.post("/bookings/lookup", { reference: current.reference, ...credentials(current) });
      save({ booking, banner: "Your appointments have been cancelled" });
      go("/manage/booking");
    });
  },
};

Promise.resolve()
  .then(() => pages[document.body.dataset.page]())
  .catch((error) => {
    if (error instanceof Error && error.message === "journey not started") return;
    if (error instanceof ApiProblem || error instanceof Error) showProblem(error);
  });
