// Seisan web app: uploads with progress, and receipts that update themselves (Server-Sent Events).
// Small and dependency-free on purpose; every page works without it except live updates.
"use strict";

function csrfToken() {
  const meta = document.querySelector('meta[name="csrf-token"]');
  return meta ? meta.content : "";
}

function uploadFile(form, file, list) {
  const item = document.createElement("li");
  const name = document.createElement("span");
  name.textContent = file.name;
  const bar = document.createElement("progress");
  bar.max = 100;
  bar.value = 0;
  const state = document.createElement("span");
  state.className = "state";
  state.textContent = list.dataset.uploading;
  item.append(name, bar, state);
  list.append(item);

  const data = new FormData();
  data.append("file", file, file.name);
  const paid = form.querySelector('input[name="paid_with"]:checked');
  data.append("paid_with", paid ? paid.value : "company_card");
  data.append("note", form.querySelector('input[name="note"]').value);

  return new Promise((resolve) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", form.action);
    xhr.setRequestHeader("X-CSRF-Token", csrfToken());
    xhr.setRequestHeader("Accept", "application/json");
    xhr.upload.addEventListener("progress", (e) => {
      if (e.lengthComputable) bar.value = Math.round((100 * e.loaded) / e.total);
    });
    xhr.addEventListener("load", () => {
      let body = {};
      try { body = JSON.parse(xhr.responseText); } catch (_) { /* not JSON */ }
      if (xhr.status === 200 && body.receipts) {
        bar.value = 100;
        state.textContent = list.dataset.done;
        for (const r of body.receipts) addReceiptRow(r);
        item.dataset.receiptId = body.receipts[0].receipt_id;
      } else {
        state.textContent = list.dataset.failed + ": " + (body.detail || xhr.status);
        item.classList.add("error");
      }
      resolve();
    });
    xhr.addEventListener("error", () => {
      state.textContent = list.dataset.failed;
      item.classList.add("error");
      resolve();
    });
    xhr.send(data);
  });
}

function addReceiptRow(r) {
  const body = document.querySelector("#receipts tbody");
  if (!body || body.querySelector(`tr[data-receipt-id="${r.receipt_id}"]`)) {
    if (body) refreshReceipt(r.receipt_id);
    return;
  }
  const empty = body.querySelector("tr.empty");
  if (empty) empty.remove();
  const row = document.createElement("tr");
  row.dataset.receiptId = r.receipt_id;
  const link = document.createElement("a");
  link.href = r.url;
  link.textContent = r.receipt_id.slice(0, 8);
  const cells = ["id", "status", "merchant", "date", "total"].map((cls) => {
    const td = document.createElement("td");
    td.className = cls;
    return td;
  });
  cells[0].append(link);
  cells[4].classList.add("num");
  const badge = document.createElement("span");
  badge.className = "badge s-" + r.status.replace(/ /g, "-");
  badge.textContent = r.status;
  cells[1].append(badge);
  row.append(...cells);
  body.prepend(row);
  refreshReceipt(r.receipt_id);
}

async function refreshReceipt(id) {
  const response = await fetch(`/receipts/${encodeURIComponent(id)}/summary`, {
    headers: { Accept: "application/json" },
    credentials: "same-origin",
  });
  if (!response.ok) return;
  const s = await response.json();
  const row = document.querySelector(`#receipts tr[data-receipt-id="${CSS.escape(id)}"]`);
  if (row) {
    const badge = row.querySelector(".status .badge") || row.querySelector(".badge");
    if (badge) {
      badge.textContent = s.status_label;
      badge.className = "badge s-" + s.status.replace(/ /g, "-");
      badge.dataset.state = s.status;
    }
    for (const key of ["merchant", "date", "total"]) {
      const cell = row.querySelector("." + key);
      if (cell) cell.textContent = s[key];
    }
  }
  const detail = document.querySelector(`#receipt[data-receipt-id="${CSS.escape(id)}"]`);
  if (detail) {
    document.getElementById("status").textContent = s.status_label;
    document.getElementById("status").dataset.state = s.status;
    document.getElementById("f-merchant").textContent = s.merchant;
    document.getElementById("f-date").textContent = s.date;
    document.getElementById("f-total").textContent = s.total;
  }
}

function listen() {
  const source = document.querySelector("[data-live]") || document.getElementById("receipt");
  if (!source || !window.EventSource) return;
  const events = new EventSource("/live/receipts");
  const badge = document.getElementById("live");
  events.addEventListener("open", () => { if (badge) badge.hidden = false; });
  events.addEventListener("error", () => { if (badge) badge.hidden = true; });
  events.addEventListener("receipt", (e) => {
    const change = JSON.parse(e.data);
    refreshReceipt(change.receipt_id);
  });
}

function setUpUpload() {
  const form = document.getElementById("upload");
  if (!form) return;
  const list = document.getElementById("progress");
  for (const input of form.querySelectorAll('input[type="file"]')) {
    input.addEventListener("change", async () => {
      const files = Array.from(input.files);
      for (const file of files) await uploadFile(form, file, list);
      input.value = "";
    });
  }
}

document.addEventListener("DOMContentLoaded", () => {
  setUpUpload();
  listen();
});
