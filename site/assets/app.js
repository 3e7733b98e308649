// The booking site's shared helpers: the page layout, calls to /api, problem messages, the error
// summary, tab-session state and date inputs. Plain ES module, no build step (docs/site.md).

// ---------------------------------------------------------------------------------------------
// Messages a person reads for each problem code the API can answer with (functions/http.py and the
// booking rule codes of shared/domain/booking.py). tests/unit/test_site_messages.py keeps this
// table complete: a code the API gains without a message here fails that test.
export const PROBLEM_MESSAGES = {
  // General
  VALIDATION_FAILED: "Some of the details you entered are not right. Check them and try again.",
  NOT_FOUND: "We could not find what you were looking for. Check the details and try again.",
  FORBIDDEN: "You are not allowed to do this.",
  UNAUTHENTICATED: "You need to sign in to do this.",
  CONFLICT: "Something changed while you were doing this. Try again.",
  IDEMPOTENCY_KEY_REUSED: "This request was already sent with different details. Start again.",
  PAYLOAD_TOO_LARGE: "What you sent is too large.",
  UNSUPPORTED_MEDIA_TYPE: "Your browser sent something this service cannot read. Reload the page and try again.",
  INTERNAL_ERROR: "Sorry, there is a problem with the service. Try again later.",
  REFUSED: "This could not be done.",
  TRY_AGAIN: "The service is busy. Nothing was changed.",
  RATE_LIMITED: "There have been too many attempts.",
  // Eligibility and booking
  NOT_ELIGIBLE: "You cannot book this vaccination. The details you entered may not match our records, or you may not be eligible yet.",
  ALREADY_BOOKED: "You already have an appointment booked for this dose. You can find it under \"Manage your appointments\".",
  SLOT_FULL: "Sorry, that appointment has just been taken. Choose another time.",
  NOT_CONFIRMED: "This booking is no longer active.",
  DOSES_DIFFER: "The new appointments must be for the same doses as the ones you are changing.",
  WRONG_APPOINTMENT_COUNT: "Choose one appointment, or two for a first and second dose.",
  DUPLICATE_SLOT: "You chose the same appointment twice. Choose a different time for your second dose.",
  SECOND_DOSE_NOT_ALLOWED: "You cannot book a second dose with this appointment.",
  SLOT_IN_PAST: "That appointment time has passed. Choose another time.",
  PRODUCT_NOT_OFFERED: "That vaccine is not offered at this place. Choose another place or time.",
  PRODUCT_NOT_ALLOWED: "That vaccine is not suitable for you. Choose an appointment with a different vaccine.",
  AGE_NOT_SERVED: "This place does not vaccinate people of your age. Choose another place.",
  TOO_EARLY: "That appointment is too early for your next dose. Choose a later date.",
  PRODUCT_MISMATCH: "Your next dose must be the same vaccine as your last one. Choose an appointment with that vaccine.",
  INTERVAL_TOO_SHORT: "Your second dose is too soon after your first. Choose a later date for your second dose.",
  INTERVAL_TOO_LONG: "Your second dose is too long after your first. Choose an earlier date for your second dose.",
  INVITATION_EXPIRED: "This invitation has expired. You can still book through the national booking service.",
  // Waiting room
  ADMISSION_REQUIRED: "Your place in the queue has expired or was not found. Join the queue again to book.",
  TICKET_EXPIRED: "Your place in the queue has expired. Join the queue again.",
  TICKET_INVALID: "We could not find your place in the queue. Join the queue again.",
  TICKET_LAPSED: "Your place in the queue was given up because this page was closed when your turn came. Join the queue again.",
  // Staff screens
  SITE_EXISTS: "A site with this ODS code is already registered.",
  SESSION_OVERLAPS: "This session overlaps another session at this site.",
  SESSION_HAS_BOOKINGS: "People are booked into this session. Cancel their bookings too, or move them first.",
  NOT_ACTIVE: "This appointment is not active: it may have been cancelled or already completed.",
  WRONG_DAY: "This appointment is not today.",
  ALREADY_VACCINATED: "This vaccination has already been recorded.",
  SESSION_MOVE_REFUSED: "These bookings cannot be moved to that session.",
};

