/* The pipeline board: drag a deal card onto another column to move it. The drop posts the card's own
   "Move to" form (with its CSRF token), the same form the keyboard uses; won and lost need a reason, so
   a drop there opens the form (stage chosen, reason focused) instead of moving. No framework. */
(function () {
  "use strict";
  var dragged = null;

  function column(node) { return node && node.closest ? node.closest(".column") : null; }

  function say(text, bad) {
    var box = document.getElementById("board-status");
    if (!box) { return; }
    box.textContent = "";
    var p = document.createElement("p");
    p.className = bad ? "error" : "note";
    p.textContent = text;
    box.appendChild(p);
  }

  function swap(html) {
    var found = new DOMParser().parseFromString(html, "text/html").querySelector("main");
    var main = document.querySelector("main");
    if (found && main) { main.innerHTML = found.innerHTML; }
  }

  function post(form, card, target) {
    var list = target.querySelector(".cards-list");
    if (list) { list.appendChild(card); }  // lands at once; the server's page follows
    card.classList.add("moving");
    fetch(form.action, { method: "POST", body: new FormData(form), credentials: "same-origin" })
      .then(function (answer) {
        return answer.text().then(function (html) {
          if (answer.ok || answer.status === 422) {
            swap(html);
            if (answer.ok) { history.replaceState(null, "", answer.url); }
          } else {
            form.submit();
          }
        });
      })
      .catch(function () { form.submit(); });
  }

  document.addEventListener("dragstart", function (event) {
    var card = event.target.closest ? event.target.closest(".deal") : null;
    if (!card) { return; }
    dragged = card;
    event.dataTransfer.effectAllowed = "move";
    event.dataTransfer.setData("text/plain", card.getAttribute("data-deal"));
    card.classList.add("dragging");
  });

  document.addEventListener("dragend", function () {
    if (dragged) { dragged.classList.remove("dragging"); }
    dragged = null;
    document.querySelectorAll(".column.over").forEach(function (c) { c.classList.remove("over"); });
  });

  document.addEventListener("dragover", function (event) {
    var target = column(event.target);
    if (!dragged || !target) { return; }
    event.preventDefault();
    event.dataTransfer.dropEffect = "move";
    target.classList.add("over");
  });

  document.addEventListener("dragleave", function (event) {
    var target = column(event.target);
    if (target && !target.contains(event.relatedTarget)) { target.classList.remove("over"); }
  });

  document.addEventListener("drop", function (event) {
    var target = column(event.target);
    var card = dragged;
    if (!card || !target) { return; }
    event.preventDefault();
    target.classList.remove("over");
    if (column(card) === target) { return; }
    var form = card.querySelector("form.move");
    var select = form && form.querySelector("select[name=stage]");
    if (!select) { return; }
    select.value = target.getAttribute("data-stage");
    var kind = target.getAttribute("data-kind");
    var reason = form.querySelector("input[name=reason]");
    if (kind !== "open" && reason && !reason.value.trim()) {
      card.classList.add("asking");
      say("Moving to “" + target.querySelector("h2").textContent + "” needs a reason: fill it in on the card, then press Move.", false);
      reason.focus();
      return;
    }
    post(form, card, target);
  });
}());
