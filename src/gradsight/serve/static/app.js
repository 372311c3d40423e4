// gradsight viewer: plain JavaScript, no build step. Talks to the JSON API of gradsight serve.
"use strict";

const $ = (sel) => document.querySelector(sel);
const state = {
  model: null, ref: null, name: "image", target: null, method: "gradcam", layer: "auto",
  cmap: "jet", opacity: 0.5, result: null, base: null, layerImg: null, heat: null, token: 0, runToken: 0,
  compare: new Set(), run: null, runItem: null,
};

async function api(path, options) {
  const response = await fetch(path, options);
  let body = null;
  try { body = await response.json(); } catch (e) { body = null; }
  if (!response.ok) {
    const err = body && body.error ? `${body.error.type}: ${body.error.message}` : `HTTP ${response.status}`;
    throw new Error(err);
  }
  return body;
}

function showError(message) {
  const box = $("#error");
  box.textContent = message || "";
  box.hidden = !message;
}

function loadImage(src) {
  return new Promise((resolve, reject) => {
    const img = new Image();
    img.onload = () => resolve(img);
    img.onerror = () => reject(new Error(`cannot load ${src.slice(0, 60)}`));
    img.src = src;
  });
}

const png = (b64) => `data:image/png;base64,${b64}`;
const el = (tag, props, children) => {
  const node = Object.assign(document.createElement(tag), props || {});
  (children || []).forEach((c) => node.append(c));
  return node;
};

// ------------------------------------------------------------------ model and sources

async function init() {
  try {
    const model = state.model = await api("/api/model");
    $("#model-name").textContent = `${model.description} · ${model.framework} · input ${model.input_size.join("×")}`;
    const method = $("#method");
    model.methods.forEach((m) => method.append(el("option", { value: m.name, textContent: m.name })));
    method.value = model.methods.some((m) => m.name === "gradcam") ? "gradcam" : model.methods[0].name;
    state.method = method.value;
    fillLayers();
    fillOptions();
    model.methods.forEach((m) => {
      const box = el("input", { type: "checkbox", value: m.name });
      box.addEventListener("change", () => {
        if (box.checked) state.compare.add(m.name); else state.compare.delete(m.name);
        renderCompare();
      });
      $("#compare-pick").append(el("label", {}, [box, ` ${m.name}`]));
    });
    bindControls();
    const images = (await api("/api/images")).images;
    images.forEach((im) => {
      const button = el("button", { title: im.name, className: "thumb" }, [el("img", { src: im.url, alt: im.name })]);
      button.dataset.ref = im.ref;
      button.addEventListener("click", () => choose(im.ref, im.name));
      $("#thumbs").append(button);
    });
    if (model.sources.run) await initRun();
    if (images.length) await choose(images[0].ref, images[0].name);
  } catch (e) {
    showError(e.message);
  }
}

function fillLayers() {
  const select = $("#layer");
  const spec = state.model.methods.find((m) => m.name === state.method);
  select.innerHTML = "";
  const auto = state.model.auto_layer;
  select.append(el("option", { value: "auto", textContent: `auto${auto ? ` (${auto})` : ""}` }));
  // A module called several times is one entry; Grad-CAM uses its last call, so show that call's shape.
  const last = new Map();
  state.model.layers.filter((l) => l.spatial).forEach((l) => { last.delete(l.name); last.set(l.name, l); });
  const seen = new Set(last.keys());
  [...last.values()].forEach((l) => {
    const mark = l.name === auto ? " ← auto" : "";
    select.append(el("option", { value: l.name, textContent: `${l.name} ${JSON.stringify(l.shape)}${mark}` }));
  });
  select.disabled = !spec.uses_layer;
  select.value = spec.uses_layer && seen.has(state.layer) ? state.layer : "auto";
}

