"""The filters a library page can be narrowed to: each a name, its label and the states it shows."""

from __future__ import annotations

from dataclasses import dataclass

from smh_dashboard.domain import states
from smh_dashboard.i18n import LazyString, lazy_gettext


@dataclass(frozen=True)
class Filter:
    """A named group of states that a library page can be narrowed to."""

    name: str
    label: str | LazyString
    states: tuple[str, ...]


FILTERS = {
    f.name: f
    for f in (
        Filter("running", lazy_gettext("Running"), states.UNDER_WAY),
        Filter("not_found", lazy_gettext("Not found yet"), (states.NOT_FOUND,)),
        Filter("done", lazy_gettext("Done"), (states.DONE, states.DONE_EMPTY)),
        Filter("failed", lazy_gettext("Failed"), (states.FAILED,)),
        Filter("unknown", lazy_gettext("Unknown"), states.RECHECKABLE),
    )
}