// Why a person cannot book yet, in plain words (shared/domain/eligibility.py ReasonCode).
export const REASON_MESSAGES = {
  NOT_MATCHED: "We could not match your NHS number and date of birth. Check them and try again.",
  NO_COHORT: "You are not in a group that can have this vaccination.",
  COHORT_NOT_OPEN: "Your group cannot book yet. We will tell you when you can.",
  DOSE_NOT_DUE: "Your next dose is not due yet.",
  COURSE_COMPLETE: "Our records show you have had all the doses you need.",
  ALREADY_BOOKED: "You already have an appointment booked for your next dose.",
  NO_PRODUCT: "There is no vaccine you can have at the moment.",
};

// ---------------------------------------------------------------------------------------------
// Tab-session state. sessionStorage only: it ends when the tab closes, is never sent to a server
// and never appears in a URL or a page title. localStorage would outlive the tab on a shared computer.
const STATE_PREFIX = "vb.";

export const state = {
  get(name) {
    const text = window.sessionStorage.getItem(STATE_PREFIX + name);
    if (text === null) return undefined;
    try { return JSON.parse(text); } catch { return undefined; }
  },
  set(name, value) {
    window.sessionStorage.setItem(STATE_PREFIX + name, JSON.stringify(value));
  },
  update(name, changes) {
    const merged = { ...(state.get(name) || {}), ...changes };
    state.set(name, merged);
    return merged;
  },
  clear(name) {
    window.sessionStorage.removeItem(STATE_PREFIX + name);
  },
  clearAll() {
    for (const key of Object.keys(window.sessionStorage)) {
      if (key.startsWith(STATE_PREFIX)) window.sessionStorage.removeItem(key);
    }
  },
};

// ---------------------------------------------------------------------------------------------
// Calling the API.
export class ApiProblem extends Error {
  constructor(status, problem, retryAfter) {
    super(problem.title || `HTTP ${status}`);
    this.status = status;
    this.code = problem.code || (status >= 500 ? "INTERNAL_ERROR" : "REFUSED");
    this.detail = problem.detail || "";
    this.errors = Array.isArray(problem.errors) ? problem.errors : [];
    this.retryAfter = retryAfter;
  }
}

function newKey() {
  return window.crypto.randomUUID();
}

// In Azure the pages come from the site's own origin and the API from the function app's: the deployed
// pages name it in <meta name="api-origin"> (scripts/publish_site.py). Locally devhost serves both.
const API_ORIGIN = document.querySelector('meta[name="api-origin"]')?.content || "";

/** Calls /api: `call("POST", "/eligibility", body)`. Resolves to the JSON answer; rejects with ApiProblem. */
export async function call(method, path, body, options = {}) {
  const headers = { Accept: "application/json", ...(options.headers || {}) };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (options.idempotencyKey) headers["Idempotency-Key"] = options.idempotencyKey;
  let response;
  try {
    response = await fetch(`${API_ORIGIN}/api${path}`, {
      method, headers, body: body === undefined ? undefined : JSON.stringify(body),
      credentials: API_ORIGIN ? "include" : "same-origin", cache: "no-store",
    });
  } catch {
    throw new ApiProblem(0, { code: "OFFLINE", title: "No connection" }, null);
  }
  const text = await response.text();
  let data = null;
  if (text) {
    try { data = JSON.parse(text); } catch { data = null; }
  }
  if (!response.ok) {
    const retry = Number.parseInt(response.headers.get("Retry-After") || "", 10);
    throw new ApiProblem(response.status, data && typeof data === "object" ? data : {},
                         Number.isFinite(retry) ? retry : null);
  }
  return data;
}

export const api = {
  get: (path, options) => call("GET", path, undefined, options),
  post: (path, body, options) => call("POST", path, body ?? {}, options),
  put: (path, body, options) => call("PUT", path, body ?? {}, options),
  /** A POST that creates something: one Idempotency-Key per attempt, reused if the attempt is retried. */
  create: (path, body, key, options = {}) => call("POST", path, body ?? {}, { ...options, idempotencyKey: key }),
  newKey,
};

