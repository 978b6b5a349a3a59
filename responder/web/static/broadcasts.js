/* Difusiones: the form's live estimate (who would get it, SMS in all) and the stale-preview
   guard; the progress page's counts, bar and buttons, polled while the broadcast runs. The
   SMS counter under the text is admin.js's (data-sms-counter). No libraries. */
(function () {
  "use strict";

  // -- the form --------------------------------------------------------------------------------
  function plural(n, one, many) { return n + " " + (n === 1 ? one : many); }

  function startForm(form) {
    var url = form.getAttribute("data-estimate-url");
    var out = document.getElementById("estimate");
    var text = form.querySelector("textarea[name=text]");
    var timer = null, asked = 0;

    function query(withCsrf) {
      var params = new URLSearchParams();
      Array.prototype.forEach.call(form.elements, function (el) {
        if (!el.name || (el.name === "csrf" && !withCsrf) || el.disabled) return;
        if ((el.type === "checkbox" || el.type === "radio") && !el.checked) return;
        params.append(el.name, el.value);
      });
      return params.toString();
    }

    function show(answer) {
      out.hidden = false;
      if (answer.error) {
        out.className = "estimate error-text";
        out.textContent = answer.error;
        return;
      }
      out.className = "estimate";
      if (!answer.recipients) {
        out.textContent = "Nadie cumple estas condiciones todavía.";
        return;
      }
      var words = plural(answer.recipients, "destinatario", "destinatarios");
      if (text.value.trim()) {
        words += " × " + plural(answer.parts, "SMS", "SMS") + " por mensaje = unos " +
          answer.estimated_segments + " SMS en total (créditos del proveedor)";
      }
      out.textContent = words;
      out.setAttribute("data-recipients", String(answer.recipients));
    }

    function estimate() {
      var mine = ++asked;
      fetch(url, {
        method: "POST",
        credentials: "same-origin",
        headers: { Accept: "application/json", "Content-Type": "application/x-www-form-urlencoded" },
        body: query(true)
      })
        .then(function (r) {
          var json = (r.headers.get("Content-Type") || "").indexOf("application/json") === 0;
          return r.ok && json ? r.json() : null;
        })
        .then(function (answer) { if (answer && mine === asked) show(answer); })
        .catch(function () { /* a help only: the preview step counts again */ });
    }

    function later() {
      window.clearTimeout(timer);
      timer = window.setTimeout(estimate, 350);
    }

    var previewed = form.hasAttribute("data-previewed") ? query() : null;
    function changed() {
      if (previewed === null) return;
      var stale = query() !== previewed;
      var send = document.getElementById("send");
      var note = document.getElementById("stale");
      if (send) send.disabled = stale;
      if (note) note.hidden = !stale;
    }

    form.addEventListener("input", function () { later(); changed(); });
    form.addEventListener("change", function () { later(); changed(); });
    var at = document.getElementById("b-send-at");
    var laterRadio = document.getElementById("when-later");
    if (at && laterRadio) {
      at.addEventListener("input", function () {
        if (at.value && !laterRadio.checked) {
          laterRadio.checked = true;
          changed();
        }
      });
    }
    estimate();
  }

  // -- the progress page -----------------------------------------------------------------------
  function startProgress(root) {
    var url = root.getAttribute("data-progress-url");
    var every = parseInt(root.getAttribute("data-poll-ms"), 10) || 1500;
    var timer = null, busy = false;
    var KEYS = ["queued", "sent", "delivered", "failed", "skipped", "cancelled"];
    var shownCounts = root.getAttribute("data-counts"), listedAt = Date.now(), listing = false, dirty = false;

    // The recipients' list (this page as it is, filter and page kept) is fetched again when
    // the counts changed, at most every LIST_EVERY ms, and once more at the end.
    var LIST_EVERY = 4000;
    function refreshList(force) {
      if (!dirty || listing || (!force && Date.now() - listedAt < LIST_EVERY)) return;
      if (!document.getElementById("recipients-section")) return;
      dirty = false;
      listing = true;
      listedAt = Date.now();
      fetch(window.location.href, { credentials: "same-origin", cache: "no-store", headers: { Accept: "text/html" } })
        .then(function (r) { return r.ok ? r.text() : null; })
        .then(function (html) {
          if (!html) return;
          var fresh = new DOMParser().parseFromString(html, "text/html").getElementById("recipients-section");
          var current = document.getElementById("recipients-section");
          if (fresh && current && fresh.innerHTML !== current.innerHTML) {
            current.replaceWith(document.importNode(fresh, true));
          }
        })
        .catch(function () { /* the next change tries again */ })
        .then(function () { listing = false; if (dirty) refreshList(true); });
    }

    function text(id, value) {
      var el = document.getElementById(id);
      if (el && el.textContent !== String(value)) el.textContent = String(value);
    }

    function apply(p) {
      var badge = document.getElementById("b-status");
      if (badge && badge.getAttribute("data-status") !== p.status) {
        badge.setAttribute("data-status", p.status);
        badge.className = "badge state " + p.status;
        badge.textContent = p.status_label;
      }
      Object.keys(p.counts).forEach(function (key) { text("count-" + key, p.counts[key]); });
      text("b-settled", p.settled);
      text("b-total", p.recipients);
      text("b-percent", p.percent);
      p.bar.forEach(function (piece) {
        var rect = root.querySelector('[data-piece="' + piece.key + '"]');
        if (!rect) return;
        rect.setAttribute("x", String(piece.x));
        rect.setAttribute("width", String(piece.width));
      });
      var bar = root.querySelector("[data-bar]");
      if (bar) {
        bar.setAttribute("aria-label", "Progreso: " + p.settled + " de " + p.recipients + " (" + p.percent + " %)");
      }
      var waiting = document.getElementById("b-waiting");
      if (waiting) {
        waiting.hidden = !p.waiting;
        waiting.textContent = p.waiting || "";
      }
      root.querySelectorAll("[data-when]").forEach(function (el) {
        el.hidden = el.getAttribute("data-when").split(" ").indexOf(p.status) < 0;
      });
      var scheduled = document.getElementById("b-scheduled");
      if (scheduled && p.status !== "scheduled") scheduled.hidden = true;
      var counts = KEYS.map(function (key) { return p.counts[key]; }).join(",");
      if (counts !== shownCounts) dirty = true;
      shownCounts = counts;
      refreshList(p.final);
      if (p.final) {
        root.setAttribute("data-final", "");
        window.clearInterval(timer);
      }
    }

    // Scheduled or paused, it changes rarely: one look in SLOW_EVERY ticks.
    var SLOW_EVERY = 10, skipped = 0;
    function tick() {
      if (busy || document.hidden) return;
      var badge = document.getElementById("b-status");
      var status = badge ? badge.getAttribute("data-status") : "running";
      if ((status === "scheduled" || status === "paused") && ++skipped % SLOW_EVERY) return;
      busy = true;
      fetch(url, { credentials: "same-origin", cache: "no-store", headers: { Accept: "application/json" } })
        .then(function (r) {
          if (r.status === 401) { window.location.reload(); return null; }
          return r.ok ? r.json() : null;
        })
        .then(function (p) { if (p) apply(p); })
        .catch(function () { /* offline for a moment: the next tick tries again */ })
        .then(function () { busy = false; });
    }

    if (root.hasAttribute("data-final")) return;
    timer = window.setInterval(tick, every);
    document.addEventListener("visibilitychange", tick);
  }

  document.addEventListener("DOMContentLoaded", function () {
    var form = document.getElementById("broadcast-form");
    if (form) startForm(form);
    var progress = document.querySelector("[data-progress-url]");
    if (progress) startProgress(progress);
  });
})();
