// The waiting room's switch and admission rate (NationalAdmin): PUT /api/admin/waiting-room.
import { Invalid, api, el, formatDateTime, onSubmit, showProblem } from "/assets/app.js";
import { showSuccess, staffLayout } from "/assets/pages/staff.js";

staffLayout();

function show(room) {
  document.getElementById(room.enabled ? "enabled-on" : "enabled-off").checked = true;
  document.getElementById("rate").value = String(room.admitPerMinute);
  const item = (key, value) => el("div", { class: "nhsuk-summary-list__row" },
    el("dt", { class: "nhsuk-summary-list__key", text: key }),
    el("dd", { class: "nhsuk-summary-list__value", text: value }));
  document.getElementById("now").replaceChildren(el("dl", { class: "nhsuk-summary-list" },
    item("Now", room.enabled ? "On" : "Off"),
    item("Let through each minute", String(room.admitPerMinute)),
    item("Waiting", String(room.waiting)),
    item("Let through since it was switched on", String(room.admitted)),
    item("Last changed", room.updatedAt ? formatDateTime(room.updatedAt) : "Never")));
}

onSubmit(document.getElementById("room-form"), async () => {
  const chosen = document.querySelector("input[name=enabled]:checked");
  const rate = document.getElementById("rate").value.trim().replace(/,/g, "");
  const errors = [];
  if (!chosen) errors.push({ id: "enabled-on", message: "Choose whether the waiting room is on or off" });
  if (!/^\d+$/.test(rate) || Number(rate) < 1 || Number(rate) > 1000000) {
    errors.push({ id: "rate", message: "People let through each minute must be a whole number from 1 to 1,000,000" });
  }
  if (errors.length) throw new Invalid(errors);
  const room = await api.put("/admin/waiting-room", { enabled: chosen.value === "on", admitPerMinute: Number(rate) });
  show(room);
  showSuccess(`The waiting room is ${room.enabled ? "on" : "off"}, letting ${room.admitPerMinute} people through each minute`);
}, { fields: { admitPerMinute: { id: "rate", message: "People let through each minute must be from 1 to 1,000,000" } } });

api.get("/admin/waiting-room").then(show).catch((error) => showProblem(error));