function inSeconds(seconds) {
  if (seconds === null || seconds === undefined) return "in a few minutes";
  if (seconds <= 1) return "in a second";
  if (seconds < 90) return `in ${seconds} seconds`;
  const minutes = Math.ceil(seconds / 60);
  return `in ${minutes} minutes`;
}

/** The sentence a person reads for a problem; 429 and 503 say when to try again. */
export function problemMessage(problem) {
  if (problem.code === "OFFLINE") return "We could not reach the service. Check your connection and try again.";
  const base = PROBLEM_MESSAGES[problem.code]
    || (problem.status >= 500 ? PROBLEM_MESSAGES.INTERNAL_ERROR : PROBLEM_MESSAGES.REFUSED);
  if (problem.status === 429 || problem.status === 503) {
    return `${base} Try again ${inSeconds(problem.retryAfter ?? (problem.status === 503 ? 5 : null))}.`;
  }
  return base;
}

// ---------------------------------------------------------------------------------------------
// Building the page.
export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes || {})) {
    if (value === false || value === null || value === undefined) continue;
    if (name === "class") node.className = value;
    else if (name === "text") node.textContent = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

const NHS_LOGO_PATH = "M200 0v80H0V0h200Zm-27.5 5.5c-14.5 0-29 5-29 22 0 10.2 7.7 13.5 14.7 16.3l.7.3c5.4 2 10.1 3.9 10.1 8.4 0 6.5-8.5 7.5-14 7.5s-12.5-1.5-16-3.5L135 70c5.5 2 13.5 3.5 20 3.5 15.5 0 32-4.5 32-22.5 0-19.5-25.5-16.5-25.5-25.5 0-5.5 5.5-6.5 12.5-6.5a35 35 0 0 1 14.5 3l4-13.5c-4.5-2-12-3-20-3Zm-131 2h-22l-14 65H22l9-45h.5l13.5 45h21.5l14-65H64l-9 45h-.5l-13-45Zm63 0h-18l-13 65h17l6-28H117l-5.5 28H129l13.5-65H125L119.5 32h-20l5-24.5Z";

function header(service, home, navigation) {
  const svgNs = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(svgNs, "svg");
  for (const [k, v] of Object.entries({ class: "nhsuk-header__logo", viewBox: "0 0 200 80", height: "40",
    width: "100", focusable: "false", role: "img", "aria-label": "NHS" })) svg.setAttribute(k, v);
  const title = document.createElementNS(svgNs, "title");
  title.textContent = "NHS";
  const path = document.createElementNS(svgNs, "path");
  path.setAttribute("fill", "currentcolor");
  path.setAttribute("d", NHS_LOGO_PATH);
  svg.append(title, path);
  const link = el("a", { class: "nhsuk-header__service-logo", href: home, "aria-label": `${service} homepage` }, svg,
    el("span", { class: "nhsuk-header__service-name", text: service }));
  const bar = el("header", { class: "nhsuk-header", role: "banner" },
    el("div", { class: "nhsuk-header__container nhsuk-width-container" },
      el("div", { class: "nhsuk-header__service" }, link)));
  if (navigation && navigation.length) {
    bar.append(el("nav", { class: "nhsuk-header__navigation", "aria-label": "Menu" },
      el("div", { class: "nhsuk-header__navigation-container nhsuk-width-container" },
        el("ul", { class: "nhsuk-header__navigation-list" },
          navigation.map(({ text, href }) => el("li", { class: "nhsuk-header__navigation-item" },
            el("a", { class: "nhsuk-header__navigation-link", href,
              "aria-current": window.location.pathname === href ? "page" : null }, text)))))));
  }
  return bar;
}

function footer() {
  return el("footer", { class: "nhsuk-footer", role: "contentinfo" },
    el("div", { class: "nhsuk-width-container" },
      el("div", { class: "nhsuk-footer__meta" },
        el("h2", { class: "nhsuk-u-visually-hidden", text: "Support links" }),
        el("ul", { class: "nhsuk-footer__list" },
          el("li", { class: "nhsuk-footer__list-item" },
            el("a", { class: "nhsuk-footer__list-item-link", href: "/manage", text: "Manage your appointments" }))),
        el("p", { class: "nhsuk-body-s", text: "© NHS England" }))));
}

/**
 * Puts the skip link, header and footer around the page's <main id="maincontent">. The page's <body>
 * names its service and home: <body data-service="Book a vaccination" data-home="/">. `navigation`
 * is an optional list of {text, href} for the header's menu (staff screens).
 */
export function layout({ navigation } = {}) {
  const body = document.body;
  body.classList.add("js-enabled", "nhsuk-frontend-supported");
  const service = body.dataset.service || "Book a vaccination";
  const home = body.dataset.home || "/";
  body.prepend(el("a", { class: "nhsuk-skip-link", href: "#maincontent", text: "Skip to main content" }),
    header(service, home, navigation));
  body.append(footer());
  // Links styled as buttons act on Space too, as a button does (nhsuk-frontend's button behaviour).
  document.addEventListener("keydown", (event) => {
    const target = event.target;
    if (event.key === " " && target instanceof HTMLAnchorElement && target.getAttribute("role") === "button") {
      event.preventDefault();
      target.click();
    }
  });
  // A page reached by a back link or history may hold an old error state: start clean.
  document.title = document.title.replace(/^Error: /, "");
}

// ---------------------------------------------------------------------------------------------
// Error summary and field errors (the NHS pattern): the summary at the top of <main> links to each
// field; each field's group is marked and its message is read before the input.

/**
 * Shows errors: a list of {id, message} where id is the input (or the first input of a date) to link to.
 * The summary takes focus so a screen reader reads it, and the title starts "Error: ".
 */
export function showErrors(errors, { formGroupOf } = {}) {
  clearErrors();
  if (!errors.length) return;
  const main = document.getElementById("maincontent");
  const list = el("ul", { class: "nhsuk-list nhsuk-error-summary__list" },
    errors.map(({ id, message }) => el("li", {}, id
      ? el("a", { href: `#${id}`, onclick: (event) => { event.preventDefault(); focusField(id); } }, message)
      : message)));
  const summary = el("div", { class: "nhsuk-error-summary", "data-error-summary": "", tabindex: "-1" },
    el("div", { role: "alert" },
      el("h2", { class: "nhsuk-error-summary__heading", text: "There is a problem" }),
      el("div", { class: "nhsuk-error-summary__body" }, list)));
  const anchor = main.querySelector("[data-errors-here]") || main.querySelector(".nhsuk-grid-column-two-thirds") || main;
  anchor.prepend(summary);
  for (const { id, message } of errors) {
    if (!id) continue;
    const input = document.getElementById(id);
    if (!input) continue;
    // A radio or a part of a date belongs to its question's group (marked data-field); any other input to its own.
    const grouped = input.type === "radio" || input.type === "checkbox" || input.classList.contains("nhsuk-date-input__input");
    const group = (formGroupOf && formGroupOf(input)) || (grouped && input.closest("[data-field]"))
      || input.closest(".nhsuk-form-group");
    if (!group) continue;
    group.classList.add("nhsuk-form-group--error");
    const messageId = `${grouped ? group.dataset.field || id : id}-error`;
    const text = el("span", { class: "nhsuk-error-message", id: messageId, "data-error-message": "" },
      el("span", { class: "nhsuk-u-visually-hidden", text: "Error: " }), message);
    const place = group.querySelector("legend, label");
    const target = group.querySelector(".nhsuk-hint") || place;
    if (target && target.parentNode === group) target.after(text);
    else if (target) target.parentNode.insertBefore(text, target.nextSibling);
    else group.prepend(text);
    const described = group.querySelector("fieldset") || input;
    const existing = (described.getAttribute("aria-describedby") || "").split(" ").filter(Boolean);
    described.setAttribute("aria-describedby", [...existing, messageId].join(" "));
    for (const field of group.querySelectorAll("input, select, textarea")) {
      if (field.type === "radio" || field.type === "checkbox") continue;
      field.classList.add(field.tagName === "SELECT" ? "nhsuk-select--error" : "nhsuk-input--error");
    }
  }
  document.title = `Error: ${document.title.replace(/^Error: /, "")}`;
  summary.focus();
}

export function clearErrors() {
  for (const node of document.querySelectorAll("[data-error-summary], [data-error-message]")) node.remove();
  for (const group of document.querySelectorAll(".nhsuk-form-group--error")) group.classList.remove("nhsuk-form-group--error");
  for (const field of document.querySelectorAll(".nhsuk-input--error, .nhsuk-select--error")) {
    field.classList.remove("nhsuk-input--error", "nhsuk-select--error");
  }
  for (const node of document.querySelectorAll("[aria-describedby]")) {
    const kept = node.getAttribute("aria-describedby").split(" ").filter((id) => !id.endsWith("-error"));
    if (kept.length) node.setAttribute("aria-describedby", kept.join(" "));
    else node.removeAttribute("aria-describedby");
  }
  document.title = document.title.replace(/^Error: /, "");
}

function focusField(id) {
  const input = document.getElementById(id);
  if (!input) return;
  const legend = input.closest("fieldset")?.querySelector("legend");
  (legend || input).scrollIntoView({ block: "start" });
  input.focus({ preventScroll: true });
}

/** The field a problem's `errors[].field` names, mapped to an input id and a message by the page. */
export function fieldErrors(problem, fields) {
  const seen = new Set();
  const out = [];
  for (const error of problem.errors || []) {
    const name = String(error.field || "").replace(/^body\./, "");
    const match = Object.keys(fields).find((key) => name === key || name.startsWith(`${key}.`) || name.startsWith(`${key}[`));
    if (match && !seen.has(match)) {
      seen.add(match);
      out.push({ id: fields[match].id, message: fields[match].message });
    }
  }
  return out;
}

/**
 * Wires a form: on submit, clears errors, disables the button, runs handler(form); a thrown list of
 * {id, message} (a Invalid) or an ApiProblem becomes the error summary. No personal data ever goes in a
 * URL: forms post with fetch and pages move on with go().
 */
export class Invalid extends Error {
  constructor(errors) {
    super("invalid");
    this.errors = errors;
  }
}

export function onSubmit(form, handler, { fields = {}, messages = {} } = {}) {
  form.setAttribute("novalidate", "");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const button = form.querySelector("button[type=submit], button:not([type])");
    if (button?.disabled) return;
    clearErrors();
    if (button) button.disabled = true;
    form.setAttribute("aria-busy", "true");
    try {
      await handler(form);
    } catch (error) {
      showProblem(error, { fields, messages });
    } finally {
      form.removeAttribute("aria-busy");
      if (button) button.disabled = false;
    }
  });
}

