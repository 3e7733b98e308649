// The GP invitation journey at /invite/{code}: the code (no personal data) stays in the path; the
// date of birth proves the invitation is the person's. One document, one question shown at a time,
// the answers in the tab's sessionStorage ("invite").
import {
  ApiProblem, Invalid, api, el, fillDate, formatDate, formatDateTime, formatTime, layout, londonDate, onSubmit,
  problemMessage, productName, readDate, showProblem, state,
} from "/assets/app.js";

layout();

const code = decodeURIComponent(window.location.pathname.split("/")[2] || "");
const held = () => {
  const current = state.get("invite") || {};
  return current.code === code ? current : { code };
};
const save = (changes) => state.set("invite", { ...held(), ...changes });
const TITLES = {
  "step-intro": "Your invitation", "step-dob": "What is your date of birth?", "step-time": "Choose a clinic time",
  "step-check": "Check your answers", "step-done": "Booking confirmed",
};
const BACK = { "step-dob": "step-intro", "step-time": "step-dob", "step-check": "step-time" };
let invitation = null;
let clinicSlots = [];

function show(step) {
  for (const section of document.querySelectorAll("[data-step]")) section.classList.toggle("vb-hidden", section.id !== step);
  document.title = `${TITLES[step]} – Book a vaccination – NHS`;
  const back = document.querySelector(".nhsuk-back-link");
  back.classList.toggle("vb-hidden", !BACK[step]);
  back.dataset.to = BACK[step] || "";
  // A new question has appeared without a page load: move focus to it, as a new page would.
  const heading = document.querySelector(`#${step} h1`);
  if (heading) {
    heading.setAttribute("tabindex", "-1");
    heading.focus();
  }
}

document.querySelector(".nhsuk-back-link").addEventListener("click", (event) => {
  const to = event.currentTarget.dataset.to;
  if (!to) return;
  event.preventDefault();
  if (to === "step-time") showTimes();
  else show(to);
});

async function start() {
  const intro = document.getElementById("intro-body");
  try {
    invitation = await api.get(`/invitations/${encodeURIComponent(code)}`);
  } catch (error) {
    if (error instanceof ApiProblem && error.code === "NOT_FOUND") {
      intro.replaceChildren(el("p", {}, "This invitation link is not valid. Check you copied the whole link from the text message."),
        el("p", {}, el("a", { href: "/" }, "Book through the national booking service")));
      return;
    }
    intro.replaceChildren(el("p", {}, error instanceof ApiProblem ? problemMessage(error) : "Sorry, there is a problem."));
    return;
  }
  document.querySelector("#step-intro h1").textContent = `Book your vaccination at ${invitation.practiceName}`;
  if (invitation.status === "booked") {
    intro.replaceChildren(el("p", {}, "You have already booked with this invitation."),
      el("p", {}, el("a", { href: "/manage" }, "Manage your appointments")));
    return;
  }
  if (invitation.status === "expired") {
    intro.replaceChildren(el("p", {}, "This invitation has expired."),
      el("p", {}, el("a", { href: "/" }, "Book through the national booking service")));
    return;
  }
  intro.replaceChildren(
    el("p", {}, `${invitation.practiceName} has invited you to book a coronavirus vaccination at one of its clinics.`),
    el("p", {}, `This invitation lasts until ${formatDate(londonDate(invitation.expiresAt))}. You'll need your date of birth.`));
  const button = document.getElementById("intro-start");
  button.classList.remove("vb-hidden");
  button.addEventListener("click", () => show("step-dob"));
  fillDate("dob", held().dateOfBirth);
}

onSubmit(document.getElementById("step-dob"), async () => {
  const date = readDate("dob", { label: "Date of birth", past: true });
  if (date.error) throw new Invalid([{ id: date.id, message: date.error }]);
  save({ dateOfBirth: date.iso });
  await showTimes();
});

