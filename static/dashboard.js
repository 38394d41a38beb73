// Hidden tabs do not poll: htmx asks before each request, and a hidden tab says no. The
// elements also listen for visibilitychange, so a tab shown again refreshes at once.
document.addEventListener("htmx:confirm", (event) => {
  if (document.hidden && event.target.hasAttribute("data-poll")) {
    event.preventDefault();
  }
});