/** The error summary for an Invalid, an ApiProblem or anything else thrown. */
export function showProblem(error, { fields = {}, messages = {} } = {}) {
  if (error instanceof Invalid) {
    showErrors(error.errors);
    return;
  }
  if (error instanceof ApiProblem) {
    const linked = error.code === "VALIDATION_FAILED" ? fieldErrors(error, fields) : [];
    if (linked.length) {
      showErrors(linked);
      return;
    }
    const own = messages[error.code];
    const text = typeof own === "function" ? own(error) : own;
    showErrors([{ id: null, message: text ? String(text) : problemMessage(error) }]);
    return;
  }
  console.error(error); // eslint-disable-line no-console
  showErrors([{ id: null, message: PROBLEM_MESSAGES.INTERNAL_ERROR }]);
}

// ---------------------------------------------------------------------------------------------
// Dates: the day/month/year input (NHS pattern), and how times are shown (UK time).
const MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September",
  "October", "November", "December"];

/**
 * Reads the date input whose inputs are `${prefix}-day`, `-month`, `-year`. Returns {iso} or
 * {error, id} with the NHS service manual's messages; `label` is e.g. "Date of birth".
 */
export function readDate(prefix, { label = "Date", past = false, future = false } = {}) {
  const value = (part) => (document.getElementById(`${prefix}-${part}`)?.value || "").trim();
  const parts = { day: value("day"), month: value("month"), year: value("year") };
  const missing = ["day", "month", "year"].filter((p) => !parts[p]);
  if (missing.length === 3) return { error: `Enter your ${label.toLowerCase()}`, id: `${prefix}-day` };
  if (missing.length) {
    return { error: `${label} must include a ${missing.join(" and a ")}`, id: `${prefix}-${missing[0]}` };
  }
  const monthName = MONTHS.findIndex((m) => m.toLowerCase().startsWith(parts.month.toLowerCase()) && parts.month.length >= 3);
  const day = Number(parts.day);
  const month = /^\d{1,2}$/.test(parts.month) ? Number(parts.month) : monthName + 1;
  const year = Number(parts.year);
  if (!/^\d{1,2}$/.test(parts.day) || !month || !/^\d{4}$/.test(parts.year)) {
    return { error: `${label} must be a real date`, id: `${prefix}-day` };
  }
  const date = new Date(Date.UTC(year, month - 1, day));
  if (date.getUTCFullYear() !== year || date.getUTCMonth() !== month - 1 || date.getUTCDate() !== day) {
    return { error: `${label} must be a real date`, id: `${prefix}-day` };
  }
  const iso = `${String(year).padStart(4, "0")}-${String(month).padStart(2, "0")}-${String(day).padStart(2, "0")}`;
  const today = todayIso();
  if (past && iso >= today) return { error: `${label} must be in the past`, id: `${prefix}-day` };
  if (future && iso < today) return { error: `${label} must be today or in the future`, id: `${prefix}-day` };
  if (year < 1890) return { error: `${label} must be a real date`, id: `${prefix}-year` };
  return { iso };
}

