/* flask-server-status: tooltips, keyboard moves inside a strip, and a refresh of the
 * figures from summary.json every `refresh` seconds. The page works without this
 * script; nothing here writes HTML from data (textContent and attributes only). */
(function () {
  "use strict";
  var configNode = document.getElementById("flask-status-config");
  if (!configNode) return;
  var config = JSON.parse(configNode.textContent);
  var t = config.texts;
  var classes = config.statusClasses;
  var tip = document.getElementById("tip");

  /* -- tooltips: one floating element, on hover and on keyboard focus ------------- */
  function tipText(el) {
    if (el.hasAttribute("title")) {
      // Keep the text but drop the native tooltip, which would show twice.
      el.dataset.tip = el.getAttribute("title");
      el.setAttribute("aria-label", el.dataset.tip);
      el.removeAttribute("title");
    }
    return el.dataset.tip || "";
  }
  function showTip(el) {
    var text = tipText(el);
    if (!text || !tip) return;
    tip.textContent = text;
    tip.hidden = false;
    var box = el.getBoundingClientRect();
    var width = tip.offsetWidth, height = tip.offsetHeight;
    var left = Math.min(Math.max(4, box.left + box.width / 2 - width / 2),
                        document.documentElement.clientWidth - width - 4);
    var top = box.top - height - 8;
    if (top < 4) top = box.bottom + 8;
    tip.style.left = left + "px";
    tip.style.top = top + "px";
  }
  function hideTip() { if (tip) tip.hidden = true; }
  function square(target) {
    return target && target.closest ? target.closest(".strip .sq") : null;
  }
  document.addEventListener("mouseover", function (e) {
    var el = square(e.target);
    if (el) showTip(el);
  });
  document.addEventListener("mouseout", function (e) {
    if (square(e.target) && document.activeElement !== square(e.target)) hideTip();
  });
  document.addEventListener("focusin", function (e) {
    var el = square(e.target);
    if (el) showTip(el); else hideTip();
  });
  document.addEventListener("focusout", function (e) { if (square(e.target)) hideTip(); });
  window.addEventListener("scroll", hideTip, { passive: true });

  /* Roving tabindex: a strip is one tab stop; arrows, Home and End move inside it. */
  document.addEventListener("keydown", function (e) {
    var el = square(e.target);
    if (!el) return;
    if (e.key === "Escape") { hideTip(); return; }
    var all = Array.prototype.filter.call(el.parentNode.children, function (s) {
      return s.offsetParent !== null;
    });
    var i = all.indexOf(el), next = null;
    if (e.key === "ArrowLeft") next = all[i - 1];
    else if (e.key === "ArrowRight") next = all[i + 1];
    else if (e.key === "Home") next = all[0];
    else if (e.key === "End") next = all[all.length - 1];
    if (!next) return;
    e.preventDefault();
    el.tabIndex = -1;
    next.tabIndex = 0;
    next.focus();
  });

  /* -- refresh from summary.json ------------------------------------------------------ */
  function statusOf(entry) {
    var classified = entry.success + entry.failure;
    if (!classified) return "no_data";
    var ratio = entry.failure / classified;
    if (ratio >= config.thresholds.major) return "major_outage";
    if (ratio >= config.thresholds.partial) return "partial_outage";
    if (ratio >= config.thresholds.degraded) return "degraded_performance";
    return "operational";
  }
  function percent(value) {
    if (value === null || value === undefined) return "\u2013";
    if (value >= 99.995 && value < 100) return "99.99%";
    return value.toFixed(2) + "%";
  }
  function count(n) { return n.toLocaleString("en-US"); }
  function countsText(entries) {
    var ok = 0, failed = 0;
    entries.forEach(function (e) { ok += e.success; failed += e.failure; });
    return t.counts.split("{success}").join(count(ok)).split("{failure}").join(count(failed));
  }
  function setStatusClass(el, status) {
    Object.keys(classes).forEach(function (k) { el.classList.remove(classes[k]); });
    el.classList.add(classes[status] || classes.no_data);
  }
  function duration(startIso, endIso) {
    var minutes = Math.max(0, Math.round((Date.parse(endIso) - Date.parse(startIso)) / 60000));
    var h = Math.floor(minutes / 60), d = Math.floor(h / 24);
    if (d) return d + " d " + (h % 24) + " h " + (minutes % 60) + " min";
    if (h) return h + " h " + (minutes % 60) + " min";
    return minutes + " min";
  }

  function updateStrip(strip, entries, label) {
    var old = {};
    Array.prototype.forEach.call(strip.children, function (s) {
      var text = s.dataset.tip || s.getAttribute("title") || "";
      old[text.split(" \u00b7 ")[0]] = text;
    });
    var squares = strip.children;
    entries.forEach(function (entry, i) {
      var status = statusOf(entry);
      var first = label(entry);
      var lines = [first + " \u00b7 " + t[status],
                   t.requests + ": " + count(entry.total),
                   t.failures + ": " + count(entry.failure),
                   t.uptime + ": " + percent(entry.uptime)];
      var text = lines.join("\n");
      var previous = old[first];
      // The server's text also has the p95 latency, which the JSON does not carry.
      if (previous && previous.indexOf(text) === 0) text = previous;
      var s = squares[i];
      if (!s) {
        s = document.createElement("span");
        s.className = "sq";
        s.setAttribute("role", "img");
        s.tabIndex = -1;
        strip.appendChild(s);
      }
      s.removeAttribute("title");
      s.dataset.tip = text;
      s.setAttribute("aria-label", text);
      setStatusClass(s, status);
    });
  }

  function rowsChanged(components) {
    var known = config.components.map(function (c) { return c.id; }).join(",");
    return known !== components.map(function (c) { return c.id; }).join(",");
  }

  function apply(data) {
    var notice = document.getElementById("unavailable");
    if (notice) notice.hidden = true;
    if (rowsChanged(data.components)) { window.location.reload(); return; }
    var banner = document.getElementById("banner");
    var overall = {none: "operational", minor: "degraded_performance",
                   major: "partial_outage", critical: "major_outage"}[data.status.indicator];
    if (data.status.indicator === "none" &&
        data.components.every(function (c) { return c.status === "no_data"; })) {
      overall = "no_data";
    }
    setStatusClass(banner, overall);
    document.getElementById("banner-text").textContent = data.status.description;

    data.components.forEach(function (c) {
      var row = document.querySelector('.row[data-id="' + CSS.escape(c.id) + '"]');
      if (!row) return;
      row.querySelector(".name").textContent = c.name;
      row.querySelector(".rule").textContent = c.rule;
      var doc = row.querySelector(".doc");
      if (doc) doc.textContent = c.description;
      var pill = row.querySelector(".pill");
      setStatusClass(pill, c.status);
      pill.querySelector(".pill-text").textContent = t[c.status];
      Object.keys(c.uptime).forEach(function (key) {
        var dd = row.querySelector('dd[data-window="' + key + '"]');
        if (!dd) return;
        dd.textContent = percent(c.uptime[key]);
        var days = {"7d": 7, "30d": 30, "90d": 90}[key];
        if (days) dd.title = countsText(c.days.slice(-days));
      });
      pill.title = t.description_window.replace("{window}", config.window) + ": " +
        countsText(c.minutes.slice(-config.window));
      updateStrip(row.querySelector(".strip.days"), c.days,
                  function (e) { return e.date + " UTC"; });
      updateStrip(row.querySelector(".strip.minutes"), c.minutes,
                  function (e) { return e.minute.slice(0, 10) + " " + e.minute.slice(11, 16) + " UTC"; });
      var last = row.querySelector(".last-data");
      last.textContent = c.updated_at || t.never;
      if (c.updated_at) last.setAttribute("datetime", c.updated_at);
    });

    var list = document.getElementById("incident-list");
    if (list) {
      var items = data.incidents.map(function (incident) {
        var li = document.createElement("li");
        var ongoing = incident.status !== "resolved";
        li.className = "incident " + (ongoing ? "ongoing" : "resolved");
        li.id = "incident-" + incident.id;
        var name = document.createElement("span");
        name.className = "incident-name";
        name.textContent = incident.name;
        var tag = document.createElement("span");
        tag.className = "tag";
        tag.textContent = ongoing ? t.ongoing : t.resolved;
        var meta = document.createElement("span");
        meta.className = "incident-meta";
        var end = incident.resolved_at || data.page.updated_at;
        meta.textContent = t.started + " " + incident.created_at + " \u00b7 " + t.ended + " " +
          (ongoing ? t.ongoing : incident.resolved_at) + " \u00b7 " + t.duration + " " +
          duration(incident.created_at, end) + " \u00b7 " + t.failures + " " + count(incident.failures);
        li.append(name, tag, meta);
        return li;
      });
      if (!items.length) {
        var empty = document.createElement("li");
        empty.className = "empty";
        empty.textContent = t.no_incidents;
        items.push(empty);
      }
      list.replaceChildren.apply(list, items);
    }
    var updated = document.getElementById("updated");
    if (updated) {
      var now = new Date().toISOString().slice(0, 19) + "Z";
      updated.textContent = now;
      updated.setAttribute("datetime", now);
    }
  }

  function refresh() {
    fetch(config.summary, { cache: "no-cache", headers: { Accept: "application/json" } })
      .then(function (response) {
        if (response.status === 503) {
          var notice = document.getElementById("unavailable");
          if (notice) notice.hidden = false;
          return null;
        }
        if (!response.ok) return null;
        return response.json();
      })
      // Offline for a moment: the next round tries again. Only fetch errors are
      // swallowed; a bug in apply() still reaches the console.
      .catch(function () { return null; })
      .then(function (data) { if (data) apply(data); });
  }
  window.setInterval(refresh, Math.max(1, config.refresh) * 1000);
})();