// The method's own options (from /api/model): numbers and words get an input; empty means the default.
function fillOptions() {
  const box = $("#options");
  box.innerHTML = "";
  const spec = state.model.methods.find((m) => m.name === state.method);
  Object.entries(spec.options).forEach(([name, value]) => {
    if (typeof value === "boolean") return;
    const numeric = typeof value === "number";
    const input = el("input", { type: numeric ? "number" : "text", placeholder: value === null ? "default" : String(value) });
    input.dataset.option = name;
    input.dataset.numeric = numeric ? "1" : "";
    if (numeric) input.step = Number.isInteger(value) ? "1" : "any";
    input.dataset.method = spec.name;
    // (a focused input removed when the method changes fires one last change: ignore it)
    input.addEventListener("change", () => { if (input.isConnected && state.method === spec.name) { explain(); renderCompare(); } });
    box.append(el("label", {}, [`${name} `, input]));
  });
}

function methodOptions(method) {
  if (method !== state.method) return {};
  const out = {};
  document.querySelectorAll("#options input").forEach((input) => {
    if (input.value === "" || input.dataset.method !== method) return;
    const text = input.value.trim();
    out[input.dataset.option] = input.dataset.numeric || /^-?\d+(\.\d+)?$/.test(text) ? Number(text) : text;
  });
  return out;
}

function bindControls() {
  $("#method").addEventListener("change", (e) => { state.method = e.target.value; fillLayers(); fillOptions(); explain(); });
  $("#layer").addEventListener("change", (e) => { state.layer = e.target.value; explain(); renderCompare(); });
  $("#cmap").addEventListener("change", (e) => { state.cmap = e.target.value; explain(); renderCompare(); });
  $("#opacity").addEventListener("input", (e) => {
    state.opacity = Number(e.target.value);
    $("#opacity-value").textContent = state.opacity.toFixed(2);
    draw();
    renderCompare(true);
  });
  $("#download").addEventListener("click", download);
  const view = $("#view");
  view.addEventListener("mousemove", pointer);
  view.addEventListener("mouseleave", () => { $("#value").textContent = "move the pointer over the picture"; });
  $("#file").addEventListener("change", (e) => { if (e.target.files.length) upload(e.target.files[0]); });
  const drop = $("#drop");
  ["dragenter", "dragover"].forEach((t) => drop.addEventListener(t, (e) => { e.preventDefault(); drop.classList.add("over"); }));
  ["dragleave", "drop"].forEach((t) => drop.addEventListener(t, (e) => { e.preventDefault(); drop.classList.remove("over"); }));
  drop.addEventListener("drop", (e) => { if (e.dataTransfer.files.length) upload(e.dataTransfer.files[0]); });
  document.querySelectorAll(".tab").forEach((tab) => tab.addEventListener("click", () => showView(tab.dataset.view)));
}

function showView(name) {
  document.querySelectorAll(".tab").forEach((t) => t.classList.toggle("active", t.dataset.view === name));
  $("#view-explain").hidden = name !== "explain";
  $("#view-run").hidden = name !== "run";
}

async function upload(file) {
  showError("");
  const form = new FormData();
  form.append("image", file, file.name);
  try {
    const info = await api("/api/images", { method: "POST", body: form });
    await choose(info.ref, file.name.replace(/\.[^.]*$/, ""));
  } catch (e) {
    showError(e.message);
  }
}

async function choose(ref, name) {
  state.ref = ref;
  state.name = (name || "image").replace(/[^\w.-]+/g, "_");
  state.target = null;
  document.querySelectorAll(".thumbs button").forEach((b) => b.classList.toggle("active", b.dataset.ref === ref));
  try {
    state.base = await loadImage(`/api/images/${ref}`);
  } catch (e) {
    showError(e.message);
    return;
  }
  await explain();
  renderCompare();
}

// ------------------------------------------------------------------ explain and draw

function request(method) {
  return {
    image_ref: state.ref, method, target: state.target, cmap: state.cmap, alpha: state.opacity,
    layer: state.layer, attributions: method === state.method, options: methodOptions(method),
  };
}

