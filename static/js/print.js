/* Print buttons of the workup summary; kept out of the page so a strict CSP needs no inline script.
 * - a button with data-action="print" opens the browser's print dialog;
 * - the summary opened as ".../summary/#print" (the checklist page's Print link) prints once loaded.
 */
(function () {
  "use strict";

  document.addEventListener("click", function (event) {
    var trigger = event.target.closest('button[data-action="print"]');
    if (!trigger) {
      return;
    }
    event.preventDefault();
    window.print();
  });

  if (window.location.hash === "#print") {
    // Forget the request, so that reloading or going back does not print again.
    window.history.replaceState(null, "", window.location.pathname + window.location.search);
    window.addEventListener("load", function () {
      window.print();
    });
  }
})();
