// The vrt-prep inspection page: sample tables, filters, one sample's audio, waveform,
// spectrogram, word spans and [P]/[W] target strip. Data comes from the JSON block
// #vrt-data that data_prep/inspect_page.py writes; wavesurfer.js and its plugins are inlined
// before this script.
"use strict";

const DATA = JSON.parse(document.getElementById("vrt-data").textContent);
const TOKEN_S = DATA.token_ms / 1000;
const state = { split: "", speaker: "", reason: "", flagged: false, q: "" };
let current = null; // { sample, wavesurfer, delayTokens }

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (name === "text") node.textContent = value;
    else if (name === "onclick" || name === "onchange" || name === "oninput") node[name] = value;
    else node.setAttribute(name, value);
  }
  node.append(...children);
  return node;
}

function fmt(x, digits = 2) {
  return x === null || x === undefined ? "–" : Number(x).toFixed(digits);
}

function matches(sample) {
  if (state.split && sample.split !== state.split) return false;
  if (state.speaker && (sample.speaker || "") !== state.speaker) return false;
  if (state.flagged && sample.n_flagged === 0) return false;
  const q = state.q.toLowerCase();
  return !q || sample.text.toLowerCase().includes(q) || sample.key.toLowerCase().includes(q);
}

function renderSamples() {
  const box = document.getElementById("samples");
  box.replaceChildren();
  for (const split of DATA.splits) {
    if (state.split && split.name !== state.split) continue;
    const rows = split.samples.filter(matches);
    box.append(el("h2", { text: `${split.name}: ${rows.length} shown of ${split.total} samples` }));
    const head = el("tr", {}, ...["key", "duration s", "speaker", "words/s", "flagged words",
      "mean score", "audio", "text"].map((h) => el("th", { text: h })));
    const table = el("table", { class: "samples", "data-split": split.name }, head);
    for (const s of rows) {
      table.append(el("tr", {
        class: s.n_flagged ? "has-flagged" : "", "data-key": s.key,
        onclick: () => showSample(s),
      }, el("td", { text: s.key }), el("td", { text: fmt(s.duration) }),
      el("td", { text: s.speaker || "–" }), el("td", { text: fmt(s.words_per_second, 1) }),
      el("td", { text: String(s.n_flagged) }), el("td", { text: fmt(s.mean_score) }),
      el("td", { text: s.audio ? "yes" : "no" }), el("td", { text: s.text })));
    }
    box.append(table);
  }
}

function renderRejects() {
  const box = document.getElementById("rejects");
  const q = state.q.toLowerCase();
  const rows = DATA.rejects.filter((r) => (!state.reason || r.reason === state.reason) &&
    (!q || `${r.key} ${r.source} ${r.message}`.toLowerCase().includes(q)));
  const counts = Object.entries(DATA.rejects_by_reason).map(([k, n]) => `${k}: ${n}`).join(", ");
  const table = el("table", { class: "rejects" }, el("tr", {},
    ...["reason", "key", "source", "message"].map((h) => el("th", { text: h }))));
  for (const r of rows) {
    table.append(el("tr", { "data-reason": r.reason, "data-key": r.key },
      el("td", { text: r.reason }), el("td", { text: r.key }), el("td", { text: r.source }),
      el("td", { text: r.message })));
  }
  box.replaceChildren(el("h2", { text: `Rejected items (${counts || "none"})` }),
    el("p", { text: `${rows.length} examples shown (vrt-prep keeps up to 20 per reason and unit).` }),
    table);
}

function pct(seconds, duration) {
  return `${(100 * seconds / duration).toFixed(3)}%`;
}

function placeTokens() {
  const { sample, delayTokens } = current;
  const strip = document.getElementById("target-strip");
  strip.setAttribute("data-delay-ms", String(delayTokens * DATA.token_ms));
  for (const cell of strip.children) {
    const w = Number(cell.getAttribute("data-frame"));
    // frame w is written once the audio up to (w + d) tokens has been heard
    cell.style.left = pct((w - 1 + delayTokens) * TOKEN_S, sample.duration);
    cell.style.width = pct(TOKEN_S, sample.duration);
  }
}

function moveCursor(seconds) {
  const cursor = document.getElementById("cursor");
  if (cursor && current) cursor.style.left = pct(seconds, current.sample.duration);
}

function wordStrip(sample) {
  const strip = el("div", { class: "strip words", id: "word-strip" });
  for (const [word, start, end, score, flagged] of sample.words) {
    const span = el("span", {
      class: flagged ? "word flagged" : "word", "data-word": word, "data-start": String(start),
      "data-end": String(end), "data-score": String(score), "data-flagged": String(flagged),
      title: `${word}: ${start.toFixed(3)}–${end.toFixed(3)} s, score ${score.toFixed(2)}` +
        (flagged ? " (flagged: interpolated or wildcard)" : ""),
      text: word,
    });
    span.style.left = pct(start, sample.duration);
    span.style.width = pct(Math.max(end - start, 0.005), sample.duration);
    span.onclick = () => current.wavesurfer && current.wavesurfer.setTime(start);
    strip.append(span);
  }
  return strip;
}

