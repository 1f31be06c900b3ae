/* flask-server-status: tooltips, keyboard moves inside a strip, human times, and a
 * refresh every `refresh` seconds from updates.json, which sends only what changed
 * since the minute the page has (a few kB). The page works without this script
 * (the newest squares carry a title, each route links to a table of its numbers);
 * nothing here writes HTML from data: textContent and attributes only. */
(function () {
  "use strict";
  var configNode = document.getElementById("flask-status-config");
  if (!configNode) return;
  var config = JSON.parse(configNode.textContent);
  if (!config.now) return;  // the "data unavailable" page reloads itself
  var t = config.texts;
  var classes = config.statusClasses;
  var squareClasses = config.squareClasses;
  var tip = document.getElementById("tip");
  var MINUTE = 60000, DAY = 86400000;
  var dataNow = Date.parse(config.now);
  /* Per route id: {days: [90 entries], minutes: [60 entries]}; an entry is 0 (empty)
   * or [total, failure, neutral, p95, p50], as updates.json sends them; undefined = not
   * fetched yet. */
  var series = {};
  var fullLoaded = false, fullLoading = null;

  /* -- formatting (as flask_server_status/format.py) ------------------------------ */
  function pad(n) { return (n < 10 ? "0" : "") + n; }
  function isoDay(ms) { return new Date(ms).toISOString().slice(0, 10); }
  function utcTime(ms) {
    var s = new Date(ms).toISOString();
    return s.slice(0, 10) + " " + s.slice(11, 16) + " UTC";
  }
  function percent(value) {
    if (value === null || value === undefined) return "\u2013";
    if (value >= 99.995 && value < 100) return "99.99%";
    return value.toFixed(2) + "%";
  }
  function count(n) { return n.toLocaleString("en-US"); }
  function shortDuration(ms) {
    var minutes = Math.max(0, Math.floor(ms / MINUTE));
    var h = Math.floor(minutes / 60), d = Math.floor(h / 24);
    minutes %= 60; h %= 24;
    if (d) return h ? d + " d " + h + " h" : d + " d";
    if (h) return minutes ? h + " h " + minutes + " min" : h + " h";
    return minutes + " min";
  }
  function duration(ms) {
    var minutes = Math.max(0, Math.floor(ms / MINUTE));
    var h = Math.floor(minutes / 60), d = Math.floor(h / 24);
    if (d) return d + " d " + (h % 24) + " h " + (minutes % 60) + " min";
    if (h) return h + " h " + (minutes % 60) + " min";
    return minutes + " min";
  }
  function relative(ms, now) {
    if (now - ms < MINUTE) return t.just_now;
    return t.ago.replace("{}", shortDuration(now - ms));
  }
  function countsText(pair) {
    return t.counts.split("{success}").join(count(pair[0])).split("{failure}").join(count(pair[1]));
  }
  function dayStart(ms) { return ms - (ms % DAY); }

  /* -- squares and their tooltips -------------------------------------------------- */
  function statusOf(success, failure) {
    var classified = success + failure;
    if (!classified) return "no_data";
    var ratio = failure / classified;
    if (ratio >= config.thresholds.major) return "major_outage";
    if (ratio >= config.thresholds.partial) return "partial_outage";
    if (ratio >= config.thresholds.degraded) return "degraded_performance";
    return "operational";
  }
  function entryStatus(entry) {
    if (!entry) return "no_data";
    return statusOf(entry[0] - entry[1] - entry[2], entry[1]);
  }
  function statusOfSquare(el) {
    for (var status in squareClasses) {
      if (el.classList.contains(squareClasses[status])) return status;
    }
    return "no_data";
  }
  function where(el) {
    var strip = el.parentNode, row = strip.closest(".row");
    var kind = strip.classList.contains("days") ? "days" : "minutes";
    var index = Array.prototype.indexOf.call(strip.children, el);
    return { row: row, id: row ? row.dataset.id : null, kind: kind, index: index,
             length: strip.children.length };
  }
  function labelOf(kind, index, length) {
    if (kind === "days") return isoDay(dayStart(dataNow) - (length - 1 - index) * DAY) + " UTC";
    return utcTime(dataNow - (length - 1 - index) * MINUTE);
  }
  function tipLines(label, entry) {
    var status = entryStatus(entry);
    var total = entry ? entry[0] : 0, failure = entry ? entry[1] : 0;
    var success = entry ? entry[0] - entry[1] - entry[2] : 0;
    var lines = [label + " \u00b7 " + t[status],
                 t.requests + ": " + count(total),
                 t.failures + ": " + count(failure),
                 t.uptime + ": " + percent(success + failure ? 100 * success / (success + failure) : null)];
    if (entry && entry[4] !== null && entry[4] !== undefined) {
      lines.push(t.p50 + ": " + count(entry[4]) + " ms");
    }
    if (entry && entry[3] !== null && entry[3] !== undefined) {
      lines.push(t.p95 + ": " + count(entry[3]) + " ms");
    }
    return lines.join("\n");
  }
  function tipText(el) {
    var w = where(el);
    var label = labelOf(w.kind, w.index, w.length);
    var known = w.id && series[w.id] ? series[w.id][w.kind][w.index] : undefined;
    if (known !== undefined) return tipLines(label, known);
    if (el.hasAttribute("title")) {
      // The server's text; kept, but the native tooltip would show twice.
      el.dataset.tip = el.getAttribute("title");
      el.removeAttribute("title");
    }
    if (el.dataset.tip) return el.dataset.tip;
    loadFull();
    return label + " \u00b7 " + t[statusOfSquare(el)];
  }
  var shown = null;
  function showTip(el) {
    if (!tip) return;
    var text = tipText(el);
    shown = el;
    el.setAttribute("role", "img");
    el.setAttribute("aria-label", text);
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
  function hideTip() { if (tip) tip.hidden = true; shown = null; }
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
  // Follow the square when the page scrolls (a hover or a focus may scroll it into view).
  window.addEventListener("scroll", function () {
    if (shown && !tip.hidden) showTip(shown);
  }, { passive: true });

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

  /* -- applying updates.json ---------------------------------------------------------- */
  function seriesOf(id) {
    if (!series[id]) series[id] = { days: new Array(90), minutes: new Array(60) };
    return series[id];
  }
  function setStatusClass(el, status, map) {
    Object.keys(map).forEach(function (k) { el.classList.remove(map[k]); });
    el.classList.add(map[status] || map.no_data);
  }
  function shiftStrip(strip, values, steps) {
    // The strip moved on by `steps` days or minutes: drop the oldest, add empty new ones.
    steps = Math.min(steps, strip.children.length);
    for (var n = 0; n < steps; n++) {
      strip.removeChild(strip.firstElementChild);
      var s = document.createElement("i");
      s.className = "sq " + squareClasses.no_data;
      strip.appendChild(s);
      values.shift();
      values.push(undefined);
    }
    // The strip keeps one tab stop; it may have left with the oldest squares.
    if (steps && !strip.querySelector('[tabindex="0"]')) strip.lastElementChild.tabIndex = 0;
  }
  function fillStrip(strip, values, entries, offset) {
    entries.forEach(function (entry, j) {
      var i = offset + j;
      if (i < 0 || i >= values.length) return;
      values[i] = entry;
      var s = strip.children[i];
      if (!s) return;
      setStatusClass(s, entryStatus(entry), squareClasses);
      if (s.dataset.tip || s.hasAttribute("title") || i === values.length - 1) {
        var text = tipLines(labelOf(strip.classList.contains("days") ? "days" : "minutes", i,
                                    values.length), entry);
        s.removeAttribute("title");
        s.dataset.tip = text;
        s.setAttribute("aria-label", text);
      }
    });
  }
  function humanTime(el, ms, now) {
    el.setAttribute("datetime", new Date(ms).toISOString().slice(0, 19) + "Z");
    el.title = utcTime(ms);
    el.tabIndex = 0;
    el.textContent = relative(ms, now);
  }
  function makeTime(ms, now) {
    var el = document.createElement("time");
    humanTime(el, ms, now);
    return el;
  }

  /* -- what a verdict is based on, latency and error budget (as page/render.py) ------ */
  function fill(template, values) {
    Object.keys(values).forEach(function (k) {
      template = template.split("{" + k + "}").join(values[k]);
    });
    return template;
  }
  function ms(value) {
    return value === null || value === undefined ? "\u2013" : count(Math.ceil(value)) + " ms";
  }
  function budgetPercent(fraction) {
    if (fraction === null || fraction === undefined) return "\u2013";
    var value = fraction * 100;
    if (value >= 99.95 && value < 100) return "99.9%";
    return value.toFixed(1) + "%";
  }
  function rate(value) {
    return value === null || value === undefined ? "\u2013" : value.toFixed(2);
  }
  /* c.window = [minutes, successes, failures]; c.latency = [p50, p95, threshold,
   * over 0/1]; c.slo = [budget left, burn 1 h, burn 6 h, page someone 0/1] or absent. */
  function basisText(w) {
    var requests = w[1] + w[2];
    if (requests === 1) return fill(t.basis_one, { minutes: w[0] });
    return fill(t.basis, { minutes: w[0], requests: count(requests) });
  }
  function latencyText(latency) {
    var p95 = latency[1], threshold = latency[2];
    if (p95 === null && threshold === null) return null;
    if (threshold === null) return fill(t.latency_now, { p95: ms(p95) });
    var text = fill(t.latency_threshold, { p95: ms(p95), threshold: ms(threshold) });
    return latency[3] ? text + ", " + t.latency_over : text;
  }
  function applyVerdict(row, c) {
    var basis = row.querySelector(".basis");
    if (basis) basis.textContent = basisText(c.window);
    var latency = row.querySelector(".latency");
    if (latency) {
      var text = latencyText(c.latency);
      latency.hidden = text === null;
      latency.textContent = text || "";
      latency.classList.toggle("over", !!c.latency[3]);
    }
    var slo = c.slo, budget = row.querySelector(".budget");
    if (!slo || !budget) return;
    var left = slo[0];
    var leftText = left === null ? t.budget_no_traffic : fill(t.budget_left, { left: budgetPercent(left) });
    if (left !== null && left < 0) leftText += " (" + t.budget_overspent + ")";
    var bar = budget.querySelector(".bar");
    bar.classList.remove("ok", "low", "out", "none");
    bar.classList.add(left === null ? "none" : left > 0.5 ? "ok" : left > 0 ? "low" : "out");
    bar.value = left === null ? 0 : Math.round(Math.min(Math.max(left, 0), 1) * 1000) / 10;
    budget.querySelector(".budget-left").textContent = leftText;
    budget.querySelector(".budget-burn").textContent =
      fill(t.burn_rates, { h1: rate(slo[1]), h6: rate(slo[2]) });
    var paging = row.querySelector(".paging");
    if (paging) {
      paging.hidden = !slo[3];  // the server's judgement, on the unrounded rate
      paging.querySelector(".paging-text").textContent =
        fill(t.paging, { rate: rate(slo[1]), limit: String(config.pageBurnRate) });
    }
  }

  function apply(data) {
    var notice = document.getElementById("unavailable");
    if (notice) notice.hidden = true;
    if (data.routes !== config.routes) { window.location.reload(); return; }
    var now = Date.parse(data.now);
    var minuteSteps = Math.max(0, Math.round((now - dataNow) / MINUTE));
    var daySteps = Math.max(0, Math.round((dayStart(now) - dayStart(dataNow)) / DAY));
    dataNow = now;
    var firstDay = dayStart(now) - 89 * DAY, firstMinute = now - 59 * MINUTE;
    var dayOffset = Math.round((Date.parse(data.days_from + "T00:00:00Z") - firstDay) / DAY);
    var minuteOffset = Math.round((Date.parse(data.minutes_from) - firstMinute) / MINUTE);

    var banner = document.getElementById("banner");
    setStatusClass(banner, data.overall, classes);
    document.getElementById("banner-text").textContent = data.description;

    data.components.forEach(function (c) {
      var row = document.querySelector('.row[data-id="' + CSS.escape(c.id) + '"]');
      if (!row) return;
      var kept = seriesOf(c.id);
      var days = row.querySelector(".strip.days"), minutes = row.querySelector(".strip.minutes");
      shiftStrip(days, kept.days, daySteps);
      shiftStrip(minutes, kept.minutes, minuteSteps);
      fillStrip(days, kept.days, c.days, dayOffset);
      fillStrip(minutes, kept.minutes, c.minutes, minuteOffset);
      var pill = row.querySelector(".pill");
      setStatusClass(pill, c.status, classes);
      pill.querySelector(".pill-text").textContent = t[c.status];
      pill.title = t.description_window.replace("{window}", c.window[0]) + ": " +
        countsText([c.window[1], c.window[2]]);
      applyVerdict(row, c);
      Object.keys(c.uptime).forEach(function (key) {
        var dd = row.querySelector('dd[data-window="' + key + '"]');
        if (!dd) return;
        dd.textContent = percent(c.uptime[key]);
        if (c.counts[key]) dd.title = countsText(c.counts[key]);
      });
      // A last-data time older than the minute strip is a day bucket's start: the
      // server wrote the exact minute it knows; keep that.
      var last = c.last ? Date.parse(c.last) : null;
      if (last !== null && last >= firstMinute) {
        var cell = row.querySelector(".last-data");
        cell.replaceChildren(makeTime(last, now));
      }
    });
    if (data.full) fullLoaded = true;
    // Every exact time (not a day) reads relative to the new minute.
    document.querySelectorAll(".last-data time, .incident-meta time").forEach(function (el) {
      var at = el.getAttribute("datetime");
      if (at && at.length > 10) el.textContent = relative(Date.parse(at), now);
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
        var start = Date.parse(incident.created_at);
        var end = ongoing ? now : Date.parse(incident.resolved_at);
        meta.append(t.started + " ", makeTime(start, now), " \u00b7 ");
        if (ongoing) meta.append(t.ongoing_label);
        else meta.append(t.ended + " ", makeTime(end, now));
        meta.append(" \u00b7 " + t.duration + " " + duration(end - start) + " \u00b7 " +
                    t.failures + " " + count(incident.failures));
        li.append(name, " ", tag, meta);
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
      updated.textContent = utcTime(now);
      updated.title = utcTime(now);
      updated.setAttribute("datetime", data.now);
    }
    if (shown) showTip(shown);
  }

  function fetchUpdates(since) {
    var url = config.updates + (since ? "?since=" + encodeURIComponent(since) : "");
    return fetch(url, { cache: "no-cache", headers: { Accept: "application/json" } })
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
  /* The whole compact series, once, the first time a tooltip needs older numbers. */
  function loadFull() {
    if (fullLoaded || fullLoading) return;
    fullLoading = fetchUpdates(null).then(function () { fullLoading = null; });
  }
  function since() { return new Date(dataNow).toISOString().slice(0, 16) + ":00Z"; }
  window.setInterval(function () { fetchUpdates(since()); }, Math.max(1, config.refresh) * 1000);
})();