async function explain() {
  if (!state.ref) return;
  const token = ++state.token;
  showError("");
  document.body.dataset.busy = "1";
  try {
    const result = await api("/api/explain", {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(request(state.method)),
    });
    const [layerImg, heatImg] = await Promise.all([loadImage(png(result.layer_png)), loadImage(png(result.heatmap_png))]);
    if (token !== state.token) return; // a newer request is on its way
    state.result = result;
    state.layerImg = layerImg;
    const c = el("canvas", { width: heatImg.width, height: heatImg.height });
    const ctx = c.getContext("2d");
    ctx.drawImage(heatImg, 0, 0);
    state.heat = ctx.getImageData(0, 0, c.width, c.height).data;
    draw();
    showPredictions(result);
    $("#download").disabled = false;
    document.body.dataset.renders = String(Number(document.body.dataset.renders || 0) + 1);
  } catch (e) {
    if (token === state.token) showError(e.message);
  } finally {
    if (token === state.token) document.body.dataset.busy = "";
  }
}

function compose(canvas, base, layerImg, blend) {
  canvas.width = base.naturalWidth || base.width;
  canvas.height = base.naturalHeight || base.height;
  const ctx = canvas.getContext("2d");
  ctx.globalAlpha = 1;
  ctx.drawImage(base, 0, 0, canvas.width, canvas.height);
  // "heat": the layer's own alpha is the heat map (sparse maps), the weight is min(1, 2 * opacity) as in gradsight's pictures.
  ctx.globalAlpha = blend === "heat" ? Math.min(1, 2 * state.opacity) : state.opacity;
  ctx.drawImage(layerImg, 0, 0, canvas.width, canvas.height);
  ctx.globalAlpha = 1;
}

function draw() {
  if (!state.result || !state.base) return;
  compose($("#view"), state.base, state.layerImg, state.result.blend);
}

function showPredictions(result) {
  const list = $("#preds");
  list.innerHTML = "";
  result.predictions.forEach((p) => {
    const button = el("button", { textContent: `${p.name}  ${(100 * p.prob).toFixed(1)} %` });
    button.dataset.cls = p.class;
    button.classList.toggle("active", p.class === result.explained.class);
    button.append(el("span", { className: "bar", style: `width:${(100 * p.prob).toFixed(1)}%` }));
    button.addEventListener("click", () => { state.target = p.class; explain(); renderCompare(); });
    list.append(el("li", {}, [button]));
  });
  const e = result.explained;
  $("#explained").textContent = `${result.method}${result.layer ? ` at ${result.layer}` : ""}: class ${e.class} (${e.name}), ` +
    `score ${e.score.toFixed(3)}, probability ${(100 * e.prob).toFixed(1)} %`;
  $("#timing").textContent = `${result.cached ? "cached" : `computed in ${result.compute_ms} ms`}; answered in ${result.elapsed_ms} ms`;
  const warnings = $("#warnings");
  warnings.innerHTML = "";
  result.warnings.forEach((w) => warnings.append(el("li", { textContent: w })));
}

function attributionAt(a, fx, fy) {
  const s = a.shape;
  if (s.length === 2) return { v: a.values[Math.floor(fy * s[0])][Math.floor(fx * s[1])], how: "" };
  if (a.layout === "channels_first") {
    const y = Math.floor(fy * s[1]), x = Math.floor(fx * s[2]);
    return { v: a.values.reduce((t, ch) => t + ch[y][x], 0), how: " (sum over channels)" };
  }
  const y = Math.floor(fy * s[0]), x = Math.floor(fx * s[1]);
  return { v: a.values[y][x].reduce((t, v) => t + v, 0), how: " (sum over channels)" };
}

