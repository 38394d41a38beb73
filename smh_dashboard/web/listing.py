"""One page of a library's tasks as asked for: its filter, page and search, counts and title."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from enum import Enum

from flask import abort, current_app, request

from smh_dashboard import clock
from smh_dashboard.domain import inputs, states
from smh_dashboard.domain.libraries import Library
from smh_dashboard.domain.tasks import Task
from smh_dashboard.i18n import gettext, ngettext
from smh_dashboard.live import poller
from smh_dashboard.storage import listings
from smh_dashboard.web.filters import FILTERS


class PastEnd(Enum):
    """What a listing does when asked for a page past its last one."""

    NOT_FOUND = "not found"
    LAST_PAGE = "last page"


@dataclass(frozen=True)
class Listing:
    """A library's tasks as a page lists them: the filter, the page and the search asked for,
    and SMH's outage once the library's refresh has been requested."""

    library: Library
    state: str | None = None
    page: int = 1
    search: str | None = None
    outage: poller.Outage | None = None

    @classmethod
    def asked(cls, library: Library) -> Listing:
        """Read the filter, page and search from the request's query (400 for a wrong one)."""
        state, page = filter_and_page()
        return cls(library, state, page, _search())

    def refreshed(self) -> Listing:
        """Return this listing once the library's refresh is requested, with SMH's outage."""
        return replace(self, outage=poller.request_refresh(self.library))

    @property
    def shown_states(self) -> tuple[str, ...] | None:
        """Return the states the filter shows, or None for every state."""
        return FILTERS[self.state].states if self.state else None

    def summary(self) -> dict[str, int]:
        """Count the library's tasks the search finds, by filter (see `summarise`)."""
        return summarise(listings.count_states([self.library.id], self.search)[self.library.id])

    def page_count(self, summary: dict[str, int]) -> int:
        """Return how many pages the filter's tasks fill (one when there are none)."""
        listed = summary[self.state] if self.state else summary["all"]
        return max(1, math.ceil(listed / per_page()))

    def tasks(self) -> list[Task]:
        """Return the tasks this page lists."""
        return listings.list_tasks(
            self.library.id, self.shown_states, self._offset(), per_page(), self.search
        )

    def task_versions(self) -> list[tuple[int, int]]:
        """Return the ids this page lists, in order, each with the version it last changed at."""
        return listings.list_task_versions(
            self.library.id, self.shown_states, self._offset(), per_page(), self.search
        )

    def context(self, summary: dict[str, int], tasks: list[Task], version: str) -> dict:
        """Return what every template that lists the library's tasks is given."""
        return {
            "title": title(summary, self.library.name),
            "library": self.library,
            "tasks": tasks,
            "summary": summary,
            "state": self.state,
            "q": self.search,
            "page": self.page,
            "poll_seconds": poller.poll_seconds(self.outage),
            "now": clock.now(),
            "version": version,
        }

    def _offset(self) -> int:
        return (self.page - 1) * per_page()


def per_page() -> int:
    """Return how many tasks a page lists (TASKS_PER_PAGE)."""
    count: int = current_app.config["TASKS_PER_PAGE"]
    return count


def filter_and_page() -> tuple[str | None, int]:
    """Read the `state` filter and the `page` number from the request's query (400 if wrong)."""
    state = request.args.get("state") or None
    if state is not None and state not in FILTERS:
        message = gettext(
            "Unknown state filter “%(filter)s”: use one of %(names)s.",
            filter=inputs.excerpt(state),
            names=", ".join(FILTERS),
        )
        abort(400, description=message)
    page = request.args.get("page") or "1"
    if not (page.isascii() and page.isdigit() and len(page) <= 6 and int(page) >= 1):
        message = gettext("Page “%(page)s” is not a page number.", page=inputs.excerpt(page))
        abort(400, description=message)
    return state, int(page)


def _search() -> str | None:
    try:
        return inputs.parse_search(request.args.get("q", ""))
    except inputs.InputError as error:
        abort(400, description=str(error))


def summarise(by_state: dict[str, int]) -> dict[str, int]:
    """Count tasks by filter, then in all, still polled, and ended well, from counts by state."""
    summary = {name: sum(by_state.get(s, 0) for s in f.states) for name, f in FILTERS.items()}
    summary["all"] = sum(by_state.values())
    summary["polled"] = sum(by_state.get(s, 0) for s in states.POLLED)
    summary["ended_well"] = sum(by_state.get(s, 0) for s in states.ENDED_WELL)
    return summary


def title(summary: dict[str, int], name: str) -> str:
    """Title a page by what it lists: how many run, or ✓ / ✕ once every one has ended."""
    if summary["running"]:
        return ngettext(
            "(%(num)d running) %(name)s",
            "(%(num)d running) %(name)s",
            summary["running"],
            name=name,
        )
    if not summary["all"] or summary["polled"]:
        return name
    if summary["ended_well"] == summary["all"]:
        return gettext("✓ %(name)s", name=name)
    return gettext("✕ %(name)s", name=name)
