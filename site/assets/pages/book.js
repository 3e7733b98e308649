// The booking journey, one question a page. The answers so far live in the tab's sessionStorage
// ("booking"); each page reads them, asks its question, and moves on with go().
import {
  ApiProblem, Invalid, PROBLEM_MESSAGES, REASON_MESSAGES, addDays, api, describeWait, doseName, el, fillDate,
  formatDate, formatDateTime, formatNhsNumber, formatTime, go, layout, londonDate, onSubmit, postcodeDistrict,
  problemMessage, productName, queue, readDate, showErrors, showProblem, sleep, state, todayIso, validEmail,
  validMobile, validNhsNumber,
} from "/assets/app.js";

layout();

const booking = () => state.get("booking") || {};
const save = (changes) => state.update("booking", changes);
const RADIUS_KM = 20;
const SEARCH_DAYS = 28;

function radio(name, value, label, hint, checked) {
  const id = `${name}-${value}`.replace(/[^A-Za-z0-9_-]/g, "_");
  return el("div", { class: "nhsuk-radios__item" },
    el("input", { class: "nhsuk-radios__input", id, name, type: "radio", value, checked: Boolean(checked),
      "aria-describedby": hint ? `${id}-hint` : null }),
    el("label", { class: "nhsuk-label nhsuk-radios__label", for: id }, label),
    hint ? el("div", { class: "nhsuk-hint nhsuk-radios__hint", id: `${id}-hint` }, hint) : null);
}

function chosen(name) {
  return document.querySelector(`input[name="${name}"]:checked`)?.value;
}

function firstRadioId(name) {
  return document.querySelector(`input[name="${name}"]`)?.id || null;
}

function nothingToChoose(name, message, link) {
  const empty = document.getElementById(`${name}-empty`);
  empty.classList.remove("vb-hidden");
  empty.replaceChildren(message, " ", link ? el("a", { href: link.href }, link.text) : "");
  document.querySelector("#form button[type=submit]")?.classList.add("vb-hidden");
}

/** A page reached out of order (a bookmark, a new tab) starts the journey again. */
function need(...keys) {
  const current = booking();
  if (keys.every((key) => current[key] !== undefined && current[key] !== null)) return current;
  go("/");
  throw new Error("journey not started");
}

async function slotsAt(siteId, from, to, product) {
  const query = new URLSearchParams({ from, to, product });
  const answer = await api.get(`/sites/${encodeURIComponent(siteId)}/slots?${query}`);
  return answer.slots.filter((slot) => slot.remaining > 0);
}

function groupByDay(slots) {
  const days = new Map();
  for (const slot of slots) {
    const day = londonDate(slot.start);
    days.set(day, [...(days.get(day) || []), slot]);
  }
  return days;
}

