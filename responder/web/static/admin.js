/* responder admin: live updates by polling, notifications, the conversation on a phone, and
   the reply box's SMS counter. No libraries. */
(function () {
  "use strict";

  // -- live regions: elements with data-live and an id are swapped when the server's differ --
  function nearBottom(el) {
    return el.scrollHeight - el.scrollTop - el.clientHeight < 40;
  }

  function toBottom(el) {
    el.scrollTop = el.scrollHeight;
  }

  function swap(html) {
    var tpl = document.createElement("template");
    tpl.innerHTML = html;
    tpl.content.querySelectorAll("[data-live][id]").forEach(function (fresh) {
      var old = document.getElementById(fresh.id);
      if (!old || old.outerHTML === fresh.outerHTML) return;
      var stick = fresh.hasAttribute("data-stick") && nearBottom(old);
      var keep = old.scrollTop;
      old.replaceWith(fresh);
      if (stick) toBottom(fresh); else fresh.scrollTop = keep;
      document.dispatchEvent(new CustomEvent("live-swapped", { detail: fresh }));
    });
  }

  // A form on its way (Salir above all) decides where the page goes next: a poll answered 401
  // meanwhile (the session already ended) must not reload over it.
  var leaving = false;
  window.addEventListener("submit", function (e) { if (!e.defaultPrevented) leaving = true; });

  // A fragment that answers with an ETag is asked again with it: 304 means nothing changed
  // (the server did not even render it), and nothing is swapped.
  function startPolling(root) {
    var every = parseInt(root.getAttribute("data-poll-ms"), 10) || 3000;
    var busy = false;
    var etag = null;
    function tick() {
      if (busy || leaving || document.hidden) return;
      busy = true;
      // Read each time: a conversation that loaded older messages polls from the oldest.
      var url = root.getAttribute("data-poll-url");
      var headers = { Accept: "text/html" };
      if (etag) headers["If-None-Match"] = etag;
      fetch(url, { credentials: "same-origin", cache: "no-store", headers: headers })
        .then(function (r) {
          if (r.status === 401) { if (!leaving) window.location.reload(); return null; }
          if (!r.ok) return null; // 304 included: the page already shows it
          etag = r.headers.get("ETag");
          return r.text();
        })
        .then(function (html) { if (html) swap(html); })
        .catch(function () { /* offline for a moment: the next tick tries again */ })
        .then(function () { busy = false; });
    }
    setInterval(tick, every);
    document.addEventListener("visibilitychange", tick);
  }

  // -- SMS counter: the same rules as responder/text.py and engine.prepare --------------------
  function Counter(alphabet) {
    var basic = new Set(Array.from(alphabet.basic));
    var extended = new Set(Array.from(alphabet.extended));
    var smart = alphabet.smart;
    var limit = alphabet.limit;
    function isGsm(text) {
      for (var ch of text) if (!basic.has(ch) && !extended.has(ch)) return false;
      return true;
    }
    function smartEncode(text) {
      if (isGsm(text)) return text;
      var out = "";
      for (var ch of text.normalize("NFC")) {
        out += Object.prototype.hasOwnProperty.call(smart, ch) ? smart[ch] : ch;
      }
      return out;
    }
    function segments(text) {
      var units, single, multi;
      if (isGsm(text)) {
        units = 0;
        for (var ch of text) units += extended.has(ch) ? 2 : 1;
        single = 160; multi = 153;
      } else {
        units = text.length; // UTF-16 code units, as UCS-2 on the wire counts them
        single = 70; multi = 67;
      }
      return units <= single ? 1 : Math.ceil(units / multi);
    }
    var space = /\s/;
    function split(text) { // split_text(): parts of at most `limit` characters, at spaces
      var cps = Array.from(text);
      if (cps.length <= limit) return [text];
      var rest = Array.from(text.trim()), parts = [];
      while (rest.length > limit) {
        var cut = -1;
        for (var i = limit; i > 0; i--) if (space.test(rest[i])) { cut = i; break; }
        if (cut < 0) { parts.push(rest.slice(0, limit).join("")); rest = rest.slice(limit); continue; }
        var end = cut, start = cut + 1;
        while (space.test(rest[end - 1])) end--;
        while (space.test(rest[start])) start++;
        parts.push(rest.slice(0, end).join(""));
        rest = rest.slice(start);
      }
      parts.push(rest.join(""));
      return parts;
    }
    this.count = function (text, useSmart) {
      var encoded = useSmart ? smartEncode(text) : text;
      var parts = split(encoded);
      var sms = parts.reduce(function (n, p) { return n + segments(p); }, 0);
      var odd = [];
      for (var ch of encoded) if (!basic.has(ch) && !extended.has(ch) && odd.indexOf(ch) < 0) odd.push(ch);
      return { chars: Array.from(text).length, sms: sms, parts: parts.length, unicode: odd.length > 0, odd: odd };
    };
  }

  // Every reply box on the page (the conversation's, the rule forms') shares one alphabet.
  function startCounters(boxes) {
    fetch("/admin/sms.json", { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (alphabet) {
        if (!alphabet) return;
        var counter = new Counter(alphabet);
        boxes.forEach(function (box) { wire(box, counter); });
      })
      .catch(function () { /* the counter is a help; sending works without it */ });
  }

  function wire(box, counter) {
    var out = document.getElementById(box.getAttribute("aria-describedby"));
    var useSmart = box.getAttribute("data-smart") === "true";
    if (!out) return;
    function update() {
      var text = box.value;
      if (!text) { out.textContent = "0 caracteres"; out.className = "counter"; return; }
      var c = counter.count(text, useSmart);
      var words = c.chars + (c.chars === 1 ? " carácter" : " caracteres") + " · " + c.sms + " SMS";
      if (c.parts > 1) words += " · se envía en " + c.parts + " mensajes";
      words += c.unicode
        ? " · Unicode, 70 por SMS (por: " + c.odd.slice(0, 5).join(" ") + ")"
        : " · GSM-7, 160 por SMS";
      out.textContent = words;
      out.className = c.unicode ? "counter unicode" : "counter";
      out.setAttribute("data-sms", String(c.sms));
    }
    box.addEventListener("input", update);
    update();
  }

  // -- the team: "Ana está escribiendo…" for the others, and what the person has seen ---------
  var TYPING_EVERY = 3000; // ms between two "still typing" posts (the server keeps 8 s)

  function startTyping(box) {
    var url = box.getAttribute("data-typing-url");
    var csrf = box.form && box.form.querySelector("input[name=csrf]");
    var last = 0;
    if (!url || !csrf) return;
    box.addEventListener("input", function () {
      var now = Date.now();
      if (now - last < TYPING_EVERY || !box.value.trim()) return;
      last = now;
      fetch(url, {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/x-www-form-urlencoded" },
        body: "csrf=" + encodeURIComponent(csrf.value)
      }).catch(function () { /* a hint for others; replying works without it */ });
    });
  }

  // The reply carries the newest message the person had on screen: a reply someone else sent
  // after it makes the server ask before sending.
  document.addEventListener("live-swapped", function (e) {
    var seen = document.querySelector("#reply input[name=seen]");
    if (seen && e.detail.id === "thread") seen.value = e.detail.getAttribute("data-seen") || seen.value;
  });

  // -- never missed: what waits for a person, on every page ----------------------------------
  // The tab title counts it; a message newer than the last one seen raises a notification
  // (once the person allowed them, with the button: never asked on load) and, when chosen, a
  // beep. Unlike the fragments, this keeps polling in a hidden tab (browsers slow it down).
  var SOUND_KEY = "responder.sound";
  var audio = null;

  function soundOn() {
    try { return window.localStorage.getItem(SOUND_KEY) === "on"; } catch (e) { return false; }
  }

  function beep() {
    var Context = window.AudioContext || window.webkitAudioContext;
    if (!Context) return;
    audio = audio || new Context();
    if (audio.state === "suspended") audio.resume();
    var tone = audio.createOscillator();
    var gain = audio.createGain();
    var now = audio.currentTime;
    tone.frequency.value = 880;
    gain.gain.setValueAtTime(0.12, now);
    gain.gain.exponentialRampToValueAtTime(0.001, now + 0.25);
    tone.connect(gain);
    gain.connect(audio.destination);
    tone.start(now);
    tone.stop(now + 0.25);
  }

  function startSoundToggle(button) {
    function show() {
      var on = soundOn();
      button.setAttribute("aria-pressed", on ? "true" : "false");
      button.textContent = on ? "Sonido: sí" : "Sonido: no";
    }
    button.addEventListener("click", function () {
      var on = !soundOn();
      try { window.localStorage.setItem(SOUND_KEY, on ? "on" : "off"); } catch (e) { /* private mode */ }
      if (on) beep(); // the click lets the page play sound from now on
      show();
    });
    button.hidden = false;
    show();
  }

  function startNotifyButton(button) {
    if (!("Notification" in window)) return;
    function show() { button.hidden = Notification.permission !== "default"; }
    button.addEventListener("click", function () {
      var asked = Notification.requestPermission(show);
      if (asked && asked.then) asked.then(show);
    });
    show();
  }

  function announce(newest, status) {
    var words = "Mensaje nuevo de " + newest.who + ": " + newest.text;
    status.textContent = words;
    status.setAttribute("data-message-id", String(newest.id));
    if (soundOn()) beep();
    var here = window.location.pathname === newest.href && !document.hidden;
    if (here || !("Notification" in window) || Notification.permission !== "granted") return;
    var note = new Notification("Mensaje de " + newest.who, {
      body: newest.text, tag: "responder-" + newest.phone, lang: "es"
    });
    status.setAttribute("data-notified", String(newest.id));
    note.addEventListener("show", function () { status.setAttribute("data-shown", String(newest.id)); });
    note.addEventListener("click", function () {
      window.focus();
      window.location.href = newest.href;
      note.close();
    });
  }

  function startWaiting(header) {
    var url = header.getAttribute("data-waiting-url");
    var every = parseInt(header.getAttribute("data-poll-ms"), 10) || 3000;
    var status = document.getElementById("waiting-status");
    var title = document.title;
    var seen = null; // the newest message id known; null until the first answer
    var busy = false;
    function tick() {
      if (busy || leaving) return;
      busy = true;
      fetch(url, { credentials: "same-origin", cache: "no-store", headers: { Accept: "application/json" } })
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (waiting) {
          if (!waiting) return;
          document.title = waiting.count ? "(" + waiting.count + ") " + title : title;
          header.setAttribute("data-waiting", String(waiting.count));
          var newest = waiting.newest;
          var id = newest ? newest.id : 0;
          if (seen !== null && id > seen && status) announce(newest, status);
          if (seen === null || id > seen) seen = id;
          // What the page counts as seen: only messages after it are announced.
          header.setAttribute("data-seen", String(seen));
        })
        .catch(function () { /* offline for a moment: the next tick tries again */ })
        .then(function () { busy = false; });
    }
    tick();
    setInterval(tick, every);
  }

  // -- the conversation on a phone: thread and reply box in one screen -------------------------
  var phone = window.matchMedia ? window.matchMedia("(max-width: 760px)") : null;

  // On a small screen the thread gets the height left between the top of the page and the
  // reply box, so both are on screen at once without scrolling the page. The height is set on
  // the chat section (as --thread-height), which live updates do not replace.
  function fitThread() {
    var thread = document.getElementById("thread");
    var reply = document.getElementById("reply");
    var chat = thread && thread.closest(".chat");
    if (!chat || !reply) return;
    if (!phone || !phone.matches) { chat.style.removeProperty("--thread-height"); return; }
    reply.classList.add("measuring"); // where it sits in the page, not where it sticks
    var top = thread.getBoundingClientRect().top + window.scrollY;
    var below = reply.getBoundingClientRect().bottom - thread.getBoundingClientRect().bottom;
    reply.classList.remove("measuring");
    var room = window.innerHeight - top - below - 8;
    chat.style.setProperty("--thread-height", Math.max(160, Math.floor(room)) + "px");
  }

  // The newest message at the bottom, but never past the customer's last one: when answers
  // came after it, it is shown whole at the top of the thread.
  function showLastInbound(thread) {
    toBottom(thread);
    var ins = thread.querySelectorAll(".msg.in");
    var last = ins[ins.length - 1];
    if (!last) return;
    var box = thread.getBoundingClientRect(), msg = last.getBoundingClientRect();
    if (msg.top < box.top) thread.scrollTop -= box.top - msg.top + 8;
  }

  // Older messages: the thread opens with the newest ones; scrolling to its top (or the
  // button there) puts the page before them above, where the person was reading stays put,
  // and the poll asks from the oldest message shown on, so a refresh keeps them all.
  var loadingOlder = false;
  function loadOlder() {
    var thread = document.getElementById("thread");
    var button = thread && thread.querySelector("#older [data-older]");
    var root = document.querySelector("[data-poll-url]");
    if (!button || !root || loadingOlder) return;
    loadingOlder = true;
    fetch(button.getAttribute("data-older"), {
      credentials: "same-origin", cache: "no-store", headers: { Accept: "text/html" }
    })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) {
        if (!html) return;
        var tpl = document.createElement("template");
        tpl.innerHTML = html;
        var page = tpl.content.querySelector("ol.thread-page");
        var current = document.getElementById("thread");
        var marker = current.querySelector("#older");
        if (!page || !marker) return;
        var height = current.scrollHeight, top = current.scrollTop;
        Array.from(page.children).forEach(function (li) { current.insertBefore(li, marker); });
        marker.remove();
        current.scrollTop = top + (current.scrollHeight - height);
        var base = root.getAttribute("data-poll-url").split("?")[0];
        root.setAttribute("data-poll-url", base + "?from=" + page.getAttribute("data-first"));
      })
      .catch(function () { /* offline for a moment: scrolling up again tries again */ })
      .then(function () { loadingOlder = false; });
  }
  document.addEventListener("click", function (e) {
    if (e.target.closest && e.target.closest("#older [data-older]")) loadOlder();
  });
  document.addEventListener("scroll", function (e) {
    if (e.target.id === "thread" && e.target.scrollTop < 80) loadOlder();
  }, true);

  function startConversation(thread) {
    var reply = document.getElementById("reply");
    fitThread();
    window.addEventListener("resize", fitThread);
    showLastInbound(thread);
    var box = reply ? reply.querySelector("textarea[name=text]") : null;
    if (!box) return;
    // Ctrl+Enter (Cmd+Enter on a Mac) sends, as in most chat programs.
    box.addEventListener("keydown", function (e) {
      if (e.key !== "Enter" || !(e.ctrlKey || e.metaKey)) return;
      e.preventDefault();
      if (reply.requestSubmit) reply.requestSubmit(); else reply.submit();
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("textarea[data-typing-url]").forEach(startTyping);
    var root = document.querySelector("[data-poll-url]");
    if (root) startPolling(root);
    document.querySelectorAll("[data-stick]").forEach(toBottom);
    // The header's buttons first: showing them may make the header taller.
    var notify = document.getElementById("notify-enable");
    if (notify) startNotifyButton(notify);
    var sound = document.getElementById("sound-toggle");
    if (sound) startSoundToggle(sound);
    var header = document.querySelector("[data-waiting-url]");
    if (header) startWaiting(header);
    var thread = document.getElementById("thread");
    if (thread) startConversation(thread);
    var boxes = document.querySelectorAll("textarea[data-sms-counter]");
    if (boxes.length) startCounters(boxes);
  });
})();

