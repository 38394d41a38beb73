// Every word a reader sees comes from the server's templates (so it can be translated there) or
// from the browser's Intl, in the page's own language: none is written in this file.
const LANG = document.documentElement.lang || navigator.language;

// Polling: hidden tabs and paused tabs do not poll. htmx announces each request with a cancellable
// event (htmx 2 fires htmx:confirm before every request, htmx 4 htmx:before:request). Polled
// elements also listen for visibilitychange, so a tab shown again refreshes at once, and for
// dashboard-refresh, which "Refresh now" sends.
const PAUSED_KEY = "dashboard-paused";
let refreshAsked = false;

function isPaused() {
  try {
    return sessionStorage.getItem(PAUSED_KEY) === "1";
  } catch {
    return false;
  }
}

function skipPoll(event) {
  if (!(event.target instanceof Element) || !event.target.hasAttribute("data-poll")) return;
  if (refreshAsked) return;
  if (document.hidden || isPaused()) event.preventDefault();
}
document.addEventListener("htmx:confirm", skipPoll);
document.addEventListener("htmx:before:request", skipPoll);

function refreshNow() {
  if (!document.querySelector("[data-poll]")) {
    // Nothing polls once every task has ended: a refresh is then a new page.
    window.location.reload();
    return;
  }
  // htmx asks for the answer synchronously inside the event, so the flag covers exactly it.
  refreshAsked = true;
  try {
    document.dispatchEvent(new Event("dashboard-refresh"));
  } finally {
    refreshAsked = false;
  }
}

function showPaused() {
  const paused = isPaused();
  for (const button of document.querySelectorAll("[data-pause]")) {
    button.setAttribute("aria-pressed", String(paused));
  }
  for (const note of document.querySelectorAll("[data-paused-note]")) note.hidden = !paused;
}

function togglePause() {
  const paused = !isPaused();
  try {
    if (paused) sessionStorage.setItem(PAUSED_KEY, "1");
    else sessionStorage.removeItem(PAUSED_KEY);
  } catch {
    return;
  }
  showPaused();
  if (!paused) refreshNow();
}

document.addEventListener("click", (event) => {
  if (!(event.target instanceof Element)) return;
  if (event.target.closest("[data-pause]")) togglePause();
  else if (event.target.closest("[data-refresh]")) refreshNow();
});

// Times come as <time datetime>; the server's text is a fallback for readers without scripts.
// The browser writes them in the reader's language and time zone and keeps relative ones moving
// on its own clock, so the server never redraws a page just because a clock moved.
const relative = new Intl.RelativeTimeFormat(LANG, { numeric: "auto" });
const clockTime = new Intl.DateTimeFormat(LANG, { timeStyle: "short" });
const dateTime = new Intl.DateTimeFormat(LANG, {
  month: "short",
  day: "numeric",
  hour: "numeric",
  minute: "2-digit",
});
const yearDateTime = new Intl.DateTimeFormat(LANG, { dateStyle: "short", timeStyle: "short" });
const fullDateTime = new Intl.DateTimeFormat(LANG, { dateStyle: "full", timeStyle: "long" });
const units = {};
for (const unit of ["second", "minute", "hour", "day"]) {
  units[unit] = new Intl.NumberFormat(LANG, { style: "unit", unit, unitDisplay: "short" });
}

// The same steps as formatting.py's `ago`: seconds, minutes, hours below two days, then days.
function spellAgo(seconds) {
  if (seconds < 5) return relative.format(0, "second");
  if (seconds < 60) return relative.format(-Math.round(seconds), "second");
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return relative.format(-minutes, "minute");
  const hours = Math.floor(minutes / 60);
  if (hours < 48) return relative.format(-hours, "hour");
  return relative.format(-Math.floor(hours / 24), "day");
}

// A duration as formatting.py's `duration` spells it ("4 min 10 s"), in the reader's language.
function spellDuration(seconds) {
  seconds = Math.max(0, Math.round(seconds));
  if (seconds < 60) return units.second.format(seconds);
  let minutes = Math.floor(seconds / 60);
  const secs = seconds % 60;
  if (minutes < 60) {
    return [units.minute.format(minutes), secs ? units.second.format(secs) : ""].join(" ").trim();
  }
  const hours = Math.floor(minutes / 60);
  minutes %= 60;
  if (hours < 48) {
    return [units.hour.format(hours), minutes ? units.minute.format(minutes) : ""].join(" ").trim();
  }
  return units.day.format(Math.floor(hours / 24));
}

// "2 minutes ago · 4:00 PM": the clock time alone today, with the day before, the year only when
// it is not this year's.
function spellMoment(date, seconds) {
  const today = new Date();
  let absolute = yearDateTime;
  if (today.toDateString() === date.toDateString()) absolute = clockTime;
  else if (today.getFullYear() === date.getFullYear()) absolute = dateTime;
  return [spellAgo(seconds) + " ·", absolute.format(date)];
}

