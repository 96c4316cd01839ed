// beatdbn serve: upload one file, show every model's answer, its posterior over time, and the features.
"use strict";
const $ = (id) => document.getElementById(id);
const el = (tag, attrs = {}, text) => {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
};

function color(v) {  // 0..1 -> a light-to-dark blue ramp
  const t = Math.max(0, Math.min(1, v));
  const r = Math.round(247 - t * (247 - 8)), g = Math.round(251 - t * (251 - 48)), b = Math.round(255 - t * (255 - 107));
  return `rgb(${r},${g},${b})`;
}
function diverging(v) {  // z-score -> blue (low) / white / red (high)
  const t = Math.max(-1, Math.min(1, v / 2.5));
  if (t >= 0) return `rgb(255,${Math.round(255 - 160 * t)},${Math.round(255 - 170 * t)})`;
  return `rgb(${Math.round(255 + 170 * t)},${Math.round(255 + 120 * t)},255)`;
}

// A heatmap over beats: rows x (segments of beats). cells: [{row, b0, b1, value}]
function heatmap({rows, nBeats, beatsPerBar, cells, paint, title, beats}) {
  const left = 70, right = 10, top = 18, rowH = rows.length > 14 ? 11 : 16, bottom = 38;
  const width = Math.min(1060, Math.max(480, document.body.clientWidth - 40));
  const plotW = width - left - right, height = top + rows.length * rowH + bottom;
  const c = el("canvas", {width, height, class: "heatmap", "aria-label": title});
  const g = c.getContext("2d");
  g.fillStyle = "#fff"; g.fillRect(0, 0, width, height);
  const x = (beat) => left + (beat / Math.max(nBeats, 1)) * plotW;
  for (const {row, b0, b1, value} of cells) {
    g.fillStyle = paint(value);
    g.fillRect(x(b0), top + row * rowH, Math.max(1, x(b1) - x(b0)), rowH);
  }
  g.strokeStyle = "#999"; g.strokeRect(left, top, plotW, rows.length * rowH);
  g.fillStyle = "#222"; g.font = "11px system-ui, sans-serif"; g.textAlign = "right"; g.textBaseline = "middle";
  rows.forEach((r, i) => g.fillText(r, left - 5, top + i * rowH + rowH / 2));
  g.font = "12px system-ui, sans-serif"; g.textAlign = "left"; g.textBaseline = "alphabetic";
  g.fillText(title, left, 13);
  // x axis: bars (every 4 beats), labelled with bar number, beat and time
  const nBars = Math.ceil(nBeats / beatsPerBar);
  const every = [1, 2, 4, 8, 16, 32, 64, 128].find((s) => (nBars / s) * 70 < plotW) || 256;
  g.textAlign = "center"; g.font = "10.5px system-ui, sans-serif";
  const y0 = top + rows.length * rowH;
  for (let bar = 0; bar <= nBars; bar += every) {
    const beat = bar * beatsPerBar;
    if (beat > nBeats) break;
    g.strokeStyle = "#666"; g.beginPath(); g.moveTo(x(beat), y0); g.lineTo(x(beat), y0 + 4); g.stroke();
    const sec = beats && beats.length ? beats[Math.min(beat, beats.length - 1)] : null;
    g.fillText(`${bar + 1}`, x(beat), y0 + 14);
    if (sec !== null) g.fillText(`${sec.toFixed(0)}s`, x(beat), y0 + 25);
  }
  g.textAlign = "right";
  g.fillText(`bar (${beatsPerBar} beats) · time`, width - right, y0 + 36);
  return c;
}

// A key model's answer: the key, its mode and Camelot code, the confidence; or "no key" with the reason.
function keyAnswer(k) {
  const p = el("p", {class: "key-answer" + (k.tonal ? "" : " nokey")});
  if (!k.tonal) {
    p.append(el("strong", {class: "key"}, "no key"), el("span", {class: "reason"}, k.reason));
    return p;
  }
  p.append(el("strong", {class: "key"}, k.key),
    el("span", {class: "mode"}, k.mode ? k.mode : "mode not predicted by this model"),
    el("span", {class: "camelot"}, k.camelot ? `Camelot ${k.camelot}` : "no Camelot code without a mode"),
    el("span", {class: "confidence"}, `confidence ${(100 * k.confidence).toFixed(0)} %`));
  return p;
}