async function showTimes() {
  const answer = await api.get(`/invitations/${encodeURIComponent(code)}/slots`);
  clinicSlots = answer.slots.filter((s) => s.remaining > 0);
  const options = document.getElementById("time-options");
  const empty = document.getElementById("time-empty");
  options.replaceChildren();
  empty.classList.toggle("vb-hidden", clinicSlots.length > 0);
  empty.textContent = clinicSlots.length ? "" : "There are no clinic times left. Your practice will open more; try again later.";
  document.querySelector("#step-time button").classList.toggle("vb-hidden", !clinicSlots.length);
  const chosenId = held().slot?.slotId;
  for (const slot of clinicSlots) {
    const id = `time-${slot.slotId}`.replace(/[^A-Za-z0-9_-]/g, "_");
    options.append(el("div", { class: "nhsuk-radios__item" },
      el("input", { class: "nhsuk-radios__input", id, name: "time", type: "radio", value: slot.slotId, checked: slot.slotId === chosenId }),
      el("label", { class: "nhsuk-label nhsuk-radios__label", for: id },
        `${formatDate(londonDate(slot.start))}, ${formatTime(slot.start)} to ${formatTime(slot.end)}`)));
  }
  show("step-time");
}

onSubmit(document.getElementById("step-time"), () => {
  const slotId = document.querySelector("input[name=time]:checked")?.value;
  if (!slotId) throw new Invalid([{ id: document.querySelector("input[name=time]")?.id || null, message: "Choose a clinic time" }]);
  const slot = clinicSlots.find((s) => s.slotId === slotId);
  save({ slot: { slotId, start: slot.start, product: slot.product } });
  const current = held();
  const row = (key, value, step, hidden) => el("div", { class: "nhsuk-summary-list__row" },
    el("dt", { class: "nhsuk-summary-list__key" }, key),
    el("dd", { class: "nhsuk-summary-list__value" }, value),
    el("dd", { class: "nhsuk-summary-list__actions" }, step
      ? el("a", { href: "#", onclick: (event) => { event.preventDefault(); if (step === "step-time") showTimes(); else show(step); } },
        "Change", el("span", { class: "nhsuk-u-visually-hidden" }, ` ${hidden}`))
      : ""));
  document.getElementById("invite-summary").replaceChildren(
    row("Where", invitation.practiceName, null, ""),
    row("Date of birth", formatDate(current.dateOfBirth), "step-dob", "date of birth"),
    row("Appointment", `${formatDateTime(current.slot.start)} (${productName(current.slot.product)})`, "step-time", "appointment"));
  show("step-check");
});

onSubmit(document.getElementById("step-check"), async () => {
  const current = held();
  const body = { dateOfBirth: current.dateOfBirth, appointments: [{ slotId: current.slot.slotId }] };
  const fingerprint = JSON.stringify(body);
  const attempt = current.attempt?.fingerprint === fingerprint ? current.attempt : { fingerprint, key: api.newKey() };
  save({ attempt });
  const answer = await api.create(`/invitations/${encodeURIComponent(code)}/booking`, body, attempt.key);
  state.clear("invite");
  const done = document.getElementById("step-done");
  done.replaceChildren(
    el("div", { class: "nhsuk-panel" },
      el("h1", { class: "nhsuk-panel__heading" }, "Booking confirmed"),
      el("div", { class: "nhsuk-panel__body" }, "Your booking reference is", el("br"), el("strong", { id: "reference" }, answer.reference))),
    el("p", {}, `Your appointment is on ${formatDateTime(answer.appointments[0].start)} at ${invitation.practiceName}.`),
    el("p", {}, "We will send you a text to confirm."),
    el("p", {}, el("a", { href: "/manage" }, "Manage your appointments")));
  show("step-done");
}, {
  messages: {
    NOT_ELIGIBLE: "The date of birth you entered does not match this invitation, or you cannot have this vaccination. Check your date of birth.",
    RATE_LIMITED: (e) => `There have been too many attempts. For your security, try again ${e.retryAfter ? `in ${Math.ceil(e.retryAfter / 60)} minutes` : "later"}.`,
    SLOT_FULL: "Sorry, that clinic time has just been taken. Choose another time.",
  },
});

start().catch((error) => showProblem(error));
