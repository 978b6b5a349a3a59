/* responder admin, Contactos: "mark all" and how many are marked. No libraries. */
(function () {
  "use strict";
  document.addEventListener("DOMContentLoaded", function () {
    var all = document.getElementById("select-all");
    var count = document.getElementById("selected-count");
    var form = document.getElementById("contacts-form");
    if (!all || !form) return;
    all.hidden = false; // without this script it could not mark anything
    function boxes() { return form.querySelectorAll('input[type="checkbox"][name^="sel."]'); }
    function update() {
      var marked = 0;
      var list = boxes();
      list.forEach(function (box) { if (box.checked) marked += 1; });
      all.checked = marked > 0 && marked === list.length;
      all.indeterminate = marked > 0 && marked < list.length;
      if (count) count.textContent = marked ? marked + (marked === 1 ? " marcado" : " marcados") : "Ninguno marcado";
    }
    all.addEventListener("change", function () {
      boxes().forEach(function (box) { box.checked = all.checked; });
      update();
    });
    form.addEventListener("change", function (e) { if (e.target !== all) update(); });
    update();
  });
})();
