"use strict";
// seda review: one card per queued clip; decisions are POSTed to /api/decision.
const token = document.querySelector('meta[name="seda-token"]').content;
const queueEl = document.getElementById("queue");
const progressEl = document.getElementById("progress");
const statusEl = document.getElementById("status");
let state = { labels: [], colours: {}, clips: [] };
let current = 0;

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
    audio.src = `/audio/${encodeURIComponent(clip.clip_id)}`;
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
    : "the queue is empty: run the label stage first";
}

function cards() { return queueEl.querySelectorAll(".clip"); }

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
      headers: { "Content-Type": "application/json", "X-Seda-Token": token },
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
    const audio = all[current].querySelector("audio");
    if (audio.paused) audio.play().catch((err) => flash(`cannot play: ${err.message}`));
    else audio.pause();
  } else if (ev.key === "ArrowDown" || ev.key === "j") {
    ev.preventDefault(); select(current + 1);
  } else if (ev.key === "ArrowUp" || ev.key === "k") {
    ev.preventDefault(); select(current - 1);
  }
});

async function load() {
  const res = await fetch("/api/queue", { cache: "no-store" });
  state = await res.json();
  const first = state.clips.findIndex((c) => c.status === "pending");
  current = first < 0 ? 0 : first;
  render();
  document.body.dataset.ready = "1";
}

load().catch((err) => { progressEl.textContent = `cannot load the queue: ${err.message}`; });
