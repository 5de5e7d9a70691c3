// dd0c/alert dashboard: local times, the live incident list, keyboard shortcuts.
// Everything works without this file; it only makes the pages nicer.
(function () {
  "use strict";

  var fmt = new Intl.DateTimeFormat(undefined, {
    year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit"
  });
  function localTimes(root) {
    root.querySelectorAll("time[datetime]").forEach(function (el) {
      var d = new Date(el.getAttribute("datetime"));
      if (!isNaN(d)) { el.textContent = fmt.format(d); }
    });
  }
  localTimes(document);

  function csrf() {
    var m = document.cookie.match(/(?:^|; )dd0c_csrf=([^;]*)/);
    return m ? decodeURIComponent(m[1]) : "";
  }

  var table = document.getElementById("incidents");
  if (!table) { return; }
  var tbody = table.tBodies[0];
  var live = document.getElementById("live");
  var updated = 0;

  function applyRows(html, counts) {
    var tpl = document.createElement("template");
    tpl.innerHTML = "<table><tbody>" + html + "</tbody></table>";
    var rows = Array.prototype.slice.call(tpl.content.querySelectorAll("tr[data-id]"));
    var changed = 0;
    rows.reverse().forEach(function (row) {
      var id = row.getAttribute("data-id");
      var old = tbody.querySelector('tr[data-id="' + CSS.escape(id) + '"]');
      if (old && old.getAttribute("data-sig") === row.getAttribute("data-sig")) { return; }
      localTimes(row);
      row.classList.add("fresh");
      if (old) {
        if (old.classList.contains("selected")) { row.classList.add("selected"); }
        old.replaceWith(row);
      } else {
        tbody.insertBefore(row, tbody.firstChild);
      }
      changed += 1;
    });
    if (counts) {
      Object.keys(counts).forEach(function (k) {
        var el = document.querySelector('[data-count="' + k + '"]');
        if (el) { el.textContent = counts[k]; }
      });
    }
    if (changed) {
      updated += changed;
      live.textContent = updated + " updated";
      var wrap = document.getElementById("list-wrap");
      var empty = document.getElementById("empty");
      if (wrap) { wrap.hidden = false; }
      if (empty) { empty.hidden = true; }
    }
  }

  if (window.EventSource) {
    var source = new EventSource(table.getAttribute("data-stream"));
    source.addEventListener("rows", function (event) {
      var data = JSON.parse(event.data);
      applyRows(data.html, data.counts);
    });
  }

  // Keyboard shortcuts: j/k move, Enter opens, a acknowledges, r resolves, / searches, ? lists.
  var dialog = document.getElementById("shortcuts");
  function rows() { return Array.prototype.slice.call(tbody.querySelectorAll("tr[data-id]")); }
  function selected() { return tbody.querySelector("tr.selected"); }
  function select(row) {
    var cur = selected();
    if (cur) { cur.classList.remove("selected"); }
    if (!row) { return; }
    row.classList.add("selected");
    var link = row.querySelector("a");
    if (link) { link.focus(); }
  }
  function move(step) {
    var all = rows();
    if (!all.length) { return; }
    var i = all.indexOf(selected());
    i = i < 0 ? 0 : Math.min(Math.max(i + step, 0), all.length - 1);
    select(all[i]);
  }
  function act(action) {
    var row = selected();
    if (!row || !table.hasAttribute("data-can-act")) { return; }
    var body = new URLSearchParams();
    body.set("csrf_token", csrf());
    body.set("next", "list");
    fetch("/incidents/" + encodeURIComponent(row.getAttribute("data-id")) + "/" + action, {
      method: "POST", body: body, credentials: "same-origin",
      headers: { "X-CSRF-Token": csrf() }
    }).then(function (r) {
      live.textContent = r.ok ? (action === "ack" ? "Acknowledged." : "Resolved.") : "Could not " + action + " (" + r.status + ").";
    });
  }
  document.addEventListener("keydown", function (e) {
    if (e.ctrlKey || e.metaKey || e.altKey) { return; }
    var t = e.target;
    if (t && (t.tagName === "INPUT" || t.tagName === "SELECT" || t.tagName === "TEXTAREA")) {
      if (e.key === "Escape") { t.blur(); }
      return;
    }
    if (e.key === "j") { move(1); }
    else if (e.key === "k") { move(-1); }
    else if (e.key === "a") { act("ack"); }
    else if (e.key === "r") { act("resolve"); }
    else if (e.key === "/") { e.preventDefault(); document.getElementById("q").focus(); }
    else if (e.key === "?") { if (dialog && dialog.showModal) { dialog.showModal(); } }
    else { return; }
  });
  tbody.addEventListener("click", function (e) {
    var row = e.target.closest("tr[data-id]");
    if (row) { select(row); }
  });
})();
