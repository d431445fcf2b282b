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

  // Recording a consent: show only the part of the chosen form (written: the scan;
  // oral: witness and note), and say at once when the number belongs to someone under
  // 18. Only a hint: the server derives the age again and refuses without guardians.
  var consentForm = document.querySelector("form[data-consent-form]");
  if (consentForm) {
    var parts = consentForm.querySelectorAll("[data-form-part]");
    var showPart = function () {
      var chosen = consentForm.querySelector("input[name=form]:checked");
      Array.prototype.forEach.call(parts, function (p) {
        p.hidden = chosen ? p.dataset.formPart !== chosen.value : false;
      });
    };
    Array.prototype.forEach.call(consentForm.querySelectorAll("input[name=form]"), function (r) {
      r.addEventListener("change", showPart);
    });
    showPart();
    var pnr = consentForm.querySelector("#pnr");
    var minorNotice = consentForm.querySelector("[data-minor-notice]");
    var checkAge = function () {
      var age = ageOf(pnr.value);
      minorNotice.hidden = !(age !== null && age < 18);
    };
    if (pnr && minorNotice) { pnr.addEventListener("input", checkAge); checkAge(); }
  }

  // Age in whole years from a personnummer or samordningsnummer (day + 60); null when
  // the text is not (yet) a number of either form. YYMMDD with "+" is 100 or older.
  function ageOf(text) {
    var m = /^\s*(\d{2})?(\d{2})(\d{2})(\d{2})([-+]?)\d{4}\s*$/.exec(text);
    if (!m) { return null; }
    var today = new Date();
    var yy = parseInt(m[2], 10), month = parseInt(m[3], 10), dayOf = parseInt(m[4], 10);
    if (dayOf > 60) { dayOf -= 60; }
    var year;
    if (m[1]) { year = parseInt(m[1] + m[2], 10); } else {
      year = Math.floor(today.getFullYear() / 100) * 100 + yy;
      if (year > today.getFullYear()) { year -= 100; }
      if (m[5] === "+") { year -= 100; }
    }
    if (month < 1 || month > 12 || dayOf < 1 || dayOf > 31) { return null; }
    var age = today.getFullYear() - year;
    if (today.getMonth() + 1 < month || (today.getMonth() + 1 === month && today.getDate() < dayOf)) { age -= 1; }
    return age;
  }

  // Compose: a search field over the native unit list (filters the options as the
  // officer types; one match is chosen), and only the chosen unit's named officers.
  // The select stays the real control: keyboard and screen readers work as without it.
  var picker = document.querySelector("[data-unit-picker]");
  if (picker) {
    var select = picker.querySelector("select");
    var searchBox = picker.querySelector("[data-picker-search]");
    var search = searchBox.querySelector("input");
    var status = searchBox.querySelector("[data-picker-status]");
    var options = Array.prototype.slice.call(select.options, 1);
    searchBox.hidden = false;
    search.addEventListener("input", function () {
      var q = search.value.trim().toLowerCase();
      var shown = options.filter(function (o) {
        var match = !q || o.textContent.toLowerCase().indexOf(q) !== -1;
        o.hidden = !match; o.disabled = !match;
        return match;
      });
      if (shown.length === 1) { select.value = shown[0].value; }
      else if (select.selectedOptions[0] && select.selectedOptions[0].hidden) { select.value = ""; }
      status.textContent = !q ? "" : shown.length === 0 ? status.dataset.none : status.dataset.some.replace("{n}", shown.length);
      filterOfficers();
    });
    search.addEventListener("keydown", function (e) {
      // Enter picks the filtered unit instead of submitting the form half filled.
      if (e.key === "Enter") { e.preventDefault(); select.focus(); }
    });
    select.addEventListener("change", filterOfficers);
    filterOfficers();
  }

  function filterOfficers() {
    var unit = document.querySelector("[data-unit-picker] select").value;
    var rows = document.querySelectorAll("#officers [data-unit]");
    var any = false;
    Array.prototype.forEach.call(rows, function (row) {
      var mine = row.dataset.unit === unit;
      row.hidden = !mine;
      if (!mine) { row.querySelector("input").checked = false; }
      any = any || mine;
    });
    var none = document.querySelector("[data-officers-none]");
    if (none) { none.hidden = any; }
  }
}());
