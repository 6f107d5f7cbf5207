// keycrew's small script: copy buttons and confirmation dialogs. Pages work without it, save
// the dialogs' confirmations (each one's form is also reachable from the dialog itself).
"use strict";

document.addEventListener("click", (event) => {
  const target = event.target instanceof Element ? event.target : null;
  if (!target) return;

  const copy = target.closest("[data-copy]");
  if (copy) {
    const input = document.getElementById(copy.getAttribute("data-copy"));
    if (!input) return;
    const done = () => {
      const label = copy.textContent;
      copy.textContent = "Copied";
      copy.setAttribute("aria-live", "polite");
      setTimeout(() => { copy.textContent = label; }, 1500);
    };
    input.select();
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(input.value).then(done, () => { document.execCommand("copy"); done(); });
    } else {
      document.execCommand("copy");
      done();
    }
    return;
  }

  const opener = target.closest("[data-dialog-open]");
  if (opener) {
    const dialog = document.getElementById(opener.getAttribute("data-dialog-open"));
    if (dialog && typeof dialog.showModal === "function") {
      event.preventDefault();
      dialog.showModal();
    }
    return;
  }

  const closer = target.closest("[data-dialog-close]");
  if (closer) {
    const dialog = closer.closest("dialog");
    if (dialog) dialog.close();
  }
});

// Rotate dialogs: "Keep current expiry" fills the date field, and the sentence above it says the
// date the new token will get (the server says it again in its message).
const formatDate = (iso) => {
  const date = new Date(iso + "T00:00:00Z");
  if (Number.isNaN(date.getTime())) return iso;
  return date.toLocaleDateString("en-US", { month: "short", day: "numeric", year: "numeric", timeZone: "UTC" });
};
const echoDate = (input) => {
  const echo = document.querySelector(`[data-date-echo="${input.id}"]`);
  if (echo && input.value) echo.textContent = formatDate(input.value);
};
document.addEventListener("click", (event) => {
  const target = event.target instanceof Element ? event.target.closest("[data-fill-date]") : null;
  if (!target) return;
  const input = document.getElementById(target.getAttribute("data-fill-date"));
  if (!input) return;
  input.value = target.getAttribute("data-value");
  echoDate(input);
  input.focus();
});
document.addEventListener("input", (event) => {
  const input = event.target;
  if (input instanceof HTMLInputElement && input.hasAttribute("data-date-echo-source")) echoDate(input);
});
