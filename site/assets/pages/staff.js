// What every staff screen shares: the menu, the site being worked at (tab session only), banners,
// tables and the labels staff read for the API's codes.
import { el, layout, state } from "/assets/app.js";

export const STAFF_NAVIGATION = [
  { text: "Day list", href: "/staff/day" },
  { text: "Sessions", href: "/staff/sessions" },
  { text: "GP uploads", href: "/staff/gp" },
  { text: "Waiting room", href: "/staff/waiting-room" },
  { text: "Dashboard", href: "/staff/dashboard" },
];

export const PRODUCTS = ["PFIZER", "MODERNA", "ASTRAZENECA"];
const SITE_ID = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/;

export const STATUS_LABELS = {
  confirmed: "Booked",
  checkedIn: "Checked in",
  vaccinated: "Vaccinated",
  cancelled: "Cancelled",
  didNotAttend: "Did not attend",
  pending: "Being booked",
};

export function staffLayout() {
  layout({ navigation: STAFF_NAVIGATION });
}

/** The site (or GP practice) this tab works at: sessionStorage, never the address. */
export function currentSite() {
  return state.get("staff")?.siteId;
}

export function chooseSite(siteId) {
  state.update("staff", { siteId });
}

export function validSiteId(text) {
  return SITE_ID.test(text);
}

/** Fills [data-site] with the site being worked at and a link to change it; false when none is chosen. */
export function showSite(what = "site") {
  const place = document.querySelector("[data-site]");
  const siteId = currentSite();
  if (!place) return Boolean(siteId);
  place.replaceChildren(siteId
    ? el("p", {}, `${what === "practice" ? "GP practice" : "Site"}: `, el("strong", { text: siteId }), " ",
      el("a", { href: "/staff", text: `Change ${what}` }))
    : el("div", { class: "nhsuk-inset-text" },
      el("p", {}, `Choose the ${what} you are working at first. `, el("a", { href: "/staff", text: `Choose a ${what}` }))));
  return Boolean(siteId);
}

/** A success banner at the top of the page's column (replacing any before it); it takes focus. */
export function showSuccess(text) {
  for (const old of document.querySelectorAll("[data-success]")) old.remove();
  const banner = el("div", { class: "nhsuk-notification-banner nhsuk-notification-banner--success", role: "alert",
    "aria-labelledby": "success-title", "data-success": "", tabindex: "-1" },
  el("div", { class: "nhsuk-notification-banner__header" },
    el("h2", { class: "nhsuk-notification-banner__title", id: "success-title", text: "Success" })),
  el("div", { class: "nhsuk-notification-banner__content" },
    el("p", { class: "nhsuk-notification-banner__heading", text })));
  const column = document.querySelector("[data-errors-here]") || document.querySelector("main .nhsuk-grid-column-full")
    || document.querySelector("main");
  column.prepend(banner);
  banner.focus();
}

export function clearSuccess() {
  for (const old of document.querySelectorAll("[data-success]")) old.remove();
}

/** An nhsuk table: headers, rows of cells (a cell is text or a node), an optional caption. */
export function table(headers, rows, { caption, numeric = [] } = {}) {
  return el("table", { class: "nhsuk-table" },
    caption ? el("caption", { class: "nhsuk-table__caption nhsuk-table__caption--m", text: caption }) : null,
    el("thead", { class: "nhsuk-table__head" }, el("tr", { class: "nhsuk-table__row" },
      headers.map((h, i) => el("th", { class: `nhsuk-table__header${numeric.includes(i) ? " nhsuk-table__header--numeric" : ""}`,
        scope: "col", text: h })))),
    el("tbody", { class: "nhsuk-table__body" }, rows.map((cells) => el("tr", { class: "nhsuk-table__row" },
      cells.map((cell, i) => el("td", { class: `nhsuk-table__cell${numeric.includes(i) ? " nhsuk-table__cell--numeric" : ""}` },
        cell))))));
}

/** "9:30" from "09:30". */
export function wallTime(hhmm) {
  const [h, m] = hhmm.split(":").map(Number);
  return `${h}:${String(m).padStart(2, "0")}`;
}
