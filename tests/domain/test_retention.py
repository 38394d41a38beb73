"""Retention settings as typed into the form: whole numbers within SMH's limits, or a message."""

import pytest

from smh_dashboard.domain import retention
from smh_dashboard.domain.inputs import InputError
from smh_dashboard.smh.answers import HistorySettings

GOOD = {
    "enableFileHistory": "on",
    "fileHistoryCount": "10",
    "fileHistoryExpireDay": "30",
    "mergeInterval": "600",
}


@pytest.mark.parametrize(
    ("changes", "settings"),
    [
        ({}, HistorySettings(True, 10, 30, 600)),
        ({"enableFileHistory": None}, HistorySettings(False, 10, 30, 600)),
        ({"fileHistoryCount": "1", "fileHistoryExpireDay": "0"}, HistorySettings(True, 1, 0, 600)),
        (
            {"fileHistoryCount": "999", "fileHistoryExpireDay": "999"},
            HistorySettings(True, 999, 999, 600),
        ),
        ({"mergeInterval": "0"}, HistorySettings(True, 10, 30, 0)),
        ({"mergeInterval": "5"}, HistorySettings(True, 10, 30, 5)),
        ({"mergeInterval": " 60 "}, HistorySettings(True, 10, 30, 60)),
    ],
)
def test_good_settings_are_read(changes, settings):
    form = {k: v for k, v in (GOOD | changes).items() if v is not None}

    assert retention.parse_settings(form) == settings


@pytest.mark.parametrize(
    ("name", "value", "said"),
    [
        ("fileHistoryCount", "0", "Versions kept must be from 1 to 999, not 0."),
        ("fileHistoryCount", "1000", "Versions kept must be from 1 to 999, not 1000."),
        ("fileHistoryCount", "-1", "Versions kept must be a whole number"),
        ("fileHistoryCount", "2.5", "Versions kept must be a whole number"),
        ("fileHistoryCount", "1e3", "Versions kept must be a whole number"),
        ("fileHistoryCount", "ten", "Versions kept must be a whole number"),
        ("fileHistoryCount", "\u0661\u0660", "Versions kept must be a whole number"),
        ("fileHistoryCount", "9" * 40, "Versions kept must be a whole number"),
        ("fileHistoryCount", "", "Versions kept is required."),
        ("fileHistoryCount", None, "Versions kept is required."),
        ("fileHistoryExpireDay", "1000", "Days kept must be from 0 (never expire) to 999"),
        ("fileHistoryExpireDay", "-5", "Days kept must be a whole number"),
        ("fileHistoryExpireDay", "", "Days kept is required."),
        ("mergeInterval", "1", "Merge interval must be 0 (no merging) or from 5 to 600 seconds"),
        ("mergeInterval", "4", "Merge interval must be 0 (no merging) or from 5 to 600 seconds"),
        ("mergeInterval", "601", "Merge interval must be 0 (no merging) or from 5 to 600"),
        ("mergeInterval", "0x10", "Merge interval must be a whole number"),
        ("mergeInterval", None, "Merge interval is required."),
    ],
)
def test_every_bad_value_is_refused_with_a_message(name, value, said):
    form = {k: v for k, v in (GOOD | {name: value}).items() if v is not None}

    with pytest.raises(InputError) as refused:
        retention.parse_settings(form)

    assert said in str(refused.value)


@pytest.mark.parametrize(
    ("before", "after", "lowers"),
    [
        (HistorySettings(True, 10, 30, 600), HistorySettings(True, 5, 30, 600), True),
        (HistorySettings(True, 10, 30, 600), HistorySettings(True, 10, 7, 600), True),
        # 0 days is "never expire": any number of days is shorter.
        (HistorySettings(True, 10, 0, 600), HistorySettings(True, 10, 900, 600), True),
        (HistorySettings(True, 10, 30, 600), HistorySettings(True, 10, 0, 600), False),
        (HistorySettings(True, 10, 30, 600), HistorySettings(True, 20, 60, 5), False),
        (HistorySettings(False), HistorySettings(True, 1, 1, 0), False),
    ],
)
def test_lowering_a_limit_is_recognised(before, after, lowers):
    assert retention.lowers_a_limit(before, after) is lowers