/** Puts an ISO date back into a date input (when a person comes back to change it). */
export function fillDate(prefix, iso) {
  if (!iso) return;
  const [year, month, day] = iso.split("-");
  document.getElementById(`${prefix}-day`).value = String(Number(day));
  document.getElementById(`${prefix}-month`).value = String(Number(month));
  document.getElementById(`${prefix}-year`).value = year;
}

const LONDON = "Europe/London";

export function todayIso() {
  return londonDate(new Date().toISOString());
}

/** The Europe/London calendar date of an ISO time, as YYYY-MM-DD. */
export function londonDate(isoTime) {
  const parts = new Intl.DateTimeFormat("en-GB", { timeZone: LONDON, year: "numeric", month: "2-digit", day: "2-digit" })
    .formatToParts(new Date(isoTime));
  const get = (type) => parts.find((p) => p.type === type).value;
  return `${get("year")}-${get("month")}-${get("day")}`;
}

/** "Monday 7 June 2027" for a YYYY-MM-DD date. */
export function formatDate(isoDate) {
  const [y, m, d] = isoDate.split("-").map(Number);
  return new Intl.DateTimeFormat("en-GB", { timeZone: "UTC", weekday: "long", day: "numeric", month: "long", year: "numeric" })
    .format(new Date(Date.UTC(y, m - 1, d))).replace(",", "");
}

