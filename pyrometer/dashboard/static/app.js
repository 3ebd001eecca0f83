// Pyrometer dashboard: speed-to-lead countdowns, and the live queue (server-sent events).
// Everything else is plain HTML forms, enhanced by htmx where a partial update helps.
(function () {
  "use strict";

  function clock(seconds) {
    var s = Math.abs(seconds);
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

  document.addEventListener("DOMContentLoaded", function () {
    tick();
    setInterval(tick, 1000);
    var body = document.getElementById("queue-rows");
    if (body && body.dataset.stream) liveQueue(body);
  });
})();