function pointer(event) {
  const r = state.result;
  if (!r || !state.heat) return;
  const canvas = $("#view");
  const box = canvas.getBoundingClientRect();
  const fx = Math.min(0.9999, Math.max(0, (event.clientX - box.left) / box.width));
  const fy = Math.min(0.9999, Math.max(0, (event.clientY - box.top) / box.height));
  const x = Math.floor(fx * r.image.width), y = Math.floor(fy * r.image.height);
  const px = Math.floor(fx * r.picture.width), py = Math.floor(fy * r.picture.height); // the heat map's pixel
  const heat = state.heat[(py * r.picture.width + px) * 4] / 255;
  let text = `(${x}, ${y}): heat ${heat.toFixed(3)}`;
  if (r.attributions) {
    const a = attributionAt(r.attributions, fx, fy);
    text += ` · attribution ${a.v.toExponential(3)}${a.how}`;
  }
  $("#value").textContent = text;
}

function download() {
  const link = el("a", { download: `${state.name}_${state.method}.png`, href: $("#view").toDataURL("image/png") });
  document.body.append(link);
  link.click();
  link.remove();
}

async function renderCompare(redrawOnly) {
  const box = $("#compare");
  if (redrawOnly) {
    box.querySelectorAll("canvas").forEach((c) => { if (c._layer) compose(c, state.base, c._layer, c._blend); });
    return;
  }
  box.innerHTML = "";
  if (!state.ref || !state.compare.size) return;
  const ref = state.ref;
  const methods = state.model.methods.map((m) => m.name).filter((m) => state.compare.has(m));
  await Promise.all(methods.map(async (method) => {
    const canvas = el("canvas", { width: 64, height: 64 });
    canvas.dataset.method = method;
    const caption = el("figcaption", { textContent: method });
    box.append(el("figure", {}, [canvas, caption]));
    try {
      const r = await api("/api/explain", {
        method: "POST", headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ ...request(method), attributions: false }),
      });
      if (ref !== state.ref) return;
      canvas._layer = await loadImage(png(r.layer_png));
      canvas._blend = r.blend;
      compose(canvas, state.base, canvas._layer, r.blend);
      caption.textContent = `${method}${r.layer ? ` @ ${r.layer}` : ""} · ${r.explained.name}`;
    } catch (e) {
      caption.textContent = `${method}: ${e.message}`;
    }
  }));
  box.dataset.ready = String(Number(box.dataset.ready || 0) + 1);
}

// ------------------------------------------------------------------ run browser

async function initRun() {
  const run = state.run = await api("/api/run");
  $("#tab-run").hidden = false;
  const classes = run.classes || state.model.classes;
  const acc = run.accuracy === null ? "" : `, accuracy ${(100 * run.accuracy).toFixed(1)} %`;
  $("#run-summary").textContent = `${run.images} images × ${run.methods.length} methods (${run.methods.join(", ")})` +
    `${acc}; model ${run.meta.model}`;
  ["#run-cls", "#run-label", "#run-pred"].forEach((sel) => {
    const select = $(sel);
    select.append(el("option", { value: "", textContent: "any" }));
    classes.forEach((name, k) => select.append(el("option", { value: String(k), textContent: `${k} ${name}` })));
    select.addEventListener("change", runQuery);
  });
  run.methods.forEach((m) => $("#run-method").append(el("option", { value: m, textContent: m })));
  ["#run-correct", "#run-min", "#run-max", "#run-sort", "#run-order", "#run-method"].forEach(
    (sel) => $(sel).addEventListener("change", runQuery));
  await runQuery();
  if (run.has_embedding) await drawEmbedding();
}

