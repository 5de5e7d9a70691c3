// dd0c/alert dashboard: local times, the live incident list, keyboard shortcuts.
// Everything works without this file; it only makes the pages nicer.
(function () {
  "use strict";

  // The zone is shown: times are compared with other tools' (Grafana, Slack) at 3 a.m.
  var fmt = new Intl.DateTimeFormat(undefined, {
    year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit",
    timeZoneName: "short"
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

  // An older page ("Older incidents →") only redraws the rows it shows: newer
  // incidents belong to the first page, not at the top of this one.
  var older = table.hasAttribute("data-older");

  // Newest first, as the server lists them (ids sort by creation time).
  function place(row) {
    var id = row.getAttribute("data-id");
    var below = rows().filter(function (r) { return r.getAttribute("data-id") < id; })[0];
    tbody.insertBefore(row, below || null);
  }

  // Rows the list no longer holds stopped matching its filters (or were merged):
  // they go. Rows older than `floor` stay: newer incidents only pushed them down.
  function dropGone(ids, floor) {
    if (!ids) { return 0; }
    var kept = {};
    ids.forEach(function (id) { kept[id] = true; });
    var gone = 0;
    rows().forEach(function (row) {
      var id = row.getAttribute("data-id");
      if (!kept[id] && (!floor || id > floor)) { row.remove(); gone += 1; }
    });
    return gone;
  }

  function applyRows(data) {
    var tpl = document.createElement("template");
    tpl.innerHTML = "<table><tbody>" + data.html + "</tbody></table>";
    var fresh = Array.prototype.slice.call(tpl.content.querySelectorAll("tr[data-id]"));
    var changed = dropGone(data.ids, data.floor);
    fresh.forEach(function (row) {
      var id = row.getAttribute("data-id");
      var old = tbody.querySelector('tr[data-id="' + CSS.escape(id) + '"]');
      if (old && old.getAttribute("data-sig") === row.getAttribute("data-sig")) { return; }
      if (!old && older) { return; }
      localTimes(row);
      row.classList.add("fresh");
      if (old) {
        if (old.classList.contains("selected")) { row.classList.add("selected"); }
        old.replaceWith(row);
      } else {
        place(row);
      }
      changed += 1;
    });
    var counts = data.counts;
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

  // A list that silently stops updating looks calm when it is not: say so while the
  // stream is down (the server restarting) and when it gave up (signed out). The
  // server ends each stream after five minutes and the browser reconnects within
  // seconds: only a reconnection that does not come back by then is reported.
  var LOST = "Live updates lost: reconnecting… The list may be out of date.";
  var STOPPED = "Live updates stopped: reload the page (you may need to log in again).";
  function report(text) {
    live.classList.toggle("lost", !!text);
    if (text || live.textContent === LOST) { live.textContent = text; }
  }
  if (window.EventSource) {
    var source = new EventSource(table.getAttribute("data-stream"));
    var pending = null;
    source.addEventListener("rows", function (event) {
      applyRows(JSON.parse(event.data));
    });
    source.addEventListener("open", function () {
      clearTimeout(pending);
      pending = null;
      report("");
    });
    source.addEventListener("error", function () {
      if (source.readyState === EventSource.CLOSED) { report(STOPPED); return; }
      // Failed retries fire again: the first one starts the clock.
      if (pending === null) { pending = setTimeout(function () { report(LOST); }, 5000); }
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
