// Hidden tabs do not poll: htmx announces each request with a cancellable event, and a hidden
// tab cancels it (htmx 2 fires htmx:confirm before every request, htmx 4 htmx:before:request).
// The polled elements also listen for visibilitychange, so a tab shown again refreshes at once.
function skipWhileHidden(event) {
  if (document.hidden && event.target.hasAttribute("data-poll")) {
    event.preventDefault();
  }
}
document.addEventListener("htmx:confirm", skipWhileHidden);
document.addEventListener("htmx:before:request", skipWhileHidden);

// Times come as <time datetime>; the server's text is a fallback for readers without scripts.
// The browser keeps them relative to its own clock, so a poll never redraws just because a
// clock moved. The wording matches formatting.py's `ago` and `duration`.
function spellDuration(seconds, short) {
  seconds = Math.max(0, Math.round(seconds));
  if (seconds < 60) return seconds + " s";
  let minutes = Math.floor(seconds / 60);
  const secs = seconds % 60;
  if (minutes < 60) return short || !secs ? minutes + " min" : minutes + " min " + secs + " s";
  const hours = Math.floor(minutes / 60);
  minutes %= 60;
  if (hours < 48) return short || !minutes ? hours + " h" : hours + " h " + minutes + " min";
  return Math.floor(hours / 24) + " days";
}

function showTimes() {
  const now = Date.now();
  for (const time of document.querySelectorAll("time[datetime]")) {
    const seconds = (now - Date.parse(time.getAttribute("datetime"))) / 1000;
    if (Number.isNaN(seconds)) continue;
    let text;
    if (time.dataset.format === "elapsed") text = spellDuration(seconds, false);
    else text = seconds < 5 ? "just now" : spellDuration(seconds, true) + " ago";
    if (time.textContent !== text) time.textContent = text;
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

document.addEventListener("htmx:afterRequest", markUpToDate);
document.addEventListener("htmx:after:request", markUpToDate);
document.addEventListener("htmx:afterSwap", showTimes);
document.addEventListener("htmx:after:swap", showTimes);
document.addEventListener("DOMContentLoaded", showTimes);
setInterval(showTimes, 10000);
