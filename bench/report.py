"""Render the benchmark's findings: verdict marks, Markdown tables, the machine line, progress."""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import os
import platform
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

OK, MISSED, NO_TARGET = "✓", "✗", "—"
TIMES = "\N{MULTIPLICATION SIGN}"


class Row(Protocol):
    """A table row that knows how to print itself, one string per header."""

    def cells(self) -> tuple[str, ...]:
        """Return the row's cells as printed."""
        ...


def say(message: str) -> None:
    """Report progress on stderr, keeping stdout for the tables."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def verdict(ok: bool | None) -> str:
    """Return the verdict mark for a figure against its target."""
    if ok is None:
        return NO_TARGET
    return OK if ok else MISSED


def format_table(headers: Sequence[str], rows: Sequence[Row]) -> str:
    """Render a Markdown table."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(row.cells()) + " |" for row in rows]
    return "\n".join(lines)


def describe_machine(args: argparse.Namespace) -> str:
    """Return the header line: date, CPUs, memory, Python and gunicorn versions, settings."""
    memory_kib = 0
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory_kib = int(line.split()[1])
    cpu = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = f" ({line.split(':', 1)[1].strip()})"
                break
    date = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (
        f"{date} · nproc {len(os.sched_getaffinity(0))}{cpu} · "
        f"{memory_kib / 1024**2:.1f} GiB RAM · "
        f"Python {platform.python_version()} · gunicorn {importlib.metadata.version('gunicorn')} "
        f"({args.workers} worker(s) {TIMES} {args.threads} threads) · SMH_CACHE_SECONDS="
        f"{args.cache_seconds} · SMH_POLL_SECONDS={args.poll_seconds:g} · T={args.seconds:g} s · "
        f"{args.running_share:.0%} of tasks running"
    )
