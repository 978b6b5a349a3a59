/* responder admin: the rules editor's line numbers and its check as one types. No libraries. */
(function () {
  "use strict";
  var form = document.getElementById("rules-editor");
  var text = document.getElementById("rules-text");
  var gutter = document.getElementById("gutter");
  if (!form || !text || !gutter) return;
  var csrf = form.querySelector("input[name=csrf]").value;
  var marks = {};

  function drawGutter() {
    var count = text.value.split("\n").length;
    var lines = [];
    for (var i = 1; i <= count; i++) {
      var kind = marks[i];
      lines.push(kind ? '<span class="' + kind + '">' + i + "</span>" : String(i));
    }
    gutter.innerHTML = lines.join("\n") + "\n";
    gutter.scrollTop = text.scrollTop;
  }

  function templates() {
    var found = {};
    form.querySelectorAll("textarea.template-text").forEach(function (area) {
      found[area.name.slice("template:".length)] = area.value;
    });
    var name = form.querySelector("input[name=new_template]");
    var body = form.querySelector("textarea[name=new_template_text]");
    if (name && name.value.trim()) found[name.value.trim()] = body ? body.value : "";
    return found;
  }

  function item(finding, cls) {
    var li = document.createElement("li");
    li.className = cls;
    li.setAttribute("data-line", finding.line);
    li.textContent = "Línea " + finding.line + ": " + finding.message;
    if (finding.rule) {
      var hint = document.createElement("span");
      hint.className = "hint";
      hint.textContent = " (regla " + finding.rule + ")";
      li.appendChild(hint);
    }
    return li;
  }

  function show(result) {
    var box = document.getElementById("findings");
    if (!box) return;
    var title = box.querySelector("h2");
    box.textContent = "";
    if (title) box.appendChild(title);
    marks = {};
    function list(findings, heading, listClass, cls) {
      if (!findings.length) return;
      var p = document.createElement("p");
      if (cls === "problem") p.className = "error";
      var strong = document.createElement("strong");
      strong.textContent = heading[0];
      p.appendChild(strong);
      p.appendChild(document.createTextNode(heading[1]));
      var ul = document.createElement("ul");
      ul.className = listClass;
      findings.forEach(function (f) {
        ul.appendChild(item(f, cls));
        if (marks[f.line] !== "problem") marks[f.line] = cls;
      });
      box.appendChild(p);
      box.appendChild(ul);
    }
    list(result.problems, ["Errores", " (no se puede publicar así):"], "problems", "problem");
    list(result.warnings, ["Avisos", " (se puede publicar igual):"], "warnings", "warning");
    if (!result.problems.length && !result.warnings.length) {
      var ok = document.createElement("p");
      ok.className = "ok";
      ok.textContent = "Sin errores ni avisos.";
      box.appendChild(ok);
    }
    drawGutter();
  }

  var timer = null;
  var sent = 0;
  function check() {
    var mine = ++sent;
    fetch("/admin/rules/check", {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF": csrf },
      body: JSON.stringify({ rules: text.value, templates: templates() })
    })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (result) { if (result && mine === sent) show(result); })
      .catch(function () { /* offline for a moment: the next edit checks again */ });
  }
  function later() {
    drawGutter();
    clearTimeout(timer);
    timer = setTimeout(check, 400);
  }

  // marks from the page as the server rendered it
  document.querySelectorAll("#findings li[data-line]").forEach(function (li) {
    var line = li.getAttribute("data-line");
    if (marks[line] !== "problem") marks[line] = li.classList.contains("problem") ? "problem" : "warning";
  });
  text.addEventListener("input", later);
  form.addEventListener("input", function (e) { if (e.target !== text) later(); });
  text.addEventListener("scroll", function () { gutter.scrollTop = text.scrollTop; });
  drawGutter();
})();
