/* Fields asked only for some answers of another field (protocol data: shown_if_field and
 * shown_if_values), e.g. "high-sensitivity method" only when the KIT method is "other".
 *
 * The server decides what is stored: without this script the field is simply visible and
 * its answer is ignored when it does not apply. With it, the field is hidden until the
 * controlling answer asks for it. A static file, so a strict CSP needs no inline script.
 */
(function () {
  "use strict";

  // The whole field: its label, inputs, messages and "Used by" note (workup/forms/*.html).
  function wrapperOf(input) {
    return input.closest(".step-field") || input.closest("[id^='div_id_']") || input.parentElement;
  }

  function currentValue(form, name) {
    var inputs = form.querySelectorAll("[name='" + name + "']");
    for (var i = 0; i < inputs.length; i++) {
      var input = inputs[i];
      if (input.type === "radio" || input.type === "checkbox") {
        if (input.checked) { return input.value; }
      } else {
        return input.value;
      }
    }
    return "";
  }

  function update(form) {
    var dependents = form.querySelectorAll("[data-shown-if-field]");
    for (var i = 0; i < dependents.length; i++) {
      var input = dependents[i];
      var values = JSON.parse(input.getAttribute("data-shown-if-values") || "[]");
      var shown = values.indexOf(currentValue(form, input.getAttribute("data-shown-if-field"))) !== -1;
      wrapperOf(input).hidden = !shown;
    }
  }

  document.querySelectorAll("form").forEach(function (form) {
    if (!form.querySelector("[data-shown-if-field]")) { return; }
    form.addEventListener("change", function () { update(form); });
    update(form);
  });
})();
