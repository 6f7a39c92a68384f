// barge's web UI: the one script, hand-written, no dependencies. The pages work without it;
// it only keeps the open view current. The element #live names the API watch
// (Server-Sent Events) its content depends on; on any event the page is fetched again and
// #live replaced, a quarter second after the last event of a burst, keeping focus and scroll.
"use strict";
(function () {
  var live = document.getElementById("live");
  if (!live || !window.EventSource || !live.dataset.watch) return;
  var pending = null;
  function refresh() {
    pending = null;
    fetch(location.href, { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (text) {
        if (!text) return;
        var next = new DOMParser().parseFromString(text, "text/html").getElementById("live");
        var now = document.getElementById("live");
        if (!next || !now) return;
        // A keyboard user keeps their place: the element that had the focus inside #live
        // (found again by id, else by what it is, where it goes and what it says) has it again.
        var active = document.activeElement;
        var was = active && active !== now && now.contains(active) ? {
          id: active.id, tag: active.tagName, href: active.getAttribute("href"), text: active.textContent
        } : null;
        now.innerHTML = next.innerHTML;
        now.dataset.refreshed = String(Date.now());
        if (was) {
          var again = was.id ? document.getElementById(was.id) : null;
          if (!again) {
            var all = now.querySelectorAll(was.tag);
            for (var i = 0; i < all.length && !again; i++) {
              if (all[i].getAttribute("href") === was.href && all[i].textContent === was.text) again = all[i];
            }
          }
          if (again) again.focus({ preventScroll: true });
        }
      })
      .catch(function () {});
  }
  function changed() {
    if (pending) clearTimeout(pending);
    pending = setTimeout(refresh, 250);
  }
  var source = new EventSource(live.dataset.watch, { withCredentials: true });
  ["ADDED", "MODIFIED", "DELETED"].forEach(function (kind) {
    source.addEventListener(kind, changed);
  });
  source.addEventListener("open", function () { live.dataset.watching = "yes"; });
  window.addEventListener("pagehide", function () { source.close(); });
})();