const pages = {
  // The waiting room: join (or ask again with the ticket held), show the place and the estimate, poll at
  // the interval the API gives, and move on by itself once admitted.
  async queue() {
    const status = document.getElementById("queue-status");
    const updated = document.getElementById("queue-updated");
    for (;;) {
      let answer;
      try {
        answer = await queue.check();
      } catch (error) {
        if (error instanceof ApiProblem && ["TICKET_EXPIRED", "TICKET_INVALID", "TICKET_LAPSED"].includes(error.code)) {
          queue.forget();
          status.replaceChildren(el("p", {}, problemMessage(error), " Joining again…"));
          await sleep(1000);
          continue;
        }
        const wait = error instanceof ApiProblem && error.retryAfter ? error.retryAfter : 5;
        status.replaceChildren(el("p", {}, error instanceof ApiProblem ? problemMessage(error) : PROBLEM_MESSAGES.TRY_AGAIN));
        await sleep(wait * 1000);
        continue;
      }
      if (answer.admitted && queue.admitted()) {
        status.replaceChildren(el("p", {}, "It is your turn. Taking you to the next step…"));
        window.location.replace("/book/nhs-number");
        return;
      }
      document.getElementById("queue-heading").textContent = "You are in a queue";
      status.replaceChildren(
        el("p", { class: "nhsuk-body-l" }, "Your place in the queue: ", el("strong", { id: "queue-position" }, String(answer.position))),
        el("p", {}, "Estimated wait: ", el("strong", { id: "queue-wait" }, describeWait(answer.estimatedWaitSeconds))));
      updated.textContent = `Last updated at ${formatTime(new Date().toISOString())}.`;
      await sleep(Math.max(1, answer.pollAfterSeconds || 2) * 1000);
    }
  },

  "nhs-number"() {
    const input = document.getElementById("nhs-number");
    input.value = booking().nhsNumber || "";
    onSubmit(document.getElementById("form"), () => {
      const value = input.value.trim();
      if (!value) throw new Invalid([{ id: "nhs-number", message: "Enter your NHS number" }]);
      if (!validNhsNumber(value)) {
        throw new Invalid([{ id: "nhs-number", message: "Enter a valid NHS number, like 999 123 4567. It must be 10 digits." }]);
      }
      save({ nhsNumber: value.replace(/[\s-]/g, "") });
      go("/book/date-of-birth");
    });
  },

  "date-of-birth"() {
    const current = need("nhsNumber");
    fillDate("dob", current.dateOfBirth);
    onSubmit(document.getElementById("form"), async () => {
      const date = readDate("dob", { label: "Date of birth", past: true });
      if (date.error) throw new Invalid([{ id: date.id, message: date.error }]);
      save({ dateOfBirth: date.iso });
      const answer = await api.post("/eligibility", { nhsNumber: current.nhsNumber, dateOfBirth: date.iso });
      save({ eligibility: answer });
      go("/book/eligibility");
    }, {
      fields: { dateOfBirth: { id: "dob-day", message: "Date of birth must be a real date in the past" } },
      messages: { RATE_LIMITED: (e) => `There have been too many attempts to check these details. For your security, try again ${e.retryAfter ? `in ${Math.ceil(e.retryAfter / 60)} minute${Math.ceil(e.retryAfter / 60) === 1 ? "" : "s"}` : "later"}.` },
    });
  },

  eligibility() {
    const current = need("eligibility");
    const answer = current.eligibility;
    const place = document.getElementById("answer");
    if (answer.eligible) {
      const following = answer.followingDose;
      document.title = document.title.replace("Can you book?", "You can book");
      place.append(
        el("h1", {}, `You can book your ${doseName(answer.nextDose)}`),
        el("p", {}, answer.earliestDate && answer.earliestDate > todayIso()
          ? `Your appointment can be on or after ${formatDate(answer.earliestDate)}.`
          : "You can choose an appointment from today."),
        following ? el("p", {}, `You will book your ${doseName(following.dose)} at the same time, ${Math.round(following.minIntervalDays / 7)} to ${Math.round(following.maxIntervalDays / 7)} weeks after your ${doseName(answer.nextDose)}.`) : null,
        el("a", { class: "nhsuk-button", href: "/book/postcode", role: "button", draggable: "false" }, "Continue"));
      return;
    }
    document.title = document.title.replace("Can you book?", "You cannot book");
    const reasons = answer.reasons.map((code) => {
      if (code === "DOSE_NOT_DUE" && answer.bookableFrom) {
        return `${REASON_MESSAGES.DOSE_NOT_DUE} You can book it from ${formatDate(answer.bookableFrom)}.`;
      }
      return REASON_MESSAGES[code] || PROBLEM_MESSAGES.REFUSED;
    });
    place.append(el("h1", {}, answer.reasons.includes("NOT_MATCHED") ? "We could not find your details" : "You cannot book a vaccination yet"),
      ...reasons.map((text) => el("p", { "data-reason": "" }, text)));
    if (answer.reasons.includes("NOT_MATCHED")) {
      place.append(el("p", {}, el("a", { href: "/book/nhs-number" }, "Check your NHS number and date of birth")));
    } else if (answer.reasons.includes("ALREADY_BOOKED")) {
      place.append(el("p", {}, el("a", { href: "/manage" }, "Manage your appointments")));
    }
  },

  postcode() {
    const current = need("eligibility");
    const input = document.getElementById("postcode");
    input.value = current.postcode || "";
    onSubmit(document.getElementById("form"), async () => {
      const value = input.value.trim();
      if (!value) throw new Invalid([{ id: "postcode", message: "Enter a postcode" }]);
      const district = postcodeDistrict(value);
      if (!district) throw new Invalid([{ id: "postcode", message: "Enter a real postcode, like LS1 4AP or LS1" }]);
      const query = new URLSearchParams({ postcode: district, radiusKm: String(RADIUS_KM) });
      const answer = await api.get(`/sites?${query}`);
      const allowed = new Set(current.eligibility.allowedProducts);
      const sites = answer.sites.filter((s) => s.products.some((p) => allowed.has(p)));
      if (!sites.length) {
        throw new Invalid([{ id: "postcode", message: `There are no vaccination places with your vaccine within ${RADIUS_KM} km of ${district}. Try another postcode.` }]);
      }
      save({ postcode: value, sites });
      go("/book/site");
    }, { messages: { NOT_FOUND: "We do not recognise that postcode. Check it and try again." },
      fields: { postcode: { id: "postcode", message: "Enter a real postcode, like LS1 4AP or LS1" } } });
  },

  site() {
    const current = need("sites");
    const options = document.getElementById("site-options");
    for (const site of current.sites) {
      const next = site.nextAvailableDate ? `Next appointment: ${formatDate(site.nextAvailableDate)}` : "No appointments at the moment";
      options.append(radio("site", site.siteId, site.name,
        `${site.distanceKm.toFixed(1)} km away${site.postcode ? `, ${site.postcode}` : ""}. ${next}.`,
        current.site?.siteId === site.siteId));
    }
    onSubmit(document.getElementById("form"), () => {
      const siteId = chosen("site");
      if (!siteId) throw new Invalid([{ id: firstRadioId("site"), message: "Choose where you want to be vaccinated" }]);
      const site = current.sites.find((s) => s.siteId === siteId);
      const product = current.eligibility.allowedProducts.find((p) => site.products.includes(p));
      save({ site: { siteId: site.siteId, name: site.name, postcode: site.postcode || "" }, product, first: null, second: null });
      go("/book/day");
    });
  },

  async day() {
    const current = need("site", "product");
    const from = current.eligibility.earliestDate > todayIso() ? current.eligibility.earliestDate : todayIso();
    await dayQuestion(current, from, addDays(from, SEARCH_DAYS), "firstDay", "/book/time", current.firstDay);
  },

  async time() {
    const current = need("site", "firstDay");
    await timeQuestion(current, current.firstDay, "first", current.eligibility.followingDose ? "/book/second-day" : "/book/contact");
  },

  async "second-day"() {
    const current = need("first");
    const following = current.eligibility.followingDose;
    const firstDay = londonDate(current.first.start);
    const from = addDays(firstDay, following.minIntervalDays);
    const to = addDays(firstDay, following.maxIntervalDays);
    document.querySelector("[data-field=day] .nhsuk-fieldset").setAttribute("aria-describedby", "day-hint");
    const hint = el("div", { class: "nhsuk-hint", id: "day-hint" },
      `Your 2nd dose must be between ${formatDate(from)} and ${formatDate(to)}, at ${current.site.name}.`);
    document.querySelector("[data-field=day] legend").after(hint);
    await dayQuestion(current, from, to, "secondDay", "/book/second-time", current.secondDay);
  },

  async "second-time"() {
    const current = need("secondDay");
    await timeQuestion(current, current.secondDay, "second", "/book/contact");
  },

  contact() {
    const current = need("first");
    if (!current.eligibility.followingDose) document.querySelector(".nhsuk-back-link").href = "/book/time";
    else document.querySelector(".nhsuk-back-link").href = "/book/second-time";
    const mobile = document.getElementById("mobile");
    const email = document.getElementById("email");
    mobile.value = current.contact?.mobile || "";
    email.value = current.contact?.email || "";
    onSubmit(document.getElementById("form"), () => {
      const given = { mobile: mobile.value.trim(), email: email.value.trim() };
      const errors = [];
      if (!given.mobile && !given.email) errors.push({ id: "mobile", message: "Enter a mobile number or an email address" });
      if (given.mobile && !validMobile(given.mobile)) errors.push({ id: "mobile", message: "Enter a UK mobile number, like 07700 900 982" });
      if (given.email && !validEmail(given.email)) errors.push({ id: "email", message: "Enter an email address in the correct format, like name@example.com" });
      if (errors.length) throw new Invalid(errors);
      save({ contact: Object.fromEntries(Object.entries(given).filter(([, v]) => v)) });
      go("/book/check");
    });
  },

  check() {
    const current = need("first", "contact");
    const rows = [
      ["NHS number", formatNhsNumber(current.nhsNumber), "/book/nhs-number", "NHS number"],
      ["Date of birth", formatDate(current.dateOfBirth), "/book/date-of-birth", "date of birth"],
      ["Where", `${current.site.name}${current.site.postcode ? `, ${current.site.postcode}` : ""}`, "/book/site", "where"],
      [current.second ? "1st dose" : doseName(current.eligibility.nextDose), `${formatDateTime(current.first.start)} (${productName(current.first.product)})`, "/book/day", "appointment"],
      current.second ? ["2nd dose", `${formatDateTime(current.second.start)} (${productName(current.second.product)})`, "/book/second-day", "2nd dose appointment"] : null,
      current.contact.mobile ? ["Mobile", current.contact.mobile, "/book/contact", "mobile number"] : null,
      current.contact.email ? ["Email", current.contact.email, "/book/contact", "email address"] : null,
    ].filter(Boolean);
    document.getElementById("summary").append(...rows.map(([key, value, href, hidden]) =>
      el("div", { class: "nhsuk-summary-list__row" },
        el("dt", { class: "nhsuk-summary-list__key" }, key),
        el("dd", { class: "nhsuk-summary-list__value" }, value),
        el("dd", { class: "nhsuk-summary-list__actions" },
          el("a", { href }, "Change", el("span", { class: "nhsuk-u-visually-hidden" }, ` ${hidden}`))))));
    const recovery = document.getElementById("recovery");
    onSubmit(document.getElementById("form"), async () => {
      recovery.classList.add("vb-hidden");
      const body = {
        nhsNumber: current.nhsNumber, dateOfBirth: current.dateOfBirth, contact: current.contact,
        appointments: [current.first, current.second].filter(Boolean).map((a) => ({ slotId: a.slotId })),
      };
      // One key per booking attempt: a retry of the same answers cannot book twice.
      const fingerprint = JSON.stringify(body);
      const attempt = booking().attempt?.fingerprint === fingerprint ? booking().attempt : { fingerprint, key: api.newKey() };
      save({ attempt });
      await queue.refresh();
      try {
        const answer = await api.create("/bookings", body, attempt.key, { headers: queue.authorization() });
        state.set("confirmation", answer);
        state.clear("booking");
        queue.forget();
        go("/book/confirmation");
      } catch (error) {
        if (error instanceof ApiProblem) {
          const links = {
            SLOT_FULL: ["/book/day", "Choose another time"], ADMISSION_REQUIRED: ["/book/queue", "Join the queue again"],
            TICKET_LAPSED: ["/book/queue", "Join the queue again"], ALREADY_BOOKED: ["/manage", "Manage your appointments"],
            INTERVAL_TOO_SHORT: ["/book/second-day", "Choose another day for your 2nd dose"],
            INTERVAL_TOO_LONG: ["/book/second-day", "Choose another day for your 2nd dose"],
          };
          if (links[error.code]) {
            recovery.replaceChildren(el("a", { href: links[error.code][0] }, links[error.code][1]));
            recovery.classList.remove("vb-hidden");
          }
        }
        throw error;
      }
    });
  },

  confirmation() {
    const answer = state.get("confirmation");
    if (!answer) { go("/"); return; }
    const place = document.getElementById("confirmation");
    place.append(
      el("div", { class: "nhsuk-panel" },
        el("h1", { class: "nhsuk-panel__heading" }, "Booking confirmed"),
        el("div", { class: "nhsuk-panel__body" }, "Your booking reference is", el("br"), el("strong", { id: "reference" }, answer.reference))),
      el("h2", {}, answer.appointments.length > 1 ? "Your appointments" : "Your appointment"),
      el("dl", { class: "nhsuk-summary-list" }, answer.appointments.map((a) =>
        el("div", { class: "nhsuk-summary-list__row" },
          el("dt", { class: "nhsuk-summary-list__key" }, doseName(a.dose)),
          el("dd", { class: "nhsuk-summary-list__value" },
            `${formatDateTime(a.start)}`, el("br"), `${a.siteName || a.siteId}, ${productName(a.product)}`)))),
      el("p", {}, "We will send you a confirmation with these details."));
  },
};

