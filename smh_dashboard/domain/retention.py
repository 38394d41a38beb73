"""File-history retention as people type it: SMH's names, whole numbers within SMH's limits.

The limits are those SMH's SDK documents for SetHistoryConfigRequest: at most 1-999 versions,
kept 0-999 days (0: never expire), edits merged within 0 (no merging) or 5-600 seconds.
"""

from __future__ import annotations

from collections.abc import Mapping

from smh_dashboard.domain.inputs import InputError
from smh_dashboard.i18n import gettext
from smh_dashboard.smh.answers import HistorySettings

COUNT_RANGE = (1, 999)
EXPIRE_DAYS_RANGE = (0, 999)
# 0 turns merging off; otherwise at least MERGE_LEAST seconds.
MERGE_LEAST, MERGE_MOST = 5, 600
# The longest value read before it is refused as not a whole number.
LONGEST_NUMBER = 6


def parse_settings(form: Mapping[str, str]) -> HistorySettings:
    """Return the settings a form asks for, or raise InputError saying what is wrong."""
    enabled = form.get("enableFileHistory") in ("on", "true", "1")
    count = _whole(form, "fileHistoryCount", gettext("Versions kept"))
    expire_days = _whole(form, "fileHistoryExpireDay", gettext("Days kept"))
    merge = _whole(form, "mergeInterval", gettext("Merge interval"))
    _refuse_outside(
        count,
        *COUNT_RANGE,
        gettext("Versions kept must be from %(least)s to %(most)s, not %(value)s."),
    )
    _refuse_outside(
        expire_days,
        *EXPIRE_DAYS_RANGE,
        gettext("Days kept must be from %(least)s (never expire) to %(most)s, not %(value)s."),
    )
    if merge != 0:
        _refuse_outside(
            merge,
            MERGE_LEAST,
            MERGE_MOST,
            gettext(
                "Merge interval must be 0 (no merging) or from %(least)s to %(most)s seconds, "
                "not %(value)s."
            ),
        )
    return HistorySettings(enabled, count, expire_days, merge)


def _whole(form: Mapping[str, str], name: str, label: str) -> int:
    raw = (form.get(name) or "").strip()
    if not raw:
        raise InputError(gettext("%(field)s is required.", field=label))
    if len(raw) > LONGEST_NUMBER or not raw.isascii() or not raw.isdigit():
        raise InputError(gettext("%(field)s must be a whole number of digits only.", field=label))
    return int(raw)


def _refuse_outside(value: int, least: int, most: int, refusal: str) -> None:
    # `refusal` is translated but not yet filled in: gettext fills placeholders only when given
    # some, and the three refusals name the same ones.
    if not least <= value <= most:
        raise InputError(refusal % {"least": least, "most": most, "value": value})


def lowers_a_limit(before: HistorySettings, after: HistorySettings) -> bool:
    """Tell whether the change lets SMH delete versions kept now: fewer versions or fewer days
    (0 days is no limit at all)."""
    if not before.enabled or not after.enabled:
        return False
    fewer = after.count is not None and before.count is not None and after.count < before.count

    def days(value: int | None) -> float:
        return float("inf") if not value else float(value)

    shorter = days(after.expire_days) < days(before.expire_days)
    return fewer or shorter


def describe(settings: HistorySettings | None) -> str:
    """Say the settings in one phrase, for the activity log's before → after."""
    if settings is None:
        return gettext("not known")
    if not settings.enabled:
        return gettext("history off")
    return gettext(
        "history on, %(count)s versions, %(days)s days, merge %(merge)s s",
        count=settings.count if settings.count is not None else "?",
        days=settings.expire_days if settings.expire_days is not None else "?",
        merge=settings.merge_interval if settings.merge_interval is not None else "?",
    )
