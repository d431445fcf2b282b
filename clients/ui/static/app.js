// Stafett's local web inbox: small enhancements only; every page works without script.
// No inline code anywhere (the Content-Security-Policy forbids it): this file wires
// everything from data- attributes.
(function () {
  "use strict";
  var body = document.body;

  // Focus the error summary (or an error notice) so screen readers announce it first.
  var summary = document.querySelector("[data-autofocus]");
  if (summary) { summary.focus(); }

  // Live updates: Server-Sent Events from this app (fed by the gateway's push stream).
  if (body.dataset.live === "on" && window.EventSource) {
    var source = new EventSource("/events");
    var region = document.getElementById("live");
    source.addEventListener("stafett", function (e) {
      var event = JSON.parse(e.data);
      if (event.kind === "locked") { window.location.assign("/unlock"); return; }
      if (region) { region.textContent = event.text; }
      if (window.Notification && Notification.permission === "granted") {
        try { new Notification(body.dataset.notifyTitle || "Stafett", { body: event.text }); } catch (err) { /* not allowed here */ }
      }
      refreshList(event.kind);
    });
    if (window.Notification && Notification.permission === "default") {
      // Asked on the first click anywhere: browsers only allow it after a gesture.
      document.addEventListener("click", function ask() {
        document.removeEventListener("click", ask);
        Notification.requestPermission();
      });
    }
  }

  function refreshList(kind) {
    var list = document.getElementById("live-list");
    if (!list) { return; }
    var kinds = (list.dataset.refreshOn || "").split(" ");
    var match = kinds.some(function (k) { return k === kind || (k.endsWith("*") && kind.indexOf(k.slice(0, -1)) === 0); });
    if (!match) { return; }
    fetch(window.location.pathname, { credentials: "same-origin" }).then(function (r) { return r.text(); }).then(function (html) {
      var doc = new DOMParser().parseFromString(html, "text/html");
      var fresh = doc.getElementById("live-list");
      if (fresh) { list.replaceWith(fresh); }
    });
  }

  // Files: drag and drop onto the file field's zone, and a progress bar for the upload.
  var form = document.querySelector("form[data-upload]");
  if (form && window.FormData && window.XMLHttpRequest) {
    var input = form.querySelector("input[type=file]");
    var zone = form.querySelector(".dropzone");
    var listing = form.querySelector("[data-file-list]");
    var showFiles = function () {
      if (!listing) { return; }
      listing.textContent = "";
      Array.prototype.forEach.call(input.files, function (f) {
        var li = document.createElement("li");
        li.textContent = f.name + " (" + Math.max(1, Math.round(f.size / 1024)) + " KB)";
        listing.appendChild(li);
      });
    };
    if (zone && input) {
      input.addEventListener("change", showFiles);
      ["dragenter", "dragover"].forEach(function (n) {
        zone.addEventListener(n, function (e) { e.preventDefault(); zone.classList.add("dropzone--over"); });
      });
      ["dragleave", "drop"].forEach(function (n) {
        zone.addEventListener(n, function (e) { e.preventDefault(); zone.classList.remove("dropzone--over"); });
      });
      zone.addEventListener("drop", function (e) {
        if (e.dataTransfer && e.dataTransfer.files.length) {
          var merged = new DataTransfer();
          Array.prototype.forEach.call(input.files, function (f) { merged.items.add(f); });
          Array.prototype.forEach.call(e.dataTransfer.files, function (f) { merged.items.add(f); });
          input.files = merged.files;
          showFiles();
        }
      });
    }
    form.addEventListener("submit", function (e) {
      var submitter = e.submitter;
      var progress = form.querySelector("progress");
      if (!progress) { return; }
      e.preventDefault();
      var data = new FormData(form);
      if (submitter && submitter.name) { data.append(submitter.name, submitter.value); }
      var xhr = new XMLHttpRequest();
      xhr.open("POST", submitter && submitter.formAction ? submitter.formAction : form.action);
      xhr.setRequestHeader("X-CSRF-Token", body.dataset.csrf);
      progress.hidden = false;
      xhr.upload.addEventListener("progress", function (p) {
        if (p.lengthComputable) { progress.value = Math.round(100 * p.loaded / p.total); }
      });
      xhr.addEventListener("load", function () {
        // Sent: follow the redirect to the result page. Refused: show the form with
        // its error summary (the whole page the server answered).
        var target = submitter && submitter.formAction ? submitter.formAction : form.action;
        if (xhr.status < 400 && xhr.responseURL && xhr.responseURL !== target) { window.location.assign(xhr.responseURL); return; }
        document.open(); document.write(xhr.responseText); document.close();
      });
      xhr.send(data);
    });
  }

  // Print button on the consent form (samtyckesblankett).
  var print = document.querySelector("[data-print]");
  if (print) { print.addEventListener("click", function () { window.print(); }); }

  // A confirmation before an irreversible step (withdrawing a consent).
  Array.prototype.forEach.call(document.querySelectorAll("form[data-confirm]"), function (f) {
    f.addEventListener("submit", function (e) { if (!window.confirm(f.dataset.confirm)) { e.preventDefault(); } });
  });
}());
