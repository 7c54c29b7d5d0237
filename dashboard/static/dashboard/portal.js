/* Netia portal behaviour: no inline scripts anywhere, so a strict Content-Security-Policy holds.
   Loaded in <head> (not deferred) only to mark the page as scripted before it paints. */
"use strict";
document.documentElement.classList.add("js");

document.addEventListener("DOMContentLoaded", function () {
  // The sidebar collapses behind the menu button on narrow screens.
  var menu = document.querySelector("[data-menu-button]");
  if (menu) {
    menu.addEventListener("click", function () {
      var open = document.body.classList.toggle("nav-open");
      menu.setAttribute("aria-expanded", open ? "true" : "false");
    });
  }

  // Copy buttons: data-copy-target names the element whose text is copied.
  document.querySelectorAll("[data-copy-target]").forEach(function (button) {
    button.addEventListener("click", function () {
      var source = document.getElementById(button.getAttribute("data-copy-target"));
      if (!source) { return; }
      var label = button.textContent;
      var done = function (text) {
        button.textContent = text;
        var status = document.getElementById(button.getAttribute("data-copy-status") || "");
        if (status) { status.textContent = text === "Copied!" ? "The snippet is in your clipboard." : text; }
        window.setTimeout(function () { button.textContent = label; }, 2000);
      };
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(source.textContent).then(
          function () { done("Copied!"); },
          function () { done("Select and copy"); }
        );
      } else {
        var range = document.createRange();
        range.selectNodeContents(source);
        var selection = window.getSelection();
        selection.removeAllRanges();
        selection.addRange(range);
        done(document.execCommand("copy") ? "Copied!" : "Select and copy");
      }
    });
  });

  // Forms that need a confirmation (delete, revoke, remove).
  document.addEventListener("submit", function (event) {
    var form = event.target;
    var question = form.getAttribute && form.getAttribute("data-confirm");
    if (question && !window.confirm(question)) { event.preventDefault(); }
  }, true);

  // Selects that submit their form on change (the business switcher); their button stays for keyboards.
  document.querySelectorAll("select[data-autosubmit]").forEach(function (select) {
    select.addEventListener("change", function () {
      if (select.form.requestSubmit) { select.form.requestSubmit(); } else { select.form.submit(); }
    });
  });
});