/** "9:30am" in UK time for an ISO time with offset. */
export function formatTime(isoTime) {
  const text = new Intl.DateTimeFormat("en-GB", { timeZone: LONDON, hour: "numeric", minute: "2-digit", hour12: true })
    .format(new Date(isoTime));
  return text.replace(/\s/g, "").toLowerCase();
}

export function formatDateTime(isoTime) {
  return `${formatDate(londonDate(isoTime))} at ${formatTime(isoTime)}`;
}

export function addDays(isoDate, days) {
  const [y, m, d] = isoDate.split("-").map(Number);
  return new Date(Date.UTC(y, m - 1, d + days)).toISOString().slice(0, 10);
}

// ---------------------------------------------------------------------------------------------
// Checks a person's own input before it is sent.

/** Modulus 11, as shared/domain/nhs_number.py: 10 digits, spaces and dashes allowed. */
export function validNhsNumber(text) {
  const digits = text.replace(/[\s-]/g, "");
  if (!/^\d{10}$/.test(digits)) return false;
  const sum = [...digits.slice(0, 9)].reduce((total, digit, i) => total + Number(digit) * (10 - i), 0);
  const check = 11 - (sum % 11);
  const expected = check === 11 ? 0 : check;
  return expected !== 10 && expected === Number(digits[9]);
}

