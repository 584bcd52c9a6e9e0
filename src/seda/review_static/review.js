"use strict";
// seda review: one card per queued clip; decisions are POSTed to /api/decision.
// On loopback the page carries the token. Served on another address it carries none: the page
// asks for the one seda review printed, and sends it as a header with every request for the
// queue, the audio (fetched into blob: URLs) and the decisions.
const pageToken = document.querySelector('meta[name="seda-token"]').content;
const asksToken = !pageToken;
let token = pageToken || sessionStorage.getItem("seda-token") || "";
const queueEl = document.getElementById("queue");
const loginEl = document.getElementById("login");
const tokenEl = document.getElementById("token");
const loginMessageEl = document.getElementById("login-message");
const progressEl = document.getElementById("progress");
const statusEl = document.getElementById("status");
let state = { labels: [], colours: {}, clips: [] };
let current = 0;
const audioUrls = new Map(); // clip id -> blob: URL (token mode)
const audioFetches = new Map(); // clip id -> Promise of it

function authHeaders(extra = {}) {
  return token ? { ...extra, "X-Seda-Token": token } : extra;
}

function el(tag, cls, text) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined) node.textContent = text;
  return node;
}

function clock(s) {
  if (s === null || s === undefined) return "?";
  const m = Math.floor(s / 60);
  return `${m}:${(s - 60 * m).toFixed(1).padStart(4, "0")}`;
}

function statusText(clip) {
  if (clip.status === "label") return `labelled ${clip.decided_label}`;
  if (clip.status === "discard") return "discarded";
  if (clip.status === "skip") return "skipped";
  return "";
}

function render() {
  queueEl.replaceChildren();
  state.clips.forEach((clip, i) => {
    const card = el("section", "clip");
    card.id = `clip-${clip.clip_id}`;
    card.dataset.index = i;
    card.style.borderLeftColor = state.colours[clip.proposed] || "#999";
    if (clip.status === "label" || clip.status === "discard") card.classList.add("done");
    const top = el("div", "top");
    top.append(el("span", "rank", `#${clip.rank || i + 1}`), el("span", "id", clip.clip_id));
    const p = clip.probability === null ? "" : ` ${(100 * clip.probability).toFixed(0)}%`;
    const proposal = el("span", "proposal", `proposed: ${clip.proposed}${p}`);
    proposal.style.color = state.colours[clip.proposed] || "inherit";
    top.append(proposal);
    top.append(el("span", "where", `${clip.item_id} ${clock(clip.start)}–${clock(clip.end)}`));
    top.append(el("span", "state", statusText(clip)));
    const bar = el("div", "bar");
    bar.title = state.labels.map((k) => `${k} ${(100 * (clip.probs[k] || 0)).toFixed(0)}%`).join(", ");
    for (const k of state.labels) {
      const part = el("span");
      part.style.width = `${100 * (clip.probs[k] || 0)}%`;
      part.style.background = state.colours[k] || "#999";
      bar.append(part);
    }
    const audio = el("audio");
    audio.controls = true;
    audio.preload = "none";
    const src = asksToken ? audioUrls.get(clip.clip_id) : audioPath(clip);
    if (src) audio.src = src;
    audio.addEventListener("play", () => select(i, false));
    const buttons = el("div", "buttons");
    state.labels.forEach((k, j) => {
      const b = el("button", "label");
      b.type = "button";
      b.dataset.label = k;
      b.append(el("span", "k", j < 9 ? String(j + 1) : ""), document.createTextNode(k));
      b.style.borderLeftColor = state.colours[k] || "#999";
      if (clip.status === "label" && clip.decided_label === k) b.classList.add("chosen");
      b.addEventListener("click", () => decide(i, "label", k));
      buttons.append(b);
    });
    for (const [kind, key] of [["skip", "s"], ["discard", "d"]]) {
      const b = el("button", kind);
      b.type = "button";
      b.dataset.decision = kind;
      b.append(el("span", "k", key), document.createTextNode(kind));
      b.addEventListener("click", () => decide(i, kind, ""));
      buttons.append(b);
    }
    card.append(top, bar, audio, buttons);
    card.addEventListener("click", () => select(i, false));
    queueEl.append(card);
  });
  updateProgress();
  select(Math.min(current, state.clips.length - 1), false);
}

function updateProgress() {
  const done = state.clips.filter((c) => c.status === "label" || c.status === "discard").length;
  const model = state.model ? ` · proposals by ${state.model}` : "";
  progressEl.textContent = state.clips.length
    ? `${done} of ${state.clips.length} clips decided${model}`
    : "the queue is empty: make one with `seda label --model baseline`";
}

function cards() { return queueEl.querySelectorAll(".clip"); }

function audioPath(clip) { return `/audio/${encodeURIComponent(clip.clip_id)}`; }

