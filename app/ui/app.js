// facever's web page: plain JavaScript, no dependencies, talks to the service's own /v1 API.
"use strict";

const KEY_STORE = "facever.apiKey";
const PAGE_SIZE = 10;
const LANDMARKS = ["left_eye", "right_eye", "nose", "mouth_left", "mouth_right"];
const CROP_PX = 64;
// What is wrong with a photo, said of the photo: "First photo: no face was found in it."
const PHOTO_PROBLEMS = {
  no_face: "no face was found in it",
  multiple_faces: "it shows several faces; use a photo of one person",
  not_an_image: "it is not an image facever can read",
  unsupported_format: "its format cannot be read; use JPEG, PNG, WebP, BMP, TIFF or GIF",
  corrupt_image: "the file is damaged",
  empty_image: "the file is empty",
  too_many_pixels: "it has too many pixels; use a smaller photo",
  image_too_large: "the file is too large; use a smaller photo",
  missing_image: "it is missing",
  invalid_base64: "it could not be read",
  face_too_small: "the face is too small; use a photo taken closer",
  too_blurred: "the face is too blurred",
  pose_too_far: "the face is turned too far from the camera",
  badly_exposed: "the face is too dark or too bright",
};
const PROBLEMS = {
  network: "The service could not be reached.",
  missing_api_key: "An API key is needed.",
  invalid_api_key: "The API key is not valid.",
  insufficient_scope: "The API key does not allow this.",
};
// The API's messages about an image start with its request field ("image1: ..."), a name for programs.
const FIELD_PREFIX = /^(image1|image2|image|images\[\d+\]): /;

const $ = (id) => document.getElementById(id);
// crops: face id -> the face cut from a photo enrolled from this tab (kept in this page only: the
// service stores no image, so faces enrolled elsewhere or before a reload show no picture).
const state = {
  info: null, scope: null, offset: 0, total: 0, name: "", identity: null, files: {}, crops: new Map(),
};

function el(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = text;
  if (className) node.className = className;
  return node;
}

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

function apiKey() {
  return sessionStorage.getItem(KEY_STORE) || "";
}

async function api(method, path, body) {
  const headers = {};
  const key = apiKey();
  if (key) headers["X-API-Key"] = key;
  let payload = body;
  if (body && !(body instanceof FormData)) {
    headers["Content-Type"] = "application/json";
    payload = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, { method, headers, body: payload });
  } catch (error) {
    throw new ApiError(0, "network", "the service could not be reached");
  }
  if (response.status === 204) return null;
  let data = null;
  try {
    data = await response.json();
  } catch (error) {
    data = null;
  }
  if (!response.ok) {
    const err = (data && data.error) || {};
    const apiErr = new ApiError(response.status, err.code || "http_" + response.status,
      err.message || "the service answered " + response.status);
    if (response.status === 401) needKey(apiErr.message);
    throw apiErr;
  }
  return data;
}

// What went wrong in plain words, once; a photo's problem as said of the photo ("no face was found in it.").
function problem(error) {
  const phrase = PHOTO_PROBLEMS[error.code];
  return phrase ? phrase + "." : PROBLEMS[error.code] || sentence(error.message.replace(FIELD_PREFIX, ""));
}

// The same, naming the photo it is about ("First photo: no face was found in it.").
function describe(error, photo) {
  return PHOTO_PROBLEMS[error.code] ? (photo || "The photo") + ": " + problem(error) : problem(error);
}

// The photo an image error is about, from the field its message names: {image1: "First photo", ...}.
function photoOf(error, names) {
  const field = FIELD_PREFIX.exec(error.message);
  return field ? names[field[1]] : undefined;
}

function sentence(text) {
  const trimmed = text.trim();
  if (!trimmed) return "Something went wrong.";
  return trimmed[0].toUpperCase() + trimmed.slice(1) + (/[.!?]$/.test(trimmed) ? "" : ".");
}

function fmt(value, digits) {
  return typeof value === "number" ? value.toFixed(digits === undefined ? 4 : digits) : "—";
}

