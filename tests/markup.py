"""Read the dashboard's HTML as a person would: its text, a task's row, its badge, whether it
polls."""

import html
import re


def shown(response):
    """Return the text of a page as a person reads it (entities decoded)."""
    return html.unescape(response.get_data(as_text=True))


def row(html, task_id):
    """Return the inner HTML of task `task_id`'s row, failing if the page has none."""
    match = re.search(rf'<tr id="task-{task_id}"[^>]*>(.*?)</tr>', html, re.S)
    assert match, f"no row for task {task_id}"
    return match.group(1)


def badge_text(html, task_id):
    """Return the text of the state badge in task `task_id`'s row."""
    return re.search(r'<span class="badge[^"]*"[^>]*>([^<]*)</span>', row(html, task_id)).group(1)


def is_polling(html):
    """Tell whether the HTML carries an htmx poll."""
    return 'hx-trigger="every ' in html
