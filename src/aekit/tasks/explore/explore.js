// aekit explore: the page's logic. Talks to /api/info, /api/decode and /api/interpolate.
"use strict";

const PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
                 "#bcbd22", "#17becf"];
const $ = (id) => document.getElementById(id);
const S = { info: null, bounds: null, z: null, marker: null, picks: [], nextPick: 0, line: null,
            inflight: false, pending: null, dragging: false, decodes: 0 };
window.explore = S;  // for tests and curious users

function setStatus(text, isError) {
  const el = $("status");
  el.textContent = text;
  el.className = isError ? "error" : "";
}

async function api(path, body) {
  const opts = body === undefined ? {} : { method: "POST", headers: { "Content-Type": "application/json" },
                                           body: JSON.stringify(body) };
  const res = await fetch(path, opts);
  const data = await res.json();
  if (!res.ok) throw new Error(`${res.status}: ${data.error || res.statusText}`);
  return data;
}

// ---------------------------------------------------------------- map geometry
function computeBounds(points) {
  let [x0, x1, y0, y1] = [Infinity, -Infinity, Infinity, -Infinity];
  for (const [x, y] of points) { x0 = Math.min(x0, x); x1 = Math.max(x1, x); y0 = Math.min(y0, y); y1 = Math.max(y1, y); }
  const px = Math.max((x1 - x0) * 0.08, 1e-3), py = Math.max((y1 - y0) * 0.08, 1e-3);
  if (y1 - y0 < 1e-9) { y0 = -1; y1 = 1; }  // a 1-D code: everything on y = 0
  return { x0: x0 - px, x1: x1 + px, y0: y0 - py, y1: y1 + py };
}
function toCanvas([x, y]) {
  const c = $("map"), b = S.bounds;
  return [(x - b.x0) / (b.x1 - b.x0) * c.width, (1 - (y - b.y0) / (b.y1 - b.y0)) * c.height];
}
function toMap(px, py) {
  const c = $("map"), b = S.bounds;
  return [b.x0 + px / c.width * (b.x1 - b.x0), b.y0 + (1 - py / c.height) * (b.y1 - b.y0)];
}
function eventPixel(ev) {
  const c = $("map"), r = c.getBoundingClientRect();
  return [(ev.clientX - r.left) * c.width / r.width, (ev.clientY - r.top) * c.height / r.height];
}

function drawMap() {
  const c = $("map"), g = c.getContext("2d"), info = S.info;
  g.clearRect(0, 0, c.width, c.height);
  g.globalAlpha = 0.7;
  info.points.forEach((p, i) => {
    const [x, y] = toCanvas(p);
    const label = info.labels ? info.labels[i] : null;
    g.fillStyle = label === null ? "#555" : PALETTE[((label % 10) + 10) % 10];
    g.beginPath(); g.arc(x, y, 2.2, 0, 2 * Math.PI); g.fill();
  });
  g.globalAlpha = 1;
  if (S.line) {
    g.strokeStyle = "#000"; g.lineWidth = 1.5; g.setLineDash([4, 3]);
    g.beginPath(); S.line.forEach((p, i) => { const [x, y] = toCanvas(p); i ? g.lineTo(x, y) : g.moveTo(x, y); }); g.stroke();
    g.setLineDash([]);
  }
  S.picks.forEach((idx, k) => {
    if (idx === undefined) return;
    const [x, y] = toCanvas(info.points[idx]);
    g.strokeStyle = "#000"; g.lineWidth = 2; g.beginPath(); g.arc(x, y, 6, 0, 2 * Math.PI); g.stroke();
    g.fillStyle = "#000"; g.font = "bold 12px sans-serif"; g.fillText(k ? "B" : "A", x + 7, y - 7);
  });
  if (S.marker) {
    const [x, y] = toCanvas(S.marker);
    g.strokeStyle = "#d00"; g.lineWidth = 2;
    g.beginPath(); g.moveTo(x - 7, y); g.lineTo(x + 7, y); g.moveTo(x, y - 7); g.lineTo(x, y + 7); g.stroke();
  }
}

// ---------------------------------------------------------------- images
function floats(image) {  // base64 little-endian float32 -> Float32Array
  const bin = atob(image.data), bytes = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
  return new Float32Array(bytes.buffer);
}

