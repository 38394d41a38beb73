"""The templates stay readable in an editor and a diff: no line past 200 characters."""

from pathlib import Path

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"
LONGEST_LINE = 200


def test_no_template_line_is_over_200_characters():
    long_lines = [
        f"{path.name}:{number}: {len(line)} characters"
        for path in sorted(TEMPLATES.glob("*.html"))
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1)
        if len(line) > LONGEST_LINE
    ]
    assert not long_lines, "Wrap these template lines:\n" + "\n".join(long_lines)