async function dayQuestion(current, from, to, key, next, selected) {
  const options = document.getElementById("day-options");
  const slots = await slotsAt(current.site.siteId, from, to, current.product);
  const days = groupByDay(slots);
  if (!days.size) {
    nothingToChoose("day", `There are no appointments at ${current.site.name} between ${formatDate(from)} and ${formatDate(to)}.`,
      { href: "/book/site", text: "Choose another place" });
    return;
  }
  for (const [day, daySlots] of days) {
    options.append(radio("day", day, formatDate(day), `${daySlots.length} time${daySlots.length === 1 ? "" : "s"} available`, day === selected));
  }
  onSubmit(document.getElementById("form"), () => {
    const day = chosen("day");
    if (!day) throw new Invalid([{ id: firstRadioId("day"), message: "Choose a day" }]);
    save({ [key]: day });
    go(next);
  });
}

async function timeQuestion(current, day, key, next) {
  const options = document.getElementById("time-options");
  const slots = await slotsAt(current.site.siteId, day, day, current.product);
  const hint = el("div", { class: "nhsuk-hint", id: "time-hint" }, `${formatDate(day)} at ${current.site.name}`);
  document.querySelector("[data-field=time] legend").after(hint);
  document.querySelector("[data-field=time] .nhsuk-fieldset").setAttribute("aria-describedby", "time-hint");
  if (!slots.length) {
    nothingToChoose("time", "There are no times left on this day.", { href: key === "first" ? "/book/day" : "/book/second-day", text: "Choose another day" });
    return;
  }
  for (const slot of slots) {
    options.append(radio("time", slot.slotId, `${formatTime(slot.start)} to ${formatTime(slot.end)}`, null,
      current[key]?.slotId === slot.slotId));
  }
  onSubmit(document.getElementById("form"), () => {
    const slotId = chosen("time");
    if (!slotId) throw new Invalid([{ id: firstRadioId("time"), message: "Choose a time" }]);
    const slot = slots.find((s) => s.slotId === slotId);
    const changes = { [key]: { slotId, start: slot.start, end: slot.end, product: slot.product } };
    if (key === "first") Object.assign(changes, { second: null, secondDay: null });
    save(changes);
    go(next);
  });
}

const name = document.body.dataset.page;
Promise.resolve()
  .then(() => pages[name]())
  .catch((error) => {
    if (error instanceof Error && error.message === "journey not started") return;
    showProblem(error);
  });