function renderModel(m, track) {
  const box = el("section", {class: "model" + (m.error ? " mismatch" : "")});
  box.append(el("h3", {}, m.model));
  if (m.error) {
    box.append(el("p", {class: "model-error"}, `Not applied: ${m.error}`));
    return box;
  }
  if (m.key) box.append(keyAnswer(m.key));
  const shown = m.key ? m.key.alternatives.map((a) => ({label: a.camelot ? `${a.key} (${a.camelot})` : a.key,
    probability: a.probability})) : m.top;
  const ul = el("ul", {class: "labels"});
  for (const {label, probability} of shown) {
    const li = el("li");
    li.append(el("span", {class: "label"}, label));
    const bar = el("span", {class: "bar"}); bar.style.width = `${(100 * probability).toFixed(1)}%`;
    li.append(bar, el("span", {class: "p"}, `${(100 * probability).toFixed(1)} %`));
    ul.append(li);
  }
  box.append(ul);
  const ot = m.over_time;
  if (ot) {
    const order = m.top.map((t) => ot.labels.indexOf(t.label));
    const rest = ot.labels.map((_, i) => i).filter((i) => !order.includes(i));
    const shown = order.concat(rest).slice(0, 12);
    const cells = [];
    ot.posteriors.forEach((p, s) => shown.forEach((ci, row) =>
      cells.push({row, b0: ot.beats[s][0], value: p[ci],  // a column per hop; the last step runs to its end
      b1: s === ot.posteriors.length - 1 ? ot.beats[s][1] : Math.min(ot.beats[s][0] + 16, ot.beats[s][1])})));
    box.append(heatmap({rows: shown.map((i) => ot.labels[i]), nBeats: track.n_beats, beatsPerBar: track.beats_per_bar,
      cells, paint: color, beats: track.beats,
      title: `posterior over time: ${ot.posteriors.length} steps (each 51 beats, one every 16 beats)`}));
    box.lastChild.classList.add("posterior");
  }
  return box;
}

function featureMap(values, names, title, track, zscore) {
  const n = values.length, cells = [];
  const cols = names.map((_, j) => values.map((v) => v[j]));
  const stats = cols.map((c) => {
    const mean = c.reduce((a, b) => a + b, 0) / Math.max(c.length, 1);
    const sd = Math.sqrt(c.reduce((a, b) => a + (b - mean) ** 2, 0) / Math.max(c.length, 1)) || 1;
    return {mean, sd};
  });
  values.forEach((v, i) => names.forEach((_, j) => cells.push({row: j, b0: i, b1: i + 1,
    value: zscore ? (v[j] - stats[j].mean) / stats[j].sd : v[j]})));
  return heatmap({rows: names, nBeats: n, beatsPerBar: track.beats_per_bar, cells, beats: track.beats,
    paint: zscore ? diverging : color, title});
}

function render(data) {
  const out = $("result"); out.replaceChildren();
  data.tracks.forEach((t) => {
    out.append(el("h2", {}, `${t.title || data.file}${t.artist ? " — " + t.artist : ""}`));
    const facts = el("p", {class: "facts meta"});
    const secs = t.duration === null ? null : Math.round(t.duration);
    const dur = secs === null ? "?" : `${Math.floor(secs / 60)}:${String(secs % 60).padStart(2, "0")}`;
    facts.append(el("span", {}, `tempo ${t.tempo === null ? "?" : t.tempo.toFixed(1) + " BPM"}`),
      el("span", {}, `length ${dur}`), el("span", {}, `${t.n_beats} beats`),
      el("span", {}, `features: ${t.representation === "audio" ? "beatdbn audio front-end" : "Echo Nest (MSD)"}`),
      el("span", {}, `track ${t.track_id}`));
    out.append(facts);
    t.models.forEach((m) => out.append(renderModel(m, t)));
    const feats = el("section", {class: "features"});
    feats.append(el("h3", {}, "What the models saw: beat-aligned chroma and timbre"));
    feats.append(featureMap(t.chroma, ["C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B"],
      "chroma per beat", t, false));
    feats.append(featureMap(t.timbre, Array.from({length: 12}, (_, i) => `timbre ${i + 1}`),
      "timbre per beat (standardized per coefficient)", t, true));
    out.append(feats);
  });
}

async function upload(files) {
  $("error").hidden = true; $("result").replaceChildren();
  if (!files || files.length === 0) return;
  if (files.length > 1) { showError("one file at a time, please"); return; }
  const file = files[0];
  $("status").textContent = `Analysing ${file.name} (${(file.size / 2 ** 20).toFixed(1)} MB)…`;
  const form = new FormData(); form.append("file", file, file.name);
  try {
    const res = await fetch("/api/analyse", {method: "POST", body: form});
    let data;
    try { data = await res.json(); } catch (e) { data = {error: `the server answered ${res.status}`}; }
    if (!res.ok || data.error) { showError(data.error || `the server answered ${res.status}`); return; }
    $("status").textContent = `${file.name}: done`;
    render(data);
  } catch (e) {
    showError(`could not reach the server (${e.message})`);
  }
}
function showError(text) { $("status").textContent = ""; $("error").textContent = text; $("error").hidden = false; }

async function init() {
  const drop = $("drop"), input = $("file");
  input.addEventListener("change", () => { upload(input.files); input.value = ""; });
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => { e.preventDefault(); drop.classList.remove("over"); upload(e.dataTransfer.files); });
  try {
    const info = await (await fetch("/api/models")).json();
    $("models").textContent = "Models: " + info.models.map((m) =>
      `${m.name}, ${m.classes} classes, trained on ${m.representation_text}`).join(" · ")
      + ` · files up to ${info.max_mb} MB`;
  } catch (e) { $("models").textContent = "could not list the models"; }
}
init();