function drawImage(canvas, image) {
  const g = canvas.getContext("2d"), shape = image.shape, vals = floats(image);
  const [lo, hi] = S.info.value_range, span = hi - lo || 1;
  g.clearRect(0, 0, canvas.width, canvas.height);
  if (shape.length === 3) {  // (C, H, W): grey for one channel, RGB for three
    const [ch, h, w] = shape, off = document.createElement("canvas");
    off.width = w; off.height = h;
    const og = off.getContext("2d"), data = og.createImageData(w, h);
    for (let i = 0; i < h * w; i++) {
      for (let k = 0; k < 3; k++) {
        const v = vals[(ch === 3 ? k : 0) * h * w + i];
        data.data[4 * i + k] = Math.max(0, Math.min(255, Math.round((v - lo) / span * 255)));
      }
      data.data[4 * i + 3] = 255;
    }
    og.putImageData(data, 0, 0);
    g.imageSmoothingEnabled = false;
    g.drawImage(off, 0, 0, canvas.width, canvas.height);
  } else {  // a vector: one bar per feature
    const n = vals.length, bw = canvas.width / n, zero = canvas.height * (1 - (0 - lo) / span);
    g.fillStyle = "#1f77b4";
    vals.forEach((v, i) => {
      const y = canvas.height * (1 - (v - lo) / span);
      g.fillRect(i * bw, Math.min(y, zero), Math.max(bw - 1, 1), Math.abs(zero - y) || 1);
    });
  }
}

// ---------------------------------------------------------------- decoding (one request in flight)
function requestDecode(body) {
  if (S.inflight) { S.pending = body; return; }
  S.inflight = true;
  api("/api/decode", body).then((res) => {
    S.z = res.z; S.marker = res.point; S.decodes += 1;
    drawImage($("decoded"), res.image);
    $("decoded").dataset.decodes = String(S.decodes);
    updateSliders();
    drawMap();
    setStatus(`z = [${res.z.map((v) => v.toFixed(2)).join(", ")}]`, false);
  }).catch((err) => setStatus(String(err.message || err), true)).finally(() => {
    S.inflight = false;
    if (S.pending) { const next = S.pending; S.pending = null; requestDecode(next); }
  });
}

function buildSliders() {
  const box = $("sliders"), info = S.info;
  for (let i = 0; i < info.latent_dim; i++) {
    const row = document.createElement("div"), lab = document.createElement("span");
    const input = document.createElement("input"), val = document.createElement("span");
    row.className = "slider"; lab.textContent = `z${i}`;
    input.type = "range"; input.id = `z${i}`;
    input.min = info.slider_min[i]; input.max = info.slider_max[i];
    input.step = (info.slider_max[i] - info.slider_min[i]) / 200;
    input.addEventListener("input", () => {
      const z = (S.z || S.info.center).slice(); z[i] = Number(input.value); S.z = z;
      val.textContent = z[i].toFixed(2);
      requestDecode({ z });
    });
    row.append(lab, input, val); box.append(row);
  }
}
function updateSliders() {
  S.z.forEach((v, i) => {
    const input = $(`z${i}`);
    if (document.activeElement !== input) input.value = v;
    input.nextSibling.textContent = v.toFixed(2);
  });
}

// ---------------------------------------------------------------- interpolation
function nearestSample([mx, my]) {
  let best = 0, bestD = Infinity;
  S.info.points.forEach(([x, y], i) => {
    const [cx, cy] = toCanvas([x, y]), [qx, qy] = toCanvas([mx, my]);
    const d = (cx - qx) ** 2 + (cy - qy) ** 2;
    if (d < bestD) { bestD = d; best = i; }
  });
  return best;
}
async function interpolate() {
  const a = Number($("pick-a").value), b = Number($("pick-b").value), steps = Number($("steps").value);
  try {
    const res = await api("/api/interpolate", { a, b, steps });
    S.picks = [a, b]; S.line = res.points; drawMap();
    const strip = $("strip"); strip.replaceChildren();
    const size = 64;
    const add = (image, cls) => {
      const c = document.createElement("canvas"); c.width = size; c.height = size;
      if (cls) c.className = cls;
      strip.append(c); drawImage(c, image);
    };
    add(res.originals[0], "original");
    res.images.forEach((im) => add(im));
    add(res.originals[1], "original");
    setStatus(`interpolated ${steps} steps from sample ${a} to sample ${b} (framed: the inputs)`, false);
  } catch (err) { setStatus(String(err.message || err), true); }
}