// Each part in its own span with a space between, so a narrow cell breaks between them rather
// than inside one.
function showParts(time, parts) {
  if (time.textContent === parts.join(" ")) return;
  const nodes = [];
  for (const part of parts) {
    if (nodes.length) nodes.push(document.createTextNode(" "));
    const span = document.createElement("span");
    span.className = "time-part";
    span.textContent = part;
    nodes.push(span);
  }
  time.replaceChildren(...nodes);
}

function showTimes() {
  const now = Date.now();
  for (const time of document.querySelectorAll("time[datetime]")) {
    const date = new Date(time.getAttribute("datetime"));
    if (Number.isNaN(date.getTime())) continue;
    const seconds = (now - date.getTime()) / 1000;
    if (time.dataset.format === "elapsed") showParts(time, [spellDuration(seconds)]);
    else if (time.dataset.format === "ago") showParts(time, [spellAgo(seconds)]);
    else showParts(time, spellMoment(date, seconds));
    const title = fullDateTime.format(date);
    if (time.title !== title) time.title = title;
  }
}

// A poll answered 204 found nothing new: what the section shows is current as of now.
function markUpToDate(event) {
  const detail = event.detail || {};
  const response = detail.ctx ? detail.ctx.response : null;
  const status = detail.xhr ? detail.xhr.status : response && response.status;
  const target = event.target;
  if (status === 204 && target instanceof Element && target.hasAttribute("data-poll")) {
    // The polling element may be a small part of the section it refreshes (hx-target).
    const selector = target.getAttribute("hx-target");
    const scope = (selector && document.querySelector(selector)) || target;
    for (const time of scope.querySelectorAll("time[data-updated]")) {
      time.setAttribute("datetime", new Date().toISOString().replace(/\.\d+Z$/, "Z"));
    }
    showTimes();
  }
}

// The announcer: elements that can change state carry an id, data-state and the sentence to say
// (data-announce, rendered by the server), or are rows of a table that holds the sentence once
// for all its rows (data-text-announce, with {task}, {state} and {n} to fill in from the row).
// After each swap, whatever changed state, or appeared, is said once through the one polite live
// region in base.html, which no poll replaces. A row is the exception: one drawn for the first
// time, or whose state was not known yet (the table's data-quiet-from), shows a state learnt,
// not a change, so that tracking nine old tasks does not read nine sentences at once.
const statesSeen = new Map();
const SPOKEN = "[data-announce][id], [data-text-announce] tr[id][data-state]";

function firstLearnt(element, before) {
  const table = element.closest("[data-text-announce]");
  if (!table || element.dataset.announce) return false;
  return before === undefined || before === table.dataset.quietFrom;
}

function sentenceOf(element) {
  if (element.dataset.announce) return element.dataset.announce;
  const table = element.closest("[data-text-announce]");
  const badge = element.querySelector(".badge");
  const cell = element.querySelector("td.num");
  if (!badge) return "";
  // A count of versions deleted is said when the row shows one (a dash when SMH sent none).
  const deleted = cell ? cell.textContent.trim() : "";
  const counted = /\d/.test(deleted);
  const sentence = counted ? table.dataset.textAnnounceDeleted : table.dataset.textAnnounce;
  return sentence
    .replace("{task}", () => element.id.slice("task-".length))
    .replace("{state}", () => badge.textContent.trim())
    .replace("{n}", () => deleted);
}

function announceChanges(speak) {
  const sentences = [];
  for (const element of document.querySelectorAll(SPOKEN)) {
    const state = element.dataset.state || "";
    const before = statesSeen.get(element.id);
    const changed = speak && before !== state && !firstLearnt(element, before);
    const sentence = changed ? sentenceOf(element) : "";
    if (sentence) sentences.push(sentence);
    statesSeen.set(element.id, state);
  }
  const announcer = document.getElementById("announcer");
  if (!sentences.length || !announcer) return;
  // Emptied first, so the same sentence twice in a row is still a change to speak.
  announcer.textContent = "";
  setTimeout(() => {
    announcer.textContent = sentences.join(" ");
  }, 50);
}

function afterSwap() {
  showTimes();
  announceChanges(true);
}

document.addEventListener("htmx:afterRequest", markUpToDate);
document.addEventListener("htmx:after:request", markUpToDate);
document.addEventListener("htmx:afterSwap", afterSwap);
document.addEventListener("htmx:oobAfterSwap", afterSwap);
document.addEventListener("htmx:after:swap", afterSwap);
document.addEventListener("DOMContentLoaded", () => {
  showTimes();
  announceChanges(false);
  showPaused();
  for (const controls of document.querySelectorAll(".live-controls")) controls.hidden = false;
});
setInterval(showTimes, 1000);
