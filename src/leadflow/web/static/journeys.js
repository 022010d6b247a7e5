// Journeys editor: a problem's "line N" link puts the cursor on that line of the definition.
(function () {
  "use strict";
  document.addEventListener("click", function (event) {
    var link = event.target.closest ? event.target.closest("a[data-line]") : null;
    var area = document.getElementById("definition");
    if (!link || !area) { return; }
    event.preventDefault();
    var line = parseInt(link.getAttribute("data-line"), 10) || 1;
    var lines = area.value.split("\n");
    var start = 0;
    for (var i = 0; i < line - 1 && i < lines.length; i += 1) { start += lines[i].length + 1; }
    var end = start + (lines[line - 1] || "").length;
    area.focus();
    area.setSelectionRange(start, end);
    var height = area.scrollHeight / Math.max(lines.length, 1);
    area.scrollTop = Math.max(0, (line - 3) * height);
  });
}());