// One decimal would show 0.99999 as "100.0 %" and 2.5e-7 as "0.0 %": a certainty no calibration gives.
function percent(probability) {
  if (typeof probability !== "number") return "—";
  const shown = (probability * 100).toFixed(1);
  if (shown === "100.0") return "> 99.9 %";
  if (shown === "0.0") return "< 0.1 %";
  return shown + " %";
}

function quality(face) {
  return face && face.quality ? fmt(face.quality.score, 2) : "—";
}

// A timestamp from the API as local "YYYY-MM-DD HH:MM".
function when(timestamp) {
  const date = new Date(timestamp);
  if (Number.isNaN(date.getTime())) return "—";
  const two = (n) => String(n).padStart(2, "0");
  return date.getFullYear() + "-" + two(date.getMonth() + 1) + "-" + two(date.getDate()) + " " +
    two(date.getHours()) + ":" + two(date.getMinutes());
}

// -- tabs ---------------------------------------------------------------------------------------------

const TABS = ["verify", "identities", "identify"];

function selectTab(name, focus) {
  for (const other of TABS) {
    const tab = $("tab-" + other);
    const selected = other === name;
    tab.setAttribute("aria-selected", String(selected));
    tab.tabIndex = selected ? 0 : -1;
    $(other).hidden = !selected;
  }
  if (focus) $("tab-" + name).focus();
  if (name === "identities") loadIdentities();
}

function setUpTabs() {
  TABS.forEach((name, index) => {
    const tab = $("tab-" + name);
    tab.addEventListener("click", () => selectTab(name, false));
    tab.addEventListener("keydown", (event) => {
      let next = null;
      if (event.key === "ArrowRight") next = TABS[(index + 1) % TABS.length];
      if (event.key === "ArrowLeft") next = TABS[(index + TABS.length - 1) % TABS.length];
      if (event.key === "Home") next = TABS[0];
      if (event.key === "End") next = TABS[TABS.length - 1];
      if (next) {
        event.preventDefault();
        selectTab(next, true);
      }
    });
  });
}

// -- API key and service status -----------------------------------------------------------------------

function needKey(message) {
  $("auth").hidden = false;
  $("auth-message").textContent = apiKey()
    ? "The API key was refused (" + message + "). Enter another one."
    : "This service needs an API key. Enter one to use the page.";
  $("service-status").textContent = "An API key is needed.";
}

const SCOPE_TEXT = {
  admin: "Key scope: admin — verify, identify, and manage identities (create, enroll, delete).",
  verify: "Key scope: verify — verify and identify only; managing identities needs an admin key.",
};

async function loadInfo() {
  try {
    const info = await api("GET", "/v1/info");
    state.info = info;
    state.scope = info.key_scope || (info.auth === "disabled" ? "admin" : null);
    const parts = [];
    if (info.auth === "disabled") {
      parts.push("Authentication is disabled: everyone who can reach this service has full access.");
      $("auth").hidden = true;
    } else {
      parts.push(SCOPE_TEXT[state.scope] || "Key scope: " + state.scope);
      $("auth").hidden = false;
      $("auth-message").textContent = "You are using an API key.";
    }
    parts.push("Model " + info.model.name + " " + info.model.version + ", threshold " + fmt(info.threshold) + ".");
    $("service-status").textContent = parts.join(" ");
    $("key-error").textContent = "";
    applyScope();
  } catch (error) {
    state.scope = null;
    if (error.status !== 401) $("service-status").textContent = "The service answered: " + describe(error);
    else $("key-error").textContent = apiKey() ? describe(error) : "";
    applyScope();
  }
}

function applyScope() {
  const admin = state.scope === "admin";
  $("identities-body").hidden = !admin;
  $("identities-scope").textContent = admin ? "" : state.scope
    ? "Managing identities needs an API key with scope admin; this key has scope " + state.scope + "."
    : "Enter an API key to manage identities.";
}

function setUpKey() {
  $("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const key = $("api-key").value.trim();
    if (key) sessionStorage.setItem(KEY_STORE, key);
    $("api-key").value = "";
    loadInfo();
  });
  $("forget-key").addEventListener("click", () => {
    sessionStorage.removeItem(KEY_STORE);
    state.scope = null;
    applyScope();
    needKey("");
  });
}

// -- photos: choose, drop, draw -------------------------------------------------------------------------