// The card's player, with its source set (token mode: fetched with the token first).
async function prepareAudio(i) {
  const audio = cards()[i] && cards()[i].querySelector("audio");
  const clip = state.clips[i];
  if (!audio || !clip || audio.getAttribute("src")) return audio;
  if (!audioFetches.has(clip.clip_id)) {
    const fetching = fetch(audioPath(clip), { headers: authHeaders(), cache: "no-store" })
      .then(async (res) => {
        if (!res.ok) throw new Error((await res.json()).error || res.statusText);
        const url = URL.createObjectURL(await res.blob());
        audioUrls.set(clip.clip_id, url);
        return url;
      })
      .catch((err) => { audioFetches.delete(clip.clip_id); throw err; });
    audioFetches.set(clip.clip_id, fetching);
  }
  const url = await audioFetches.get(clip.clip_id);
  if (!audio.getAttribute("src")) audio.src = url;
  return audio;
}

async function togglePlay(i) {
  try {
    const audio = await prepareAudio(i);
    if (!audio) return;
    if (audio.paused) await audio.play();
    else audio.pause();
  } catch (err) {
    flash(`cannot play: ${err.message}`);
  }
}

function select(i, scroll = true) {
  const all = cards();
  if (!all.length || i < 0) return;
  i = Math.max(0, Math.min(i, all.length - 1));
  all.forEach((c) => c.classList.remove("current"));
  all[i].classList.add("current");
  if (i !== current) {
    const playing = all[current] && all[current].querySelector("audio");
    if (playing && !playing.paused) playing.pause();
  }
  current = i;
  if (asksToken) prepareAudio(i).catch((err) => flash(`cannot load the audio: ${err.message}`));
  if (scroll) all[i].scrollIntoView({ block: "center", behavior: "smooth" });
}

function nextPending(from) {
  for (let j = from + 1; j < state.clips.length; j++) if (state.clips[j].status === "pending") return j;
  for (let j = 0; j < from; j++) if (state.clips[j].status === "pending") return j;
  return Math.min(from + 1, state.clips.length - 1);
}

function flash(text) {
  statusEl.textContent = text;
  statusEl.classList.add("show");
  clearTimeout(flash.timer);
  flash.timer = setTimeout(() => statusEl.classList.remove("show"), 1600);
}

async function decide(i, decision, label) {
  const clip = state.clips[i];
  if (!clip) return;
  const audio = cards()[i].querySelector("audio");
  if (audio && !audio.paused) audio.pause();
  try {
    const res = await fetch("/api/decision", {
      method: "POST",
      headers: authHeaders({ "Content-Type": "application/json" }),
      body: JSON.stringify({ clip_id: clip.clip_id, decision, label }),
    });
    const body = await res.json();
    if (!res.ok) throw new Error(body.error || res.statusText);
    clip.status = decision;
    clip.decided_label = label;
    current = nextPending(i);
    render();
    select(current);
    flash(`${clip.clip_id}: ${statusText(clip)}`);
  } catch (err) {
    flash(`not saved: ${err.message}`);
  }
}

document.addEventListener("keydown", (ev) => {
  if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
  if (ev.target instanceof HTMLElement && ["INPUT", "TEXTAREA"].includes(ev.target.tagName)) return;
  const all = cards();
  if (!all.length) return;
  if (/^[1-9]$/.test(ev.key)) {
    const k = state.labels[Number(ev.key) - 1];
    if (k) { ev.preventDefault(); decide(current, "label", k); }
  } else if (ev.key === "s") {
    ev.preventDefault(); decide(current, "skip", "");
  } else if (ev.key === "d") {
    ev.preventDefault(); decide(current, "discard", "");
  } else if (ev.key === " ") {
    ev.preventDefault();
    togglePlay(current);
  } else if (ev.key === "ArrowDown" || ev.key === "j") {
    ev.preventDefault(); select(current + 1);
  } else if (ev.key === "ArrowUp" || ev.key === "k") {
    ev.preventDefault(); select(current - 1);
  }
});

function askToken(message) {
  token = "";
  sessionStorage.removeItem("seda-token");
  loginEl.hidden = false;
  loginMessageEl.textContent = message;
  progressEl.textContent = "waiting for the token…";
  tokenEl.focus();
}

loginEl.addEventListener("submit", (ev) => {
  ev.preventDefault();
  token = tokenEl.value.trim();
  tokenEl.value = "";
  sessionStorage.setItem("seda-token", token);
  loginEl.hidden = true;
  load().catch((err) => { progressEl.textContent = `cannot load the queue: ${err.message}`; });
});

async function load() {
  if (asksToken && !token) {
    askToken("");
    return;
  }
  const res = await fetch("/api/queue", { cache: "no-store", headers: authHeaders() });
  const body = await res.json();
  if (asksToken && res.status === 403 && /token/.test(body.error || "")) {
    askToken("That token was not accepted: type the one seda review printed.");
    return;
  }
  if (!res.ok) throw new Error(body.error || res.statusText);
  state = body;
  const first = state.clips.findIndex((c) => c.status === "pending");
  current = first < 0 ? 0 : first;
  render();
  document.body.dataset.ready = "1";
}

load().catch((err) => { progressEl.textContent = `cannot load the queue: ${err.message}`; });