// ---------------------------------------------------------------- feature browser (an SAE given with --sae)
async function showFeature(latent) {
  try {
    const res = await api("/api/feature", { latent });
    $("feature-latent").value = latent;
    $("feature-info").textContent = `latent ${res.latent}: fires on ${(100 * res.firing_rate).toFixed(2)}% of ` +
      `positions; ${res.top.length ? "the samples that activate it most:" : "it fires on none of these samples."}`;
    const box = $("feature-top"); box.replaceChildren();
    res.top.forEach((t) => {
      const fig = document.createElement("figure"), c = document.createElement("canvas"), cap = document.createElement("figcaption");
      c.width = 64; c.height = 64; drawImage(c, t.image);
      cap.textContent = `#${t.index} ${t.value.toFixed(2)}` + (t.label === null ? "" : ` (${t.label})`);
      fig.append(c, cap); box.append(fig);
    });
    box.dataset.latent = String(res.latent);
  } catch (err) { $("feature-info").textContent = String(err.message || err); }
}
async function loadFeatures() {
  const f = await api("/api/features");
  S.features = f;
  $("features-panel").hidden = false;
  $("features-title").textContent = `${f.name} on layer ${f.layer}: ${f.n_latents} latents`;
  const order = f.firing_rate.map((r, i) => i).sort((a, b) => f.firing_rate[b] - f.firing_rate[a]);
  const dead = f.firing_rate.filter((r) => r === 0).length;
  $("features-note").textContent = `Firing rate over ${f.rows} positions of these samples; ${dead} latent(s) never ` +
    "fire here. Latents by firing rate (click one):";
  const list = $("feature-list"); list.replaceChildren();
  order.slice(0, 200).forEach((i) => {
    const b = document.createElement("button");
    b.type = "button"; b.textContent = `${i}: ${(100 * f.firing_rate[i]).toFixed(1)}%`; b.dataset.latent = String(i);
    b.addEventListener("click", () => showFeature(i));
    list.append(b);
  });
  $("feature-latent").max = f.n_latents - 1;
  $("feature-show").addEventListener("click", () => showFeature(Number($("feature-latent").value)));
  await showFeature(order[0]);
}

// ---------------------------------------------------------------- start
async function main() {
  const info = await api("/api/info");
  S.info = info; S.bounds = computeBounds(info.points);
  $("subtitle").textContent = `${info.title || ""} ${info.variant || ""}: latent_dim ${info.latent_dim}, ` +
                              `input ${info.input_shape.join("x")}, ${info.n_points} samples`;
  $("map-note").textContent = info.projection === "pca"
    ? `Map: first two principal components of the codes (${(100 * (info.explained_variance[0] + info.explained_variance[1])).toFixed(1)}% of their variance); a map point decodes through the inverse projection.`
    : `Map: the code itself (latent_dim ${info.latent_dim}).`;
  if (info.labels) {
    const seen = [...new Set(info.labels)].sort((p, q) => p - q).slice(0, 20);
    $("legend").replaceChildren(...seen.map((l) => {
      const s = document.createElement("span"), dot = document.createElement("i");
      dot.style.background = PALETTE[((l % 10) + 10) % 10]; s.append(dot, String(l)); return s;
    }));
  }
  $("pick-a").max = $("pick-b").max = info.n_points - 1;
  buildSliders();
  drawMap();
  const map = $("map");
  map.addEventListener("pointerdown", (ev) => {
    const p = toMap(...eventPixel(ev));
    if (ev.shiftKey) {
      const idx = nearestSample(p), k = S.nextPick;
      S.picks[k] = idx; S.nextPick = 1 - k;
      $(k ? "pick-b" : "pick-a").value = idx;
      drawMap();
      if (S.picks[0] !== undefined && S.picks[1] !== undefined) interpolate();
      return;
    }
    S.dragging = true; map.setPointerCapture(ev.pointerId);
    requestDecode({ point: p });
  });
  map.addEventListener("pointermove", (ev) => { if (S.dragging) requestDecode({ point: toMap(...eventPixel(ev)) }); });
  const stop = () => { S.dragging = false; };
  map.addEventListener("pointerup", stop);
  map.addEventListener("pointercancel", stop);
  $("interpolate").addEventListener("click", interpolate);
  requestDecode({ z: info.center });
  if (info.features) await loadFeatures();
  document.body.dataset.ready = "1";
}

main().catch((err) => setStatus(`could not load: ${err.message || err}`, true));
