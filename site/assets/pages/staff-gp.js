// A GP practice's uploaded patient lists: each with its outcome counts, the report to download, and
// "send invitations" to the people the list found invitable.
import { ApiProblem, api, el, formatDateTime, showProblem } from "/assets/app.js";
import { clearSuccess, currentSite, showSite, showSuccess, staffLayout, table } from "/assets/pages/staff.js";

staffLayout();
const ods = currentSite();
const base = `/gp/${encodeURIComponent(ods || "")}`;

const OUTCOME_LABELS = {
  INVITABLE: "Can be invited",
  ELIGIBLE_NO_MOBILE: "Eligible, no mobile number",
  NOT_ELIGIBLE: "Not eligible",
  ALREADY_BOOKED: "Already booked",
  COURSE_COMPLETE: "Course complete",
  NOT_IN_REGISTER: "Not in the national register",
  DETAILS_DIFFER: "Date of birth does not match",
  DUPLICATE_ROW: "Duplicate row",
  INVALID: "Invalid row",
};
const STATUS = { processing: "Being checked", done: "Checked", rejected: "Rejected" };

async function load() {
  const answer = await api.get(`${base}/uploads`);
  const place = document.getElementById("uploads");
  if (!answer.uploads.length) {
    place.replaceChildren(el("p", { text: "No patient lists have been uploaded yet." }));
    return;
  }
  place.replaceChildren(...answer.uploads.map(card));
}

function card(upload) {
  const outcomes = Object.entries(upload.outcomes).sort(([a], [b]) => Object.keys(OUTCOME_LABELS).indexOf(a)
    - Object.keys(OUTCOME_LABELS).indexOf(b));
  const heading = `${upload.fileName}.csv`;
  const invitable = upload.outcomes.INVITABLE || 0;
  return el("div", { class: "nhsuk-card", "data-upload": upload.fileName },
    el("div", { class: "nhsuk-card__content" },
      el("h2", { class: "nhsuk-card__heading nhsuk-heading-m", text: heading }),
      el("dl", { class: "nhsuk-summary-list" },
        row("Received", formatDateTime(upload.receivedAt)),
        row("Status", STATUS[upload.status] || upload.status),
        row("Patients in the list", String(upload.rows)),
        row("Invitations sent", String(upload.invited)),
        upload.problem ? row("Problem", upload.problem) : null),
      outcomes.length ? table(["Outcome", "Patients"], outcomes.map(([code, count]) => [OUTCOME_LABELS[code] || code,
        String(count)]), { caption: `Outcomes of ${heading}`, numeric: [1] }) : null,
      el("div", { class: "vb-actions" },
        el("button", { class: "nhsuk-button nhsuk-button--secondary", type: "button", onclick: () => download(upload) },
          "Download report", el("span", { class: "nhsuk-u-visually-hidden", text: ` for ${heading}` })),
        upload.status === "done" && invitable > 0
          ? el("button", { class: "nhsuk-button", type: "button", onclick: (event) => invite(upload, event.currentTarget) },
            "Send invitations", el("span", { class: "nhsuk-u-visually-hidden", text: ` for ${heading}` }))
          : null)));
}

function row(key, value) {
  return el("div", { class: "nhsuk-summary-list__row" },
    el("dt", { class: "nhsuk-summary-list__key", text: key }),
    el("dd", { class: "nhsuk-summary-list__value", text: value }));
}

async function download(upload) {
  clearSuccess();
  try {
    // Fetched rather than linked: the report names NHS numbers, so it is saved from memory and never
    // left in the browser's cache or history under an address.
    const response = await fetch(`${reportBase()}/uploads/${encodeURIComponent(upload.fileName)}/report`,
      { credentials: reportBase().startsWith("http") ? "include" : "same-origin", cache: "no-store" });
    if (!response.ok) throw new ApiProblem(response.status, await response.json().catch(() => ({})), null);
    const link = el("a", { href: URL.createObjectURL(await response.blob()), download: `${upload.fileName}.report.csv` });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(link.href), 1000);
  } catch (error) {
    showProblem(error);
  }
}

function reportBase() {
  const origin = document.querySelector('meta[name="api-origin"]')?.content || "";
  return `${origin}/api${base}`;
}

async function invite(upload, button) {
  clearSuccess();
  button.disabled = true;
  try {
    const answer = await api.post(`${base}/invitations`, { fileName: upload.fileName });
    await load();
    const skipped = Object.values(answer.skipped).reduce((total, n) => total + n, 0);
    showSuccess(`${answer.invited} invitation${answer.invited === 1 ? "" : "s"} sent for ${upload.fileName}.csv`
      + (skipped ? `, ${skipped} not sent (already invited, booked or over the free places)` : ""));
  } catch (error) {
    showProblem(error);
  } finally {
    button.disabled = false;
  }
}

if (showSite("practice")) load().catch((error) => showProblem(error));
