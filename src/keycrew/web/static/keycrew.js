// keycrew's small script: copy buttons, confirmation dialogs, the phone menus and table cards
// (see the end). Pages work without it, save
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

// -- phones and keyboards -------------------------------------------------------------------
// Menus: below 800 px the top bar's links and the sidebar fold behind a button
// ([data-menu-toggle], aria-controls names the panel). Without this script the button stays
// hidden and the links simply wrap onto lines. Escape closes an open menu and puts the focus
// back on its button; so does a click elsewhere.
const menuToggles = [...document.querySelectorAll("[data-menu-toggle]")];
const setMenu = (button, open) => {
  button.setAttribute("aria-expanded", String(open));
  button.parentElement.classList.toggle("menu-open", open);
};
for (const button of menuToggles) {
  const panel = document.getElementById(button.getAttribute("aria-controls"));
  if (!panel) continue;
  const current = panel.querySelector('a[aria-current="page"]');
  const label = button.querySelector("[data-menu-current]");
  if (current && label) label.textContent = current.textContent.trim();
  button.parentElement.classList.add("has-menu");
  button.hidden = false;
  setMenu(button, false);
  button.addEventListener("click", () => setMenu(button, button.getAttribute("aria-expanded") !== "true"));
}
document.addEventListener("keydown", (event) => {
  if (event.key !== "Escape" || document.querySelector("dialog[open]")) return;
  for (const button of menuToggles) {
    if (button.getAttribute("aria-expanded") !== "true" || button.hidden) continue;
    setMenu(button, false);
    button.focus();
  }
});
document.addEventListener("click", (event) => {
  const target = event.target instanceof Element ? event.target : null;
  for (const button of menuToggles) {
    if (button.getAttribute("aria-expanded") !== "true" || button.hidden) continue;
    if (target && button.parentElement.contains(target)) continue;
    setMenu(button, false);
  }
});

// Tables: each cell carries its column's header as data-label, so that on a phone the
// stylesheet shows every row as a card of "label: value" lines (without this script the table
// scrolls inside its frame). The roles are explicit, so that a table shown as blocks stays a
// table to screen readers.
const keepRole = (element, role) => { if (!element.hasAttribute("role")) element.setAttribute("role", role); };
for (const table of document.querySelectorAll("table")) {
  const head = table.tHead && table.tHead.rows[0];
  if (!head) continue;
  keepRole(table, "table");
  for (const group of table.querySelectorAll(":scope > thead, :scope > tbody, :scope > tfoot")) keepRole(group, "rowgroup");
  for (const row of table.rows) {
    keepRole(row, "row");
    for (const cell of row.cells) {
      const column = cell.getAttribute("scope") === "col" || row.parentElement.tagName === "THEAD";
      keepRole(cell, cell.tagName !== "TH" ? "cell" : column ? "columnheader" : "rowheader");
    }
  }
  const labels = [];
  for (const th of head.cells) {
    for (let i = 0; i < (th.colSpan || 1); i += 1) labels.push(th.textContent.trim());
  }
  for (const body of table.tBodies) {
    for (const row of body.rows) {
      let column = 0;
      for (const cell of row.cells) {
        const label = labels[column];
        if (label && (cell.colSpan || 1) === 1 && !cell.hasAttribute("data-label")) cell.setAttribute("data-label", label);
        if (!cell.textContent.trim() && !cell.querySelector("input, select, button, a, img, svg")) cell.classList.add("cell-blank");
        column += cell.colSpan || 1;
      }
    }
  }
  table.classList.add("stackable");
}

// Dialogs: showModal() moves the focus inside and Escape closes; when one closes, the focus goes
// back to the button that opened it.
const dialogOpeners = new WeakMap();
document.addEventListener("click", (event) => {
  const opener = event.target instanceof Element ? event.target.closest("[data-dialog-open]") : null;
  const dialog = opener && document.getElementById(opener.getAttribute("data-dialog-open"));
  if (dialog) dialogOpeners.set(dialog, opener);
}, true);
document.addEventListener("close", (event) => {
  const dialog = event.target;
  const opener = dialog instanceof HTMLDialogElement ? dialogOpeners.get(dialog) : null;
  if (opener && opener.isConnected && (document.activeElement === document.body || dialog.contains(document.activeElement))) {
    opener.focus();
  }
}, true);

// Token create forms (brief B, issue 13): "Add new token" shows the form, which stays hidden until
// asked for, and moves the focus to its first field; Cancel hides it and gives the focus back.
// Without the script the button is a link to ?new=1 (the form rendered open) and Cancel a link to
// the page. A form shown again with its errors puts the focus on their summary.
const revealForm = (button, open) => {
  const section = document.getElementById(button.getAttribute("data-reveal"));
  if (!section) return false;
  section.hidden = !open;
  button.setAttribute("aria-expanded", String(open));
  if (open) {
    const first = section.querySelector("input:not([type=hidden]), select, textarea");
    if (first) first.focus();
  } else {
    button.focus();
  }
  return true;
};
document.addEventListener("click", (event) => {
  const target = event.target instanceof Element ? event.target : null;
  if (!target) return;
  const opener = target.closest("[data-reveal]");
  if (opener) {
    if (revealForm(opener, opener.getAttribute("aria-expanded") !== "true")) event.preventDefault();
    return;
  }
  const closer = target.closest("[data-reveal-close]");
  if (closer) {
    const button = document.querySelector(`[data-reveal="${closer.getAttribute("data-reveal-close")}"]`);
    if (button && revealForm(button, false)) event.preventDefault();
  }
});
document.addEventListener("keydown", (event) => {
  // A link that acts as a button answers the space bar as a button does.
  if (event.key !== " ") return;
  const target = event.target instanceof Element ? event.target.closest("a[role=button]") : null;
  if (target) {
    event.preventDefault();
    target.click();
  }
});
document.addEventListener("DOMContentLoaded", () => {
  const summary = document.querySelector(".error-summary[tabindex]");
  if (summary) summary.focus();
});
