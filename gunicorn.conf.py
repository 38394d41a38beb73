"""Gunicorn's settings for the dashboard: `gunicorn -c gunicorn.conf.py 'app:create_app()'`.

GUNICORN_BIND, GUNICORN_WORKERS and GUNICORN_THREADS set where it listens and how many requests
it serves at once; command-line flags still win. It also sets up prometheus-client's multiprocess
mode, so that /metrics adds up what every worker counted.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import glob
import os
import shutil
import tempfile

from gunicorn.arbiter import Arbiter
from gunicorn.workers.base import Worker

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000").split(",")
# Several workers share SMH's cache window only with REDIS_URL; one worker with threads is the
# safe default, and threads are what keeps polls answering while a refresh waits on SMH.
workers = int(os.environ.get("GUNICORN_WORKERS", "1"))
threads = int(os.environ.get("GUNICORN_THREADS", "8"))
worker_class = "gthread"
# The dashboard logs each failed request itself, with its request id and without a query string.
accesslog = None
errorlog = "-"

# Read by prometheus-client when a worker imports it: each worker then keeps its counts in files
# here. A directory of our own is made (and removed at exit) unless one is given.
_made_directory = not os.environ.get("PROMETHEUS_MULTIPROC_DIR")
if _made_directory:
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="smh-dashboard-metrics-")
_directory = os.environ["PROMETHEUS_MULTIPROC_DIR"]


def on_starting(server: Arbiter) -> None:
    """Start the counts from zero: files left by an earlier run would add to them."""
    os.makedirs(_directory, exist_ok=True)
    for path in glob.glob(os.path.join(_directory, "*.db")):
        os.remove(path)


# glibc's mallopt parameter for the most memory arenas a process keeps (M_ARENA_MAX).
_ARENA_MAX = -8


def post_fork(server: Arbiter, worker: Worker) -> None:
    """Let a worker's threads share two memory arenas rather than one each, where glibc is the
    C library: each arena keeps the memory freed in it, and a worker's request and refresh
    threads would otherwise hold about 6 MB more between them."""
    name = ctypes.util.find_library("c")
    if name and "libc.so" in name:
        ctypes.CDLL(name).mallopt(_ARENA_MAX, 2)


def child_exit(server: Arbiter, worker: Worker) -> None:
    """Tell prometheus-client a worker is gone, so its live gauges stop counting."""
    # Imported here, once the directory above is in the environment it reads on import.
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server: Arbiter) -> None:
    """Remove the metrics directory this configuration made."""
    if _made_directory:
        shutil.rmtree(_directory, ignore_errors=True)
