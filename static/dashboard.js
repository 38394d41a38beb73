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