function loadImage(file) {
  return new Promise((resolve, reject) => {
    const url = URL.createObjectURL(file);
    const image = new Image();
    image.onload = () => {
      URL.revokeObjectURL(url);
      resolve(image);
    };
    image.onerror = () => {
      URL.revokeObjectURL(url);
      reject(new Error("not an image"));
    };
    image.src = url;
  });
}

// canvas -> the number of its latest drawing: one that finishes loading later must not draw over it.
const drawings = new WeakMap();

async function drawPhoto(canvas, file, face) {
  const drawing = (drawings.get(canvas) || 0) + 1;
  drawings.set(canvas, drawing);
  if (!file) return;
  const context = canvas.getContext("2d");
  let image;
  try {
    image = await loadImage(file);
  } catch (error) {
    if (drawings.get(canvas) !== drawing) return;
    canvas.width = 300;
    canvas.height = 60;
    context.clearRect(0, 0, canvas.width, canvas.height);
    context.fillStyle = "#555";
    context.font = "14px sans-serif";
    context.fillText("(no preview: " + file.name + ")", 8, 34);
    return;
  }
  if (drawings.get(canvas) !== drawing) return;
  const width = image.naturalWidth || image.width;
  const height = image.naturalHeight || image.height;
  const scale = Math.min(1, 400 / Math.max(width, height));
  canvas.width = Math.max(1, Math.round(width * scale));
  canvas.height = Math.max(1, Math.round(height * scale));
  context.drawImage(image, 0, 0, canvas.width, canvas.height);
  if (!face) return;
  const sx = canvas.width / face.image_size.width;
  const sy = canvas.height / face.image_size.height;
  const [x1, y1, x2, y2] = face.box;
  context.lineWidth = Math.max(2, canvas.width / 150);
  context.strokeStyle = "#00e676";
  context.strokeRect(x1 * sx, y1 * sy, (x2 - x1) * sx, (y2 - y1) * sy);
  context.fillStyle = "#ff1744";
  for (const name of LANDMARKS) {
    const point = face.landmarks[name];
    if (!point) continue;
    context.beginPath();
    context.arc(point[0] * sx, point[1] * sy, Math.max(2.5, canvas.width / 100), 0, 2 * Math.PI);
    context.fill();
  }
}

// The face as a small square picture, cut in the browser from the photo with the box the API found.
async function cropFace(file, face) {
  const image = await loadImage(file);
  const scale = (image.naturalWidth || image.width) / face.image_size.width;
  const [x1, y1, x2, y2] = face.box.map((v) => v * scale);
  const side = Math.max(x2 - x1, y2 - y1) * 1.2;
  const canvas = document.createElement("canvas");
  canvas.width = CROP_PX;
  canvas.height = CROP_PX;
  canvas.getContext("2d").drawImage(image, (x1 + x2 - side) / 2, (y1 + y2 - side) / 2, side, side,
    0, 0, CROP_PX, CROP_PX);
  return canvas.toDataURL("image/jpeg", 0.9);
}

// ``onChange`` runs when a photo is chosen, and draws it.
function setUpPhoto(inputId, onChange) {
  const input = $(inputId);
  const zone = input.closest(".drop");
  const chosen = (file) => {
    state.files[inputId] = file;
    onChange();
  };
  input.addEventListener("change", () => {
    if (input.files.length) chosen(input.files[0]);
  });
  zone.addEventListener("dragover", (event) => {
    event.preventDefault();
    zone.classList.add("over");
  });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("over");
    if (event.dataTransfer && event.dataTransfer.files.length) chosen(event.dataTransfer.files[0]);
  });
}

function busy(button, on, label) {
  button.disabled = on;
  if (on) {
    button.dataset.label = button.textContent;
    button.textContent = label;
  } else if (button.dataset.label) {
    button.textContent = button.dataset.label;
  }
}

// -- verify ---------------------------------------------------------------------------------------------

// The photos without the previous comparison: its answer, and its face boxes and crops.
function clearVerify() {
  $("verify-result").replaceChildren();
  $("verify-error").textContent = "";
  for (const n of [1, 2]) {
    drawPhoto($("canvas" + n), state.files["image" + n], null);
    $("crop" + n).closest("figure").hidden = true;
  }
}

