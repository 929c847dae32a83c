/* The checklist keeps its place across a save, and the keyboard focus follows the saved step.
 * A static file, so a strict CSP needs no inline script.
 *
 * - Leaving the checklist records, per checklist (its path) in sessionStorage, the scroll
 *   offset and where on screen each visible step was.
 * - Saving a step (or cancelling its form) comes back to `#step-<code>`: the previous scroll
 *   offset is restored. If what changed above the step (the success message, the suggestions)
 *   pushed it out of view, it goes back where it was on screen, or to the middle when it was
 *   not on screen (the user came from a suggested-step link). Without a record (or without
 *   JavaScript) the browser's own jump to #step remains.
 * - The focus moves to the step's heading, described by the success message, so that a screen
 *   reader reads both and Tab goes on from that step.
 */
(function () {
  "use strict";

  var checklist = document.querySelector("[data-checklist]");
  if (!checklist) {
    return;
  }
  var storageKey = "checklist-scroll:" + window.location.pathname;

  function storage() {
    try {
      return window.sessionStorage;
    } catch (error) {
      return null; // storage disabled: the #step jump alone
    }
  }

  function headingOf(item) {
    return item.querySelector("h1, h2, h3, h4, h5, h6") || item;
  }

  function remember() {
    var store = storage();
    if (!store) {
      return;
    }
    var steps = {};
    checklist.querySelectorAll("[data-step]").forEach(function (item) {
      var box = headingOf(item).getBoundingClientRect();
      if (box.bottom > 0 && box.top < window.innerHeight) {
        steps[item.getAttribute("data-step")] = box.top;
      }
    });
    store.setItem(storageKey, JSON.stringify({ y: window.scrollY, steps: steps }));
  }

  function recall() {
    var store = storage();
    if (!store) {
      return null;
    }
    var text = store.getItem(storageKey);
    store.removeItem(storageKey); // used once: a later visit starts afresh
    try {
      return text ? JSON.parse(text) : null;
    } catch (error) {
      return null;
    }
  }

  function fullyVisible(element) {
    var box = element.getBoundingClientRect();
    return box.top >= 0 && box.bottom <= window.innerHeight;
  }

  function focusStep(heading) {
    var messages = document.querySelector("main [role=status]");
    if (messages) {
      messages.id = messages.id || "status-messages";
      heading.setAttribute("aria-describedby", messages.id);
    }
    heading.setAttribute("tabindex", "-1");
    heading.focus({ preventScroll: true });
  }

  function returnToStep(code, saved) {
    var item = checklist.querySelector('[data-step="' + CSS.escape(code) + '"]');
    if (!item) {
      return;
    }
    var heading = headingOf(item);
    if (saved && typeof saved.y === "number") {
      window.scrollTo(0, saved.y);
    }
    if (!fullyVisible(heading)) {
      // What changed above it (a message, the suggestions) moved it out of view.
      var wasAt = saved && saved.steps ? saved.steps[code] : undefined;
      if (typeof wasAt === "number") {
        var top = heading.getBoundingClientRect().top + window.scrollY;
        window.scrollTo(0, Math.round(top - wasAt));
      }
      if (!fullyVisible(heading)) {
        heading.scrollIntoView({ block: "center" });
      }
    }
    focusStep(heading);
  }

  var saved = recall();
  var match = /^#step-(.+)$/.exec(window.location.hash);
  if (match) {
    var code = decodeURIComponent(match[1]);
    // After the browser's own jump to #step, which it may repeat until the page has loaded.
    var run = function () {
      window.requestAnimationFrame(function () {
        returnToStep(code, saved);
      });
    };
    if (document.readyState === "complete") {
      run();
    } else {
      window.addEventListener("load", run, { once: true });
    }
  }
  window.addEventListener("pagehide", remember);
})();