/* Saved replies: typing "/" and a name in the reply box opens a list of the team's saved
   replies, already filled in for this conversation (the server renders them); arrows move,
   Enter or a click picks one, Escape closes. The SMS counter follows through its input event. */
(function () {
  "use strict";

  function fold(text) { // case and accents ignored, as the matcher does
    return text.normalize("NFD").replace(/[\u0300-\u036f]/g, "").toLowerCase();
  }

  function Picker(box, list) {
    var url = box.getAttribute("data-saved-replies");
    var replies = null, loadedAt = 0, shown = [], active = -1, token = null, quiet = false;

    box.setAttribute("role", "combobox");
    box.setAttribute("aria-autocomplete", "list");
    box.setAttribute("aria-controls", list.id);
    box.setAttribute("aria-expanded", "false");

    function load() {
      if (replies && Date.now() - loadedAt < 30000) return Promise.resolve(replies);
      return fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (r) { return r.ok ? r.json() : { saved_replies: [] }; })
        .then(function (body) { replies = body.saved_replies; loadedAt = Date.now(); return replies; })
        .catch(function () { return []; });
    }

    function close() {
      list.hidden = true;
      list.textContent = "";
      shown = []; active = -1; token = null;
      box.setAttribute("aria-expanded", "false");
      box.removeAttribute("aria-activedescendant");
    }

    function highlight(index) {
      active = index;
      Array.prototype.forEach.call(list.children, function (li, i) {
        li.setAttribute("aria-selected", i === index ? "true" : "false");
      });
      if (index >= 0 && list.children[index]) {
        box.setAttribute("aria-activedescendant", list.children[index].id);
        list.children[index].scrollIntoView({ block: "nearest" });
      }
    }

    function render(query) {
      var q = fold(query);
      var starts = [], contains = [];
      replies.forEach(function (r) {
        var name = fold(r.name);
        if (name.indexOf(q) === 0) starts.push(r);
        else if (name.indexOf(q) >= 0 || fold(r.text).indexOf(q) >= 0) contains.push(r);
      });
      shown = starts.concat(contains).slice(0, 8);
      list.textContent = "";
      if (!shown.length) { close(); return; }
      shown.forEach(function (r, i) {
        var li = document.createElement("li");
        li.id = "saved-reply-option-" + r.id;
        li.setAttribute("role", "option");
        var name = document.createElement("strong");
        name.textContent = "/" + r.name;
        var text = document.createElement("span");
        text.textContent = r.error ? " (con un error: revise el texto) " + r.text : " " + r.text;
        li.appendChild(name); li.appendChild(text);
        li.addEventListener("mousedown", function (e) { e.preventDefault(); choose(i); });
        list.appendChild(li);
      });
      list.hidden = false;
      box.setAttribute("aria-expanded", "true");
      highlight(0);
    }

    function choose(index) {
      var reply = shown[index];
      if (!reply || !token) return;
      var before = box.value.slice(0, token.start), after = box.value.slice(box.selectionStart);
      box.value = before + reply.text + after;
      var caret = before.length + reply.text.length;
      box.setSelectionRange(caret, caret);
      close();
      quiet = true; // the input event below is ours: it updates the counter, not the list
      box.dispatchEvent(new Event("input", { bubbles: true }));
      quiet = false;
      box.focus();
    }

    box.addEventListener("input", function () {
      if (quiet) return;
      var upto = box.value.slice(0, box.selectionStart);
      var found = /(^|\s)\/([^\s\/]*)$/.exec(upto);
      if (!found) { close(); return; }
      token = { start: upto.length - found[2].length - 1 };
      var query = found[2];
      load().then(function () { if (token) render(query); });
    });

    box.addEventListener("keydown", function (e) {
      if (list.hidden) return;
      if (e.key === "ArrowDown") { e.preventDefault(); highlight((active + 1) % shown.length); }
      else if (e.key === "ArrowUp") { e.preventDefault(); highlight((active - 1 + shown.length) % shown.length); }
      else if (e.key === "Enter" && !e.ctrlKey && !e.metaKey && !e.shiftKey) { e.preventDefault(); choose(active); }
      else if (e.key === "Escape") { e.preventDefault(); close(); }
    });
    box.addEventListener("blur", close);
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("textarea[data-saved-replies]").forEach(function (box) {
      var list = document.getElementById("saved-replies-picker");
      if (list) new Picker(box, list);
    });
  });
})();
