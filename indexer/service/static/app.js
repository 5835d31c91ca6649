// The page: pick, drop or paste an image; see the top k (filtered, cut off, page by page); click a hit to search
// by it ("more like this"); add or delete.
"use strict";

const $ = (id) => document.getElementById(id);
let lastFile = null;   // the uploaded image the add form would store
let lastQuery = null;  // (token) => Promise: repeats the last search (after a control changes or a delete)
let nextToken = null;  // the next page of the last search, while its page came back full

function headers() {
  const token = $("token").value.trim();
  return token ? { Authorization: "Bearer " + token } : {};
}

function say(text, isError) {
  $("message").textContent = text;
  $("message").className = isError ? "error" : "muted";
}

async function call(method, url, body) {
  const response = await fetch(url, { method, body, headers: headers() });
  const payload = await response.json().catch(() => ({ detail: response.statusText }));
  if (!response.ok) throw new Error(payload.detail || response.statusText);
  return payload;
}

function quoted(text) {
  return '"' + text.replace(/\\/g, "\\\\").replace(/"/g, '\\"') + '"';
}

function filterText() {
  const parts = [];
  if ($("label-pick").value) parts.push("label = " + quoted($("label-pick").value));
  if ($("filter").value.trim()) parts.push("(" + $("filter").value.trim() + ")");
  return parts.join(" and ");
}

function params(token) {
  const query = new URLSearchParams({ k: $("k").value || "10" });
  if ($("index").value) query.set("index", $("index").value);
  if (filterText()) query.set("filter", filterText());
  if ($("min-score").value !== "") query.set("min_score", $("min-score").value);
  if (token) query.set("page_token", token);
  return query.toString();
}

function show(answer, what, append) {
  const grid = $("results");
  if (!append) grid.replaceChildren();
  nextToken = answer.next_page_token || null;
  $("more").hidden = !nextToken;
  for (const hit of answer.results) {
    const card = document.createElement("div");
    card.className = "hit";
    const img = document.createElement("img");
    img.src = "/images/" + hit.id;
    img.alt = hit.label || "image " + hit.id;
    img.title = "search by image " + hit.id;
    img.dataset.id = hit.id;
    img.addEventListener("click", () => searchSimilar(hit.id));
    const rank = document.createElement("span");
    rank.className = "rank";
    rank.textContent = "#" + hit.rank;
    const remove = document.createElement("button");
    remove.className = "delete";
    remove.textContent = "×";
    remove.title = "delete image " + hit.id + " from the catalog";
    remove.addEventListener("click", () => removeImage(hit.id));
    const meta = document.createElement("div");
    meta.className = "meta";
    const label = document.createElement("div");
    label.className = "label";
    label.textContent = hit.label || "(no label)";
    const score = document.createElement("div");
    score.className = "muted";
    score.textContent = "score " + hit.score.toFixed(4) + " · id " + hit.id;
    meta.append(label, score);
    card.append(img, rank, remove, meta);
    grid.append(card);
  }
  const plan = answer.plan ? " (filter: " + answer.plan.selected + " images passed, " + answer.plan.kind +
                             " search)" : "";
  const shown = grid.querySelectorAll(".hit").length;
  say(shown + " results for " + what + " from index '" + answer.index + "'" + plan + " in " +
      answer.took_ms.toFixed(1) + " ms");
}

async function searchFile(file) {
  lastFile = file;
  $("preview").src = URL.createObjectURL(file);
  $("preview").hidden = false;
  $("drop-text").textContent = file.name + " — drop, paste or click for another";
  $("add-form").hidden = false;
  lastQuery = async (token) => {
    const form = new FormData();
    form.append("image", file, file.name);
    show(await call("POST", "/query?" + params(token), form), file.name, Boolean(token));
  };
  await run(lastQuery);
}

async function searchSimilar(id) {
  lastQuery = async (token) => show(await call("GET", "/images/" + id + "/similar?" + params(token)),
                                    "image " + id, Boolean(token));
  await run(lastQuery);
}

async function removeImage(id) {
  if (!confirm("Delete image " + id + " from the catalog and every index?")) return;
  await run(async () => {
    await call("DELETE", "/images/" + id);
    if (lastQuery) await lastQuery();
    say("image " + id + " deleted. " + $("message").textContent);
  });
}

async function addImage(event) {
  event.preventDefault();
  if (!lastFile) return;
  const form = new FormData();
  form.append("image", lastFile, lastFile.name);
  if ($("add-label").value.trim()) form.append("label", $("add-label").value.trim());
  if ($("add-split").value.trim()) form.append("split", $("add-split").value.trim());
  await run(async () => {
    const added = await call("POST", "/images", form);
    const what = added.duplicate_of ? "already in the catalog as image " + added.duplicate_of
                                    : "added as image " + added.id + " to " + (added.indexes.join(", ") || "no index");
    if (lastQuery) await lastQuery();
    say(lastFile.name + " " + what + ". " + $("message").textContent);
  });
}

async function run(action) {
  try {
    say("working…");
    await action();
  } catch (error) {
    say(error.message, true);
  }
}

async function start() {
  try {
    await call("GET", "/healthz");
    const indexes = await call("GET", "/indexes");
    for (const index of indexes) {
      const option = document.createElement("option");
      option.value = index.name;
      option.textContent = index.name + " (" + index.kind + ", " + index.ntotal + ")";
      $("index").append(option);
    }
    $("health").textContent = indexes.length ? "model '" + indexes[0].model + "'" : "no index";
    const known = await call("GET", "/fields");
    for (const label of known.labels) {
      const option = document.createElement("option");
      option.value = label;
      option.textContent = label;
      $("label-pick").append(option);
    }
    const own = Object.entries(known.fields).map(([name, type]) => name + " (" + type + ")");
    $("fields-hint").textContent = "fields: label, split, path, folder, format, width, height, size, ingested" +
                                   (own.length ? ", " + own.join(", ") : "");
  } catch (error) {
    $("health").textContent = "not ready: " + error.message;
  }
  $("token").value = localStorage.getItem("indexer-token") || "";
}

$("file").addEventListener("change", () => { if ($("file").files[0]) searchFile($("file").files[0]); });
for (const id of ["k", "min-score", "label-pick", "filter"]) {
  $(id).addEventListener("change", () => { if (lastQuery) run(lastQuery); });
}
$("more").addEventListener("click", () => { if (lastQuery && nextToken) run(() => lastQuery(nextToken)); });
$("index").addEventListener("change", () => { if (lastQuery) run(lastQuery); });
$("token").addEventListener("change", () => localStorage.setItem("indexer-token", $("token").value.trim()));
$("add-form").addEventListener("submit", addImage);
const drop = $("drop");
drop.addEventListener("dragover", (event) => { event.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (event) => {
  event.preventDefault();
  drop.classList.remove("over");
  const file = event.dataTransfer.files[0];
  if (file) searchFile(file);
});
document.addEventListener("paste", (event) => {
  const item = [...event.clipboardData.items].find((entry) => entry.type.startsWith("image/"));
  if (item) searchFile(item.getAsFile());
});
start();