function setUpVerify() {
  setUpPhoto("image1", clearVerify);
  setUpPhoto("image2", clearVerify);
  $("verify-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    clearVerify();
    const first = state.files.image1;
    const second = state.files.image2;
    if (!first || !second) {
      $("verify-error").textContent = "Choose two photos first.";
      return;
    }
    const form = new FormData();
    form.append("image1", first, first.name);
    form.append("image2", second, second.name);
    form.append("include_crop", "true");
    const button = $("verify-button");
    busy(button, true, "Comparing…");
    try {
      const answer = await api("POST", "/v1/verify", form);
      showVerify(answer);
    } catch (error) {
      const photo = photoOf(error, { image1: "First photo", image2: "Second photo" });
      $("verify-error").textContent = describe(error, photo);
    } finally {
      busy(button, false);
    }
  });
}

const QUALITY_HINT = "A face's quality (0 to 1) is the lowest of its size, sharpness, pose and exposure scores; " +
  "the lower it is, the less a comparison with it can be trusted.";

function numbers(rows) {
  const list = el("dl", null, "numbers");
  for (const [name, value] of rows) {
    list.append(el("dt", name), el("dd", value));
  }
  return list;
}

function showVerify(answer) {
  const result = $("verify-result");
  const verdict = el("p", answer.verified ? "Same person" : "Different people",
    "verdict " + (answer.verified ? "same" : "different"));
  verdict.id = "verdict";
  const rows = [["Score", fmt(answer.score)], ["Threshold", fmt(answer.threshold)]];
  if (typeof answer.probability === "number") {
    rows.push(["Probability of the same person", percent(answer.probability)]);
  }
  rows.push(["Quality of the first photo", quality(answer.faces[0])]);
  rows.push(["Quality of the second photo", quality(answer.faces[1])]);
  rows.push(["Model", answer.model.name + " " + answer.model.version]);
  result.replaceChildren(verdict, numbers(rows),
    el("p", "The score is the cosine similarity of the two faces (−1 to 1); the same person when it is at least the threshold.", "hint"),
    el("p", QUALITY_HINT, "hint"));
  answer.faces.forEach((face, index) => {
    const n = index + 1;
    drawPhoto($("canvas" + n), state.files["image" + n], face);
    if (face.crop_png) {
      $("crop" + n).src = "data:image/png;base64," + face.crop_png;
      $("crop" + n).closest("figure").hidden = false;
    }
    if (face.faces_found > 1) {
      result.append(el("p", "Photo " + n + ": " + face.faces_found + " faces were found; the largest was used.", "warning"));
    }
  });
}

// -- identities -----------------------------------------------------------------------------------------

async function loadIdentities() {
  if (state.scope !== "admin") return;
  $("identities-error").textContent = "";
  const query = new URLSearchParams({ offset: String(state.offset), limit: String(PAGE_SIZE) });
  if (state.name) query.set("name", state.name);
  try {
    const page = await api("GET", "/v1/identities?" + query);
    state.total = page.total;
    const rows = page.items.map((identity) => {
      const row = el("tr");
      const open = el("button", "Open", "link");
      open.type = "button";
      open.setAttribute("aria-label", "Open " + identity.name);
      open.addEventListener("click", () => openIdentity(identity.id));
      const cell = el("td");
      cell.append(open);
      row.append(el("td", identity.name, "name"), el("td", String(identity.face_count)), cell);
      return row;
    });
    if (!rows.length) {
      const row = el("tr");
      const cell = el("td", state.name ? "No identity's name contains “" + state.name + "”." : "No identities yet.");
      cell.colSpan = 3;
      row.append(cell);
      rows.push(row);
    }
    $("identity-rows").replaceChildren(...rows);
    const last = Math.min(state.offset + page.items.length, page.total);
    $("page-info").textContent = page.total
      ? (state.offset + 1) + "–" + last + " of " + page.total
      : "0 of 0";
    $("prev-page").disabled = state.offset === 0;
    $("next-page").disabled = state.offset + PAGE_SIZE >= page.total;
  } catch (error) {
    $("identities-error").textContent = describe(error);
  }
}

