// A site's day list: check people in, and record the vaccination given (product and batch).
import {
  Invalid, api, el, fillDate, formatDate, formatTime, onSubmit, productName, readDate, showProblem, todayIso,
} from "/assets/app.js";
import {
  PRODUCTS, STATUS_LABELS, clearSuccess, currentSite, showSite, showSuccess, staffLayout, table,
} from "/assets/pages/staff.js";

staffLayout();
const siteId = currentSite();
let day = todayIso();
fillDate("day", day);

async function load() {
  const place = document.getElementById("appointments");
  const listed = await api.get(`/admin/sites/${encodeURIComponent(siteId)}/appointments?date=${day}`);
  const rows = listed.appointments.map((a) => [
    formatTime(a.start), a.reference, a.name || "", String(a.dose), productName(a.product),
    el("strong", { class: "nhsuk-tag nhsuk-tag--white", text: STATUS_LABELS[a.status] || a.status }),
    action(a),
  ]);
  place.replaceChildren(rows.length
    ? table(["Time", "Reference", "Name", "Dose", "Vaccine", "Status", "Action"], rows,
      { caption: `Appointments on ${formatDate(listed.date)}`, numeric: [3] })
    : el("p", { text: `No appointments on ${formatDate(listed.date)}.` }));
}

function action(appointment) {
  if (appointment.status === "confirmed") {
    return el("button", { class: "nhsuk-button nhsuk-button--secondary nhsuk-button--small", type: "button",
      onclick: () => checkIn(appointment) }, "Check in", el("span", { class: "nhsuk-u-visually-hidden", text: ` ${appointment.reference}` }));
  }
  if (appointment.status === "checkedIn") {
    return el("button", { class: "nhsuk-button nhsuk-button--small", type: "button",
      onclick: () => recordForm(appointment) }, "Record vaccination",
    el("span", { class: "nhsuk-u-visually-hidden", text: ` for ${appointment.reference}` }));
  }
  return "";
}

async function checkIn(appointment) {
  clearSuccess();
  try {
    const answer = await api.post("/admin/checkins", { reference: appointment.reference });
    const person = answer.person;
    document.querySelector("[data-checked-in]").replaceChildren(el("div", { class: "nhsuk-inset-text" },
      el("p", {}, `${appointment.reference} checked in: `, el("strong", { text: `${person.givenName} ${person.familyName}` }),
        `, born ${formatDate(person.dateOfBirth)}. Ask them to confirm their date of birth.`)));
    showSuccess(`Checked in ${appointment.reference}`);
    await load();
  } catch (error) {
    showProblem(error);
  }
}

function recordForm(appointment) {
  clearSuccess();
  const products = PRODUCTS.map((code) => el("option", { value: code, selected: code === appointment.product }, productName(code)));
  const form = el("form", { class: "vb-inline-form", id: "record-form" },
    el("h2", { class: "nhsuk-heading-m", text: `Record vaccination for ${appointment.reference}` }),
    el("p", { text: `${STATUS_LABELS.checkedIn}, dose ${appointment.dose}, booked for ${productName(appointment.product)} at ${formatTime(appointment.start)}.` }),
    el("div", { class: "nhsuk-form-group" },
      el("label", { class: "nhsuk-label", for: "product", text: "Vaccine given" }),
      el("select", { class: "nhsuk-select", id: "product", name: "product" }, products)),
    el("div", { class: "nhsuk-form-group" },
      el("label", { class: "nhsuk-label", for: "batch", text: "Batch number" }),
      el("div", { class: "nhsuk-hint", id: "batch-hint", text: "As printed on the vial, for example EL1234" }),
      el("input", { class: "nhsuk-input nhsuk-input--width-10", id: "batch", name: "batch", type: "text",
        autocomplete: "off", spellcheck: "false", "aria-describedby": "batch-hint" })),
    el("div", { class: "vb-actions" },
      el("button", { class: "nhsuk-button", type: "submit", text: "Record vaccination" }),
      el("button", { class: "nhsuk-button nhsuk-button--secondary", type: "button", text: "Cancel",
        onclick: () => document.querySelector("[data-record]").replaceChildren() })));
  document.querySelector("[data-record]").replaceChildren(form);
  onSubmit(form, async () => {
    const batch = document.getElementById("batch").value.trim();
    if (!batch) throw new Invalid([{ id: "batch", message: "Enter the batch number" }]);
    const answer = await api.create("/admin/vaccinations", {
      reference: appointment.reference, dose: appointment.dose, product: document.getElementById("product").value,
      batchNumber: batch, administeredAt: new Date().toISOString(),
    }, api.newKey());
    document.querySelector("[data-record]").replaceChildren();
    showSuccess(`Vaccination recorded for ${appointment.reference} (dose ${answer.dose})`);
    await load();
  }, { fields: { batchNumber: { id: "batch", message: "Enter the batch number as printed on the vial" },
    product: { id: "product", message: "Choose the vaccine given" } } });
  document.getElementById("batch").focus();
}

if (showSite()) {
  onSubmit(document.getElementById("day-form"), async () => {
    const read = readDate("day", { label: "Day" });
    if (read.error) throw new Invalid([{ id: read.id, message: read.error }]);
    day = read.iso;
    await load();
  });
  load().catch((error) => showProblem(error));
} else {
  document.getElementById("day-form").remove();
}
