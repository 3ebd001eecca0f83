// Pyrometer dashboard: speed-to-lead countdowns, and the live queue (server-sent events).
// Everything else is plain HTML forms, enhanced by htmx where a partial update helps.
(function () {
  "use strict";

  function clock(seconds) {
    var s = Math.abs(seconds);
    if (s >= 2 * 86400) return Math.floor(s / 86400) + " days";
    if (s >= 3600) {
      var m = Math.floor((s % 3600) / 60);
      return Math.floor(s / 3600) + "h " + (m < 10 ? "0" : "") + m + "m";
    }
    var r = s % 60;
    return Math.floor(s / 60) + ":" + (r < 10 ? "0" : "") + r;
  }

  function tick() {
    var now = Date.now();
    document.querySelectorAll("[data-due]").forEach(function (el) {
      var left = Math.round((Date.parse(el.dataset.due) - now) / 1000);
      el.textContent = left >= 0 ? clock(left) + " left" : clock(left) + " overdue";
      el.classList.toggle("overdue", left < 0);
    });
  }

  function liveQueue(body) {
    if (!window.EventSource || !window.htmx) return;
    var status = document.getElementById("live");
    var source = new EventSource(body.dataset.stream);
    function refresh() {
      return htmx.ajax("GET", "/queue/rows", { target: "#queue-rows", swap: "innerHTML" }).then(function () {
        var n = body.querySelectorAll("tr[data-lead]").length;
        if (status) {
          status.textContent = "Updated " + new Date().toLocaleTimeString() + ": " + n + " hot lead" + (n === 1 ? "" : "s") + ".";
        }
        tick();
      });
    }
    source.addEventListener("change", refresh);
    source.addEventListener("error", function () {
      if (status) status.textContent = "Live updates paused; reconnecting…";
    });
  }

  // A problem's "Line N" in the playbook check selects that line in the editor.
  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("button.goto-line");
    var editor = document.getElementById("yaml");
    if (!button || !editor) return;
    var lines = editor.value.split("\n");
    var line = Math.min(parseInt(button.dataset.line, 10), lines.length) - 1;
    var start = 0;
    for (var i = 0; i < line; i++) start += lines[i].length + 1;
    editor.focus();
    editor.setSelectionRange(start, start + lines[line].length);
    var height = editor.scrollHeight / Math.max(lines.length, 1);
    editor.scrollTop = Math.max(0, (line - 5) * height);
  });

  // A select marked data-autosubmit sends its form when changed (no inline handlers:
  // the pages' Content-Security-Policy allows scripts from this server's files only).
  document.addEventListener("change", function (event) {
    if (event.target.matches && event.target.matches("select[data-autosubmit]")) {
      event.target.form.submit();
    }
  });

  document.addEventListener("DOMContentLoaded", function () {
    tick();
    setInterval(tick, 1000);
    var body = document.getElementById("queue-rows");
    if (body && body.dataset.stream) liveQueue(body);
  });
})();
