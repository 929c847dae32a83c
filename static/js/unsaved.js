/* Ask before leaving a form with unsaved changes. A static file, so a strict CSP needs no
 * inline script.
 *
 * - A form is watched when it, or an element around it, has `data-warn-unsaved`.
 * - It has unsaved changes when a field differs from what the page came with (typing a value
 *   and then deleting it again is no change), or when the watched element also has
 *   `data-unsaved-on-load`: the server sent back entries it did not save (a refused value,
 *   a conflict), so leaving would lose them.
 * - Leaving by submitting a watched form does not ask; leaving by submitting another form
 *   (say, Log out) asks when a watched form has changes.
 */
(function () {
  "use strict";

  var WATCHED = "form[data-warn-unsaved], [data-warn-unsaved] form";
  var submitted = null;

  function fieldChanged(field) {
    switch (field.type) {
      case "hidden":
      case "submit":
      case "button":
      case "reset":
      case "image":
      case "file":
        return false;
      case "checkbox":
      case "radio":
        return field.checked !== field.defaultChecked;
      case "select-one":
      case "select-multiple": {
        var options = Array.prototype.slice.call(field.options);
        var anyDefault = options.some(function (o) { return o.defaultSelected; });
        return options.some(function (option, index) {
          // A single select with no option marked selected starts on its first option.
          var initially = anyDefault ? option.defaultSelected
            : field.type === "select-one" && index === 0;
          return option.selected !== initially;
        });
      }
      default:
        return typeof field.value === "string" && field.value !== field.defaultValue;
    }
  }

  function hasUnsavedChanges(form) {
    if (form.closest("[data-unsaved-on-load]")) {
      return true;
    }
    return Array.prototype.some.call(form.elements, function (field) {
      return !field.disabled && fieldChanged(field);
    });
  }

  function formsWithChanges() {
    return Array.prototype.filter.call(document.querySelectorAll(WATCHED), function (form) {
      return form !== submitted && hasUnsavedChanges(form);
    });
  }

  // Listening on window, so that a handler on the document that cancels the submission runs
  // first: only a submission that goes ahead counts.
  window.addEventListener("submit", function (event) {
    if (!event.defaultPrevented) {
      submitted = event.target;
    }
  });

  window.addEventListener("beforeunload", function (event) {
    if (formsWithChanges().length === 0) {
      return;
    }
    // The browser shows its own wording; both calls are needed across browsers.
    event.preventDefault();
    event.returnValue = "";
  });

  // Back to this page from the browser's cache (the Back button): nothing is being submitted.
  window.addEventListener("pageshow", function (event) {
    if (event.persisted) {
      submitted = null;
    }
  });
})();
