// The start page: a fresh journey each time someone starts.
import { layout, state } from "/assets/app.js";

layout();
document.getElementById("start").addEventListener("click", () => state.clear("booking"));
