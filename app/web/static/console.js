// sloguard's console: the only script it runs (no third-party code). An element with data-poll="URL"
// is refreshed from that URL every data-every seconds while the page is visible, so a change made
// anywhere (Slack, the API, another replica) shows without a reload. While focus is inside the element
// (a keyboard user on a button, someone typing) it is left alone, so focus is never lost.
(function () {
  "use strict";
  function poll(element) {
    var url = element.getAttribute("data-poll");
    var every = Math.max(1, parseFloat(element.getAttribute("data-every") || "5")) * 1000;
    var last = null;
    function tick() {
      if (document.hidden) { return; }
      if (element.contains(document.activeElement)) { return; }
      fetch(url, { credentials: "same-origin", headers: { "Accept": "text/html" }, redirect: "manual" })
        .then(function (answer) {
          if (answer.type === "opaqueredirect" || answer.status === 303) { window.location.reload(); return null; }
          return answer.ok ? answer.text() : null;
        })
        .then(function (html) {
          if (html !== null && html !== last) {
            last = html;
            element.innerHTML = html;
            element.setAttribute("data-refreshed", new Date().toISOString());
          }
        })
        .catch(function () { /* the next tick tries again */ });
    }
    window.setInterval(tick, every);
    document.addEventListener("visibilitychange", tick);
  }
  document.querySelectorAll("[data-poll]").forEach(poll);
})();