async function openIdentity(id, keepResults) {
  try {
    const identity = await api("GET", "/v1/identities/" + id);
    state.identity = identity;
    $("detail").hidden = false;
    $("detail-title").textContent = identity.name + (identity.external_id ? " (" + identity.external_id + ")" : "");
    if (!keepResults) $("enroll-results").replaceChildren();
    const faces = identity.faces.map((face) => {
      const item = el("li", null, "face");
      const crop = state.crops.get(face.id);
      if (crop) {
        const picture = el("img");
        picture.src = crop;
        picture.alt = "Face " + face.id + ", cut from the photo enrolled from this page";
        item.append(picture);
      }
      item.append(faceSummary(face));
      const remove = el("button", "Delete face " + face.id, "link");
      remove.type = "button";
      remove.addEventListener("click", async () => {
        try {
          await api("DELETE", "/v1/identities/" + identity.id + "/faces/" + face.id);
          state.crops.delete(face.id);
          await openIdentity(identity.id, true);
          loadIdentities();
        } catch (error) {
          $("identities-error").textContent = describe(error);
        }
      });
      item.append(remove);
      return item;
    });
    if (!faces.length) faces.push(el("li", "No faces enrolled yet."));
    $("face-list").replaceChildren(...faces);
    if (!keepResults) $("detail-title").focus();
  } catch (error) {
    $("identities-error").textContent = describe(error);
  }
}

// "Face 3 · quality 0.97 · enrolled 2026-12-04 21:05", breaking only between its parts.
function faceSummary(face) {
  const parts = ["Face " + face.id,
    "quality " + (typeof face.quality === "number" ? fmt(face.quality, 2) : "not recorded"),
    "enrolled " + when(face.created_at)];
  const model = state.info && state.info.model;
  if (model && (face.model.name !== model.name || face.model.version !== model.version)) {
    parts.push("made by model " + face.model.name + " " + face.model.version + ", not compared: enroll again");
  }
  const summary = el("span", null, "summary");
  parts.forEach((part, index) => {
    if (index) summary.append(" · ");
    summary.append(el("span", part, "part"));
  });
  return summary;
}

// Each enrolled face's picture, cut from its photo: files[result.index] (the order the request sent).
async function keepCrops(results, files) {
  for (const result of results) {
    if (!result.accepted || !result.face) continue;
    try {
      state.crops.set(result.face_id, await cropFace(files[result.index], result.face));
    } catch (error) {
      // No picture for a photo the browser cannot show (e.g. TIFF): the face is listed all the same.
    }
  }
}

function setUpIdentities() {
  $("search-form").addEventListener("submit", (event) => {
    event.preventDefault();
    state.name = $("search-name").value.trim();
    state.offset = 0;
    loadIdentities();
  });
  $("prev-page").addEventListener("click", () => {
    state.offset = Math.max(0, state.offset - PAGE_SIZE);
    loadIdentities();
  });
  $("next-page").addEventListener("click", () => {
    state.offset += PAGE_SIZE;
    loadIdentities();
  });
  $("create-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    $("identities-error").textContent = "";
    const body = { name: $("new-name").value.trim() };
    const externalId = $("new-external-id").value.trim();
    if (externalId) body.external_id = externalId;
    try {
      const identity = await api("POST", "/v1/identities", body);
      $("new-name").value = "";
      $("new-external-id").value = "";
      await loadIdentities();
      await openIdentity(identity.id);
    } catch (error) {
      $("identities-error").textContent = describe(error);
    }
  });
  $("enroll-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const files = Array.from($("enroll-images").files);
    if (!state.identity || !files.length) {
      $("identities-error").textContent = "Choose one or more photos to enroll.";
      return;
    }
    const form = new FormData();
    for (const file of files) form.append("images", file, file.name);
    const button = $("enroll-button");
    busy(button, true, "Enrolling…");
    try {
      const answer = await api("POST", "/v1/identities/" + state.identity.id + "/faces", form);
      const items = answer.results.map((result) => {
        const name = result.filename || "photo " + (result.index + 1);
        return result.accepted
          ? el("li", name + ": accepted (face " + result.face_id + ", quality " + quality(result.face) + ")", "accepted")
          : el("li", name + ": rejected — " + problem(result.error), "rejected");
      });
      await keepCrops(answer.results, files);
      items.unshift(el("li", answer.enrolled + " enrolled, " + answer.rejected + " rejected."));
      $("enroll-results").replaceChildren(...items);
      $("enroll-images").value = "";
      await openIdentity(state.identity.id, true);
      loadIdentities();
    } catch (error) {
      $("identities-error").textContent = describe(error);
    } finally {
      busy(button, false);
    }
  });
  $("delete-identity").addEventListener("click", async () => {
    const identity = state.identity;
    if (!identity) return;
    if (!window.confirm("Delete " + identity.name + " and all " + identity.faces.length + " of its faces? This cannot be undone.")) return;
    try {
      await api("DELETE", "/v1/identities/" + identity.id);
      for (const face of identity.faces) state.crops.delete(face.id);
      state.identity = null;
      $("detail").hidden = true;
      await loadIdentities();
      $("identities-error").textContent = "";
      $("search-name").focus();
    } catch (error) {
      $("identities-error").textContent = describe(error);
    }
  });
}