function targetStrip(sample) {
  const strip = el("div", { class: "strip targets", id: "target-strip" });
  sample.stream.forEach((id, i) => {
    const kind = sample.kinds[i];
    const group = sample.group_of[i];
    const words = group === null ? "" : sample.groups[group].words.join(" ");
    strip.append(el("span", {
      class: `tok tok-${kind}`, "data-frame": String(i + 1), "data-id": String(id),
      "data-kind": kind, title: `frame ${i + 1}: id ${id} ${kind === "P" ? "[P]" :
        kind === "W" ? "[W] " + words : kind === "T" ? "text token of " + words : "end"}`,
      text: kind === "W" ? "W" : kind === "T" ? "·" : kind === "E" ? "E" : "",
    }));
  });
  return strip;
}

function showSample(sample) {
  if (current && current.wavesurfer) current.wavesurfer.destroy();
  const detail = document.getElementById("detail");
  detail.replaceChildren();
  detail.removeAttribute("data-ready");
  detail.setAttribute("data-key", sample.key);
  current = { sample, wavesurfer: null, delayTokens: DATA.default_delay_ms / DATA.token_ms };
  detail.append(el("h2", { text: `${sample.key} (${sample.split})` }),
    el("p", { text: `${sample.text} — ${fmt(sample.duration)} s, speaker ` +
      `${sample.speaker || "unknown"}, ${sample.n_flagged} flagged words` }));
  const delay = el("select", { id: "delay" });
  for (let ms = DATA.min_delay_ms; ms <= DATA.max_delay_ms; ms += DATA.token_ms) {
    const option = el("option", { value: String(ms), text: `${ms} ms` });
    if (ms === DATA.default_delay_ms) option.selected = true;
    delay.append(option);
  }
  delay.onchange = () => { current.delayTokens = Number(delay.value) / DATA.token_ms; placeTokens(); };
  const box = el("div", { class: "timebox" });
  if (sample.audio) {
    const audio = el("audio", { controls: "", src: sample.audio, id: "player" });
    detail.append(audio);
    const wave = el("div", { id: "wave" });
    box.append(wave);
    const regions = WaveSurfer.Regions.create();
    const ws = WaveSurfer.create({
      container: wave, media: audio, height: 96, waveColor: "#7a9cc6", progressColor: "#2b4f81",
      cursorColor: "#d33", plugins: [regions, WaveSurfer.Timeline.create(),
        WaveSurfer.Spectrogram.create({ labels: true, height: 128, frequencyMax: 8000 })],
    });
    current.wavesurfer = ws;
    ws.on("decode", () => {
      for (const [word, start, end, , flagged] of sample.words) {
        regions.addRegion({ start, end, content: word, drag: false, resize: false,
          color: flagged ? "rgba(220, 50, 50, 0.30)" : "rgba(60, 120, 230, 0.15)" });
      }
      detail.setAttribute("data-regions", String(regions.getRegions().length));
    });
    ws.on("ready", () => detail.setAttribute("data-ready", "1"));
    ws.on("timeupdate", moveCursor);
    ws.on("error", (e) => detail.setAttribute("data-error", String(e)));
  } else {
    detail.append(el("p", { class: "note", text: "Audio not embedded: the page's audio budget " +
      "was spent on earlier samples (raise max_audio_seconds)." }));
  }
  box.append(wordStrip(sample), targetStrip(sample), el("div", { id: "cursor" }));
  detail.append(el("label", { text: "delay " }, delay), box, el("p", { class: "note", text:
    "Target strip: one cell per 80 ms frame w of the stored, delay-independent [P]/[W] stream " +
    "(W = a group's [W], · = its text tokens, blank = [P]). At delay d the token of frame w " +
    "sits at stream position L + d/80 ms + w and is emitted once the audio up to (w + d/80 ms)" +
    " × 80 ms has been heard, so the strip is drawn shifted right by d against the audio; " +
    "cells past the end of the audio are cut off." }));
  placeTokens();
}

function setUpFilters() {
  const speakers = new Set(), reasons = Object.keys(DATA.rejects_by_reason);
  DATA.splits.forEach((s) => s.samples.forEach((x) => x.speaker && speakers.add(x.speaker)));
  const select = (id, values) => {
    const node = document.getElementById(id);
    for (const v of [...values].sort()) node.append(el("option", { value: v, text: v }));
    node.onchange = () => { state[id] = node.value; renderSamples(); renderRejects(); };
  };
  select("split", DATA.splits.map((s) => s.name));
  select("speaker", speakers);
  select("reason", reasons);
  const flagged = document.getElementById("flagged");
  flagged.onchange = () => { state.flagged = flagged.checked; renderSamples(); };
  const q = document.getElementById("q");
  q.oninput = () => { state.q = q.value; renderSamples(); renderRejects(); };
}

setUpFilters();
renderSamples();
renderRejects();
const all = DATA.splits.flatMap((s) => s.samples);
const wanted = decodeURIComponent(location.hash.slice(1));
const first = all.find((s) => s.key === wanted) || all.find((s) => s.audio) || all[0];
if (first) showSample(first);
document.body.setAttribute("data-rendered", "1");
