/* Integrations pages: a "Copy" button beside a read-only box (a secret shown once, an embed snippet)
   copies its text. The buttons are hidden until this script shows them: without it, select the text.
   No framework. */
(function () {
  "use strict";

  function say(button, text) {
    var box = button.closest("section") || document;
    var status = box.querySelector(".copied");
    if (status) { status.textContent = text; }
  }

  function fallback(field) {
    field.focus();
    field.select();
    try { return document.execCommand("copy"); } catch (e) { return false; }
  }

  function copy(button) {
    var field = document.getElementById(button.getAttribute("data-copy"));
    if (!field) { return; }
    var done = function () { say(button, "Copied to the clipboard."); };
    var failed = function () { say(button, fallback(field) ? "Copied to the clipboard." : "Select the text and copy it."); };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(field.value).then(done, failed);
    } else {
      failed();
    }
  }

  var buttons = document.querySelectorAll("button[data-copy]");
  for (var i = 0; i < buttons.length; i++) {
    buttons[i].hidden = false;
    buttons[i].addEventListener("click", function (event) { copy(event.currentTarget); });
  }
}());