// -- identify -------------------------------------------------------------------------------------------

function setUpIdentify() {
  // The photo without the previous search: its answer and its face box.
  const clear = () => {
    $("identify-result").replaceChildren();
    $("identify-error").textContent = "";
    drawPhoto($("canvas3"), state.files.probe, null);
  };
  setUpPhoto("probe", clear);
  $("identify-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    clear();
    const file = state.files.probe;
    if (!file) {
      $("identify-error").textContent = "Choose a photo first.";
      return;
    }
    const form = new FormData();
    form.append("image", file, file.name);
    form.append("top_k", "5");
    form.append("include_below_threshold", "true");
    const button = $("identify-button");
    busy(button, true, "Searching…");
    try {
      const answer = await api("POST", "/v1/identify", form);
      drawPhoto($("canvas3"), file, answer.face);
      showIdentify(answer);
    } catch (error) {
      $("identify-error").textContent = describe(error, "The photo");
    } finally {
      busy(button, false);
    }
  });
}

function showIdentify(answer) {
  const result = $("identify-result");
  const best = answer.matches.find((match) => match.above_threshold);
  const closest = answer.matches.length ? "; the closest is " + answer.matches[0].identity.name : "";
  const headline = el("p", best ? "Best match: " + best.identity.name : "No match above the threshold" + closest,
    "verdict " + (best ? "same" : "different"));
  // On a phone's screen (app.css) each match is a card of "label value" lines, from the cells' data-label;
  // the explicit roles keep it a table for screen readers when CSS displays its parts as blocks.
  const table = el("table", null, "cards");
  table.id = "matches";
  table.setAttribute("role", "table");
  table.append(el("caption", "Top matches (threshold " + fmt(answer.threshold) + ", " + answer.gallery_size + " faces searched)"));
  const head = el("tr", null, "head");
  head.setAttribute("role", "row");
  const columns = ["Rank", "Name", "Score", "Match"];
  if (answer.matches.some((match) => typeof match.probability === "number")) columns.splice(3, 0, "Probability");
  for (const name of columns) {
    const th = el("th", name);
    th.scope = "col";
    th.setAttribute("role", "columnheader");
    head.append(th);
  }
  table.append(head);
  answer.matches.forEach((match, index) => {
    const values = [String(index + 1), match.identity.name, fmt(match.score)];
    if (columns.includes("Probability")) values.push(percent(match.probability));
    values.push(match.above_threshold ? "yes" : "no");
    const row = el("tr");
    row.setAttribute("role", "row");
    values.forEach((value, column) => {
      const cell = el("td", value, columns[column] === "Name" ? "name" : "value");
      cell.dataset.label = columns[column];
      cell.setAttribute("role", "cell");
      row.append(cell);
    });
    table.append(row);
  });
  result.replaceChildren(headline, numbers([["Quality of the photo", quality(answer.face)]]));
  if (answer.matches.length) result.append(table);
  else result.append(el("p", "The gallery is empty: enroll faces under Identities first."));
}

document.addEventListener("DOMContentLoaded", () => {
  setUpTabs();
  setUpKey();
  setUpVerify();
  setUpIdentities();
  setUpIdentify();
  applyScope();
  loadInfo();
});
