// dd0c/alert set-up guide: copy buttons, and the progress list kept up to date.
// The page works without this file (a refresh link); it only saves the clicks.
(function () {
  "use strict";

  var status = document.getElementById("copied");
  if (navigator.clipboard) {
    document.querySelectorAll("button[data-copy]").forEach(function (button) {
      var label = button.textContent;
      button.hidden = false;
      button.addEventListener("click", function () {
        var source = document.getElementById(button.getAttribute("data-copy"));
        navigator.clipboard.writeText(source.textContent).then(function () {
          button.textContent = "Copied";
          status.textContent = label.replace("Copy", "Copied the");
          setTimeout(function () { button.textContent = label; }, 2000);
        }, function () {
          status.textContent = "Could not copy: select the text and copy it by hand.";
        });
      });
    });
  }

  var fmt = new Intl.DateTimeFormat(undefined, {
    year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", second: "2-digit"
  });
  function localTimes(root) {
    root.querySelectorAll("time[datetime]").forEach(function (el) {
      var d = new Date(el.getAttribute("datetime"));
      if (!isNaN(d)) { el.textContent = fmt.format(d); }
    });
  }

  var box = document.getElementById("progress");
  if (!box || !window.fetch) { return; }
  var url = box.getAttribute("data-poll");
  var last = box.innerHTML;
  var ends = Date.now() + 15 * 60 * 1000;
  localTimes(box);
  function complete() {
    var list = box.querySelector("[data-complete]");
    return list && list.getAttribute("data-complete") === "1";
  }
  function poll() {
    if (complete() || Date.now() > ends) { return; }
    if (document.hidden) { setTimeout(poll, 2000); return; }
    fetch(url, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) {
        if (html !== null && html !== last) {
          last = html;
          box.innerHTML = html;
          localTimes(box);
        }
      }, function () {})
      .then(function () { setTimeout(poll, 1500); });
  }
  setTimeout(poll, 1000);
})();
