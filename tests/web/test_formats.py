"""How numbers and moments read: digit groups as Babel has them, moments filled in later."""

import pytest
from babel.numbers import get_group_symbol

from smh_dashboard import formats, i18n


@pytest.mark.parametrize("locale", sorted(i18n.LANGUAGES))
def test_each_language_groups_digits_as_babel_says(locale):
    assert i18n.GROUP_SYMBOLS[locale] == get_group_symbol(locale)


def test_a_drawing_kept_for_later_tells_its_moments_from_the_now_it_is_shown_at(app):
    with app.test_request_context(headers={"Accept-Language": "zh-CN"}):
        kept = (
            f"<p>{formats.ago(1000.0, formats.LATER)} · {formats.elapsed(900.0, formats.LATER)}</p>"
        )
        parts = formats.split_moments(kept)
        shown = formats.fill_moments([parts, parts], now=1065.0)
        row = f"<p>{formats.ago(1000.0, 1065.0)} · {formats.duration(165)}</p>"
        assert shown == f"{row}\n{row}"
        assert "\x00" not in shown
