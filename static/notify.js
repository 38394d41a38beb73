// "Notify me": an opt-in browser notification when a task shown in this tab ends. The words come
// from the page (the button's data-text-*), the states still asked about from data-polled
// (states.POLLED). Rows are watched for changes whatever swapped them in (htmx, a morph).
(function () {
  const button = document.getElementById("notify-me");
  if (!button || !("Notification" in window)) return;
  const key = "smh-notify:" + location.pathname;
  const polled = new Set(button.dataset.polled.split(" "));
  const seen = new Map();

  function readStates() {
    const found = new Map();
    for (const badge of document.querySelectorAll("[id^='task-'] [data-state]")) {
      const row = badge.closest("[id^='task-']");
      found.set(row.id.slice("task-".length), {
        state: badge.dataset.state,
        text: badge.textContent.trim(),
      });
    }
    return found;
  }

  function optedIn() {
    try {
      return localStorage.getItem(key) === "on" && Notification.permission === "granted";
    } catch (error) {
      return false;
    }
  }

  function remember(on) {
    try {
      if (on) localStorage.setItem(key, "on");
      else localStorage.removeItem(key);
    } catch (error) {
      // Storage refused (a private window): the choice lasts as long as the page.
    }
  }

  function show() {
    const blocked = Notification.permission === "denied";
    button.textContent = blocked
      ? button.dataset.textBlocked
      : optedIn()
        ? button.dataset.textOn
        : button.dataset.textOff;
    button.disabled = blocked;
    button.setAttribute("aria-pressed", optedIn() ? "true" : "false");
    button.hidden = false;
  }

  function check() {
    const now = readStates();
    // A row leaving "not checked yet" (the table's data-quiet-from) shows a state learnt, not an
    // end seen: tracking nine old tasks gives no notification.
    const table = document.querySelector("[data-quiet-from]");
    const learnt = table ? table.dataset.quietFrom : null;
    if (optedIn()) {
      for (const [id, was] of seen) {
        const is = now.get(id);
        if (is && was.state !== learnt && polled.has(was.state) && !polled.has(is.state)) {
          const text = button.dataset.textEnded.replace("{task}", id).replace("{state}", is.text);
          new Notification(button.dataset.library, { body: text, tag: key + ":" + id });
        }
      }
    }
    // Rows another filter or page hides keep their last state, so coming back is no news.
    for (const [id, state] of now) seen.set(id, state);
  }

  button.addEventListener("click", function () {
    if (optedIn()) {
      remember(false);
      show();
      return;
    }
    Notification.requestPermission().then(function (answer) {
      remember(answer === "granted");
      show();
    });
  });

  let queued = false;
  new MutationObserver(function () {
    if (queued) return;
    queued = true;
    setTimeout(function () {
      queued = false;
      check();
    }, 0);
  }).observe(document.body, {
    subtree: true,
    childList: true,
    attributes: true,
    attributeFilter: ["data-state"],
  });
  check();
  show();
})();
