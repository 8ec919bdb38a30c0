// Live preview of a notification while its fields are ticked (the server renders it,
// so the preview is exactly what will be sent). Without JavaScript the page still
// shows the preview of the saved choice.
document.querySelectorAll("pre[data-preview]").forEach(function (box) {
  var form = box.closest("form");
  if (!form) return;
  var update = function () {
    var q = new URLSearchParams();
    form.querySelectorAll("input[name=field]:checked").forEach(function (i) { q.append("field", i.value); });
    fetch(box.dataset.preview + "?" + q.toString(), { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.text() : Promise.reject(r.status); })
      .then(function (t) { box.textContent = t; })
      .catch(function () {});
  };
  form.addEventListener("change", function (e) { if (e.target.name === "field") update(); });
});
