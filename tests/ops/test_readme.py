"""The README tells the truth: its settings table and its demo command."""

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from smh_dashboard import settings as config

PROJECT = Path(__file__).resolve().parents[2]
README = (PROJECT / "README.md").read_text()
# Read by gunicorn.conf.py, which the settings table documents too.
GUNICORN = (PROJECT / "gunicorn.conf.py").read_text()
GUNICORN_NAMES = set(re.findall(r'os\.environ(?:\.get\(|\[)"([A-Z_]+)"', GUNICORN))
WAIT_SECONDS = 60
STOP_SECONDS = 20


def documented_settings():
    """Return every variable named in the first column of the README's settings table."""
    section = README.split("## Configure it for real", 1)[1].split("\n## ", 1)[0]
    names = set()
    for line in section.splitlines():
        if line.startswith("| `"):
            names |= set(re.findall(r"`([A-Z][A-Z0-9_]+)`", line.split("|")[1]))
    return names


def test_the_settings_table_lists_every_setting_the_code_reads_and_no_other():
    documented = documented_settings()
    read = (set(config.DEFAULTS) - config.CODE_ONLY) | GUNICORN_NAMES

    assert sorted(read - documented) == [], "read, but not in the README's settings table"
    # Any CACHE_* passes through to flask-caching; the table names one as an example.
    unread = {n for n in documented - read if not n.startswith("CACHE_")}
    assert sorted(unread) == [], "in the README's settings table, but never read"
    for name in documented - GUNICORN_NAMES:
        assert config.from_environ({name: "1"}) == {name: "1"}, name


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def fresh_clone(tmp_path):
    """Copy what a clone holds (no tests, no instance folder, no caches) into tmp_path."""
    clone = tmp_path / "clone"
    shutil.copytree(
        PROJECT,
        clone,
        ignore=shutil.ignore_patterns(
            ".git", ".venv", "instance", "tests", "bench", "__pycache__", ".*_cache"
        ),
    )
    return clone


def read_page(url, process):
    """Return the page at `url` once the server answers, failing if it exits or never answers."""
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        assert process.poll() is None, process.communicate()[1]
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return response.status, response.read().decode()
        except (urllib.error.URLError, ConnectionError):
            assert time.monotonic() < deadline, f"nothing answered at {url}"
            time.sleep(0.2)


def test_the_readme_demo_command_serves_the_dashboard(tmp_path):
    command = re.search(r"&& (flask --app app demo)\n", README).group(1).split()
    flask = Path(sys.executable).parent / "flask"
    assert flask.exists(), "the flask command is installed beside this Python"
    port = free_port()  # the README: `--port` picks another port
    clone = fresh_clone(tmp_path)
    process = subprocess.Popen(
        [str(flask), *command[1:], "--port", str(port)],
        cwd=clone,
        env=os.environ | {"PYTHONPATH": ""},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        status, page = read_page(f"http://127.0.0.1:{port}/", process)
    finally:
        # As Ctrl-C would, so that the demo also stops its simulated SMH.
        process.send_signal(signal.SIGINT)
        try:
            process.communicate(timeout=STOP_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()

    assert status == 200
    assert 'href="/libraries/demo-marketing">Marketing assets</a>' in page
    assert 'href="/libraries/demo-photos">Product photos</a>' in page
    assert (clone / "instance" / "demo.sqlite3").exists()  # the clone's, not the checkout's
