// Live progress of a campaign: the page opens the server's event stream
// and moves the counts, the bar, the rate and the ETA as the send goes.
// Plain script, no build step; the page works (without live updates)
// when it does not run.
(function () {
  "use strict";
  function start() {
    var section = document.getElementById("campaign");
    if (!section || !window.EventSource) return;
    var id = section.getAttribute("data-campaign-id");
    var state = section.getAttribute("data-state");
    if (state !== "sending" && state !== "paused" && state !== "scheduled") return;
    var source = new EventSource("/campaigns/" + encodeURIComponent(id) + "/events");
    source.addEventListener("progress", function (message) {
      var data;
      try { data = JSON.parse(message.data); } catch (e) { return; }
      var previous = section.getAttribute("data-state");
      section.setAttribute("data-state", data.state);
      setText("campaign-state", data.state);
      var counts = data.counts || {};
      Object.keys(counts).forEach(function (name) {
        setText("count-" + name, String(counts[name]));
      });
      var bar = document.getElementById("progress");
      if (bar) {
        bar.max = Math.max(1, data.total);
        bar.value = data.done;
        bar.textContent = data.done + " / " + data.total;
      }
      setText("rate", data.rate_per_min.toFixed(1) + " per minute");
      setText("eta", data.eta_secs === null ? "–" : describe(data.eta_secs));
      // The buttons differ by state: a new state is worth a fresh page.
      if (previous !== data.state && (data.state === "finished" || data.state === "cancelled"
          || previous === "scheduled")) {
        source.close();
        window.location.reload();
      }
    });
  }
  function setText(id, text) {
    var element = document.getElementById(id);
    if (element) element.textContent = text;
  }
  function describe(seconds) {
    if (seconds < 60) return seconds + " s";
    if (seconds < 3600) return Math.round(seconds / 60) + " min";
    return (seconds / 3600).toFixed(1) + " h";
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
