// The staff start page: which site (or GP practice) this tab works at, kept for the tab only.
import { Invalid, el, go, onSubmit } from "/assets/app.js";
import { chooseSite, currentSite, staffLayout, validSiteId } from "/assets/pages/staff.js";

staffLayout();
const input = document.getElementById("site-id");
const current = currentSite();
if (current) {
  input.value = current;
  document.querySelector("[data-current-site]").append(el("div", { class: "nhsuk-inset-text" },
    el("p", {}, "You are working at ", el("strong", { text: current }), ". ",
      el("a", { href: "/staff/day", text: "Go to the day list" }))));
}
onSubmit(document.getElementById("site-form"), async () => {
  const siteId = input.value.trim();
  if (!siteId) throw new Invalid([{ id: "site-id", message: "Enter the ODS code of your site or GP practice" }]);
  if (!validSiteId(siteId)) {
    throw new Invalid([{ id: "site-id", message: "ODS code must be letters and numbers only, like FA001" }]);
  }
  chooseSite(siteId);
  go("/staff/day");
});