export function formatNhsNumber(text) {
  const digits = text.replace(/[\s-]/g, "");
  return `${digits.slice(0, 3)} ${digits.slice(3, 6)} ${digits.slice(6)}`;
}

/** The outward code (district) of a full postcode or a district: only that goes in a query string. */
export function postcodeDistrict(text) {
  const compact = text.replace(/\s+/g, "").toUpperCase();
  if (/^[A-Z]{1,2}\d[A-Z\d]?\d[A-Z]{2}$/.test(compact)) return compact.slice(0, -3);
  if (/^[A-Z]{1,2}\d[A-Z\d]?$/.test(compact)) return compact;
  return null;
}

export function validMobile(text) {
  const compact = text.replace(/[\s()-]/g, "");
  return /^(\+447|07|00447)\d{9}$/.test(compact);
}

export function validEmail(text) {
  return /^[^\s@]+@[^\s@]+\.[^\s@]+$/.test(text.trim());
}

/** Moves to another page of the site (never with personal data in the path or query). */
export function go(path) {
  window.location.assign(path);
}

export function productName(code) {
  return { PFIZER: "Pfizer/BioNTech", MODERNA: "Moderna", ASTRAZENECA: "AstraZeneca" }[code] || code;
}

export function doseName(dose) {
  return { 1: "1st dose", 2: "2nd dose" }[dose] || `dose ${dose} (booster)`;
}

// ---------------------------------------------------------------------------------------------
// The waiting room (docs/waiting-room.md). The ticket and the admission token live in the tab's
// sessionStorage; POST /api/bookings sends the token as `Authorization: Bearer`.
export const queue = {
  current() {
    return state.get("queue") || {};
  },
  /** Joins, or asks again with the ticket held; returns the answer ({position, estimatedWaitSeconds, admitted, pollAfterSeconds}). */
  async check() {
    const held = queue.current();
    const answer = held.ticket
      ? await api.post("/queue/status", { ticket: held.ticket })
      : await api.post("/queue/join", {});
    state.set("queue", { ticket: answer.ticket || held.ticket, admissionToken: answer.admissionToken || null,
      admitted: Boolean(answer.admitted) });
    return answer;
  },
  admitted() {
    return Boolean(queue.current().admissionToken);
  },
  authorization() {
    const token = queue.current().admissionToken;
    return token ? { Authorization: `Bearer ${token}` } : {};
  },
  /** A fresh token for the one admission (each poll of an admitted ticket gives one; they last 10 minutes). */
  async refresh() {
    if (!queue.current().ticket) return;
    try {
      await queue.check();
    } catch (error) {
      if (!(error instanceof ApiProblem) || error.status >= 500) throw error;
      state.clear("queue");
    }
  },
  forget() {
    state.clear("queue");
  },
};

/** "about 3 minutes" for a number of seconds: an estimate, so never to the second. */
export function describeWait(seconds) {
  if (seconds === null || seconds === undefined) return "a few minutes";
  if (seconds < 60) return "less than a minute";
  const minutes = Math.round(seconds / 60);
  if (minutes < 60) return `about ${minutes} minute${minutes === 1 ? "" : "s"}`;
  const hours = Math.floor(minutes / 60);
  const rest = minutes % 60;
  return `about ${hours} hour${hours === 1 ? "" : "s"}${rest ? ` ${rest} minute${rest === 1 ? "" : "s"}` : ""}`;
}

export function sleep(ms) {
  return new Promise((resolve) => { window.setTimeout(resolve, ms); });
}