async function runQuery() {
  const params = new URLSearchParams();
  const pairs = { cls: "#run-cls", label: "#run-label", predicted: "#run-pred", correct: "#run-correct" };
  Object.entries(pairs).forEach(([k, sel]) => { if ($(sel).value !== "") params.set(k, $(sel).value); });
  if (Number($("#run-min").value) > 0) params.set("min_conf", $("#run-min").value);
  if (Number($("#run-max").value) < 1) params.set("max_conf", $("#run-max").value);
  params.set("sort", $("#run-sort").value);
  params.set("order", $("#run-order").value);
  params.set("limit", "200");
  const token = ++state.runToken;
  try {
    const res = await api(`/api/run/images?${params}`);
    if (token !== state.runToken) return; // a newer query (another filter changed meanwhile) draws instead
    $("#run-count").textContent = `${res.total} images match${res.total > res.items.length ? ` (first ${res.items.length} shown)` : ""}`;
    const grid = $("#run-grid");
    grid.innerHTML = "";
    const method = $("#run-method").value;
    res.items.forEach((it) => {
      const conf = it.confidence === null ? "" : ` ${(100 * it.confidence).toFixed(0)}%`;
      const button = el("button", { className: it.correct === false ? "wrong" : "" }, [
        el("img", { src: `/api/run/images/${it.image_id}/${method}.png?cmap=${state.cmap}`, alt: `image ${it.image_id}`, loading: "lazy" }),
        `#${it.image_id} ${it.predicted_name || it.predicted}${conf}`,
      ]);
      button.dataset.id = it.image_id;
      button.addEventListener("click", () => openRunItem(it.image_id));
      grid.append(button);
    });
  } catch (e) {
    if (token === state.runToken) showError(e.message);
  }
}

async function openRunItem(id) {
  try {
    const it = state.runItem = await api(`/api/run/images/${id}`);
    const box = $("#run-detail");
    box.hidden = false;
    box.innerHTML = "";
    const truth = it.label === null ? "unlabelled" : `true ${it.label_name || it.label}`;
    box.append(el("h2", { textContent: `image ${id}: ${truth}, predicted ${it.predicted_name || it.predicted}` }));
    box.append(el("p", { className: "muted", textContent: it.path || "" }));
    const maps = el("div", { className: "maps" });
    maps.append(el("figure", {}, [el("img", { src: `/api/run/images/${id}/source.png`, alt: "image" }), el("figcaption", { textContent: "image" })]));
    Object.entries(it.methods).forEach(([m, row]) => {
      const fig = row.status === "ok"
        ? el("img", { src: `/api/run/images/${id}/${m}.png?cmap=${state.cmap}`, alt: m })
        : el("span", { textContent: `failed: ${row.error}` });
      maps.append(el("figure", {}, [fig, el("figcaption", { textContent: m })]));
    });
    box.append(maps);
    const live = el("button", { textContent: "Explain live" });
    live.addEventListener("click", () => { showView("explain"); choose(`run/${id}`, `run_${id}`); });
    box.append(live);
  } catch (e) {
    showError(e.message);
  }
}

async function drawEmbedding() {
  const points = (await api("/api/run/embedding")).points;
  if (!points.length) return;
  $("#embedding-box").hidden = false;
  const svg = $("#embedding");
  const xs = points.map((p) => p.x), ys = points.map((p) => p.y);
  const [x0, x1, y0, y1] = [Math.min(...xs), Math.max(...xs), Math.min(...ys), Math.max(...ys)];
  const sx = (v) => 10 + 300 * (x1 > x0 ? (v - x0) / (x1 - x0) : 0.5);
  const sy = (v) => 310 - 300 * (y1 > y0 ? (v - y0) / (y1 - y0) : 0.5);
  const ns = "http://www.w3.org/2000/svg";
  const n = Math.max(1, (state.run.classes || state.model.classes).length);
  points.forEach((p) => {
    const c = document.createElementNS(ns, "circle");
    c.setAttribute("cx", sx(p.x).toFixed(1));
    c.setAttribute("cy", sy(p.y).toFixed(1));
    c.setAttribute("r", "4");
    c.setAttribute("fill", `hsl(${(360 * (p.label ?? p.predicted ?? 0)) / n}, 65%, 50%)`);
    c.setAttribute("stroke", p.correct === false ? "#c2362b" : "none");
    c.setAttribute("stroke-width", "2");
    c.dataset.id = p.image_id;
    const title = document.createElementNS(ns, "title");
    title.textContent = `image ${p.image_id}`;
    c.append(title);
    c.addEventListener("click", () => openRunItem(p.image_id));
    svg.append(c);
  });
}

document.addEventListener("DOMContentLoaded", init);
