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
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Protocol

if TYPE_CHECKING:
    from bench.drawing import Drawing

OK, MISSED, NO_TARGET = "✓", "✗", "—"
TIMES = "\N{MULTIPLICATION SIGN}"
# Issue 21's targets: drawing the section and the page costs close to /healthz.
SECTION_LIMIT = 3.0
PAGE_LIMIT = 4.0
SIZE_LIMIT_KIB = 30.0
MEMORY_LIMIT_MIB = 96.0


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


@dataclass(frozen=True)
class TargetRow:
    """One of issue 21's figures as measured, beside its target."""

    HEADERS: ClassVar[tuple[str, ...]] = ("Figure", "Measured", "Target", "Verdict")

    figure: str
    measured: str
    target: str
    ok: bool | None

    def cells(self) -> tuple[str, ...]:
        """Return the row as printed."""
        return (self.figure, self.measured, self.target, verdict(self.ok))


def issue_21_rows(
    drawing: Drawing | None,
    rss_mib: float | None,
    failed: dict[str, str],
    only: frozenset[str],
) -> list[TargetRow]:
    """Return issue 21's figures beside their targets, or why one could not be measured (or
    was not: `only` names the scenarios run)."""

    def why(scenario: str) -> str:
        if scenario not in only:
            return "not run: left out by --only"
        return f"could not run: {failed.get(scenario, 'not measured')}"

    rows = []
    if drawing is None:
        why_not = why("drawing")
        rows += [
            TargetRow(
                "whole task section (50 rows) vs /healthz",
                why_not,
                f"≤ {SECTION_LIMIT:g}{TIMES}",
                None,
            ),
            TargetRow("its size", why_not, f"≤ {SIZE_LIMIT_KIB:g} KiB", None),
            TargetRow("whole library page vs /healthz", why_not, f"≤ {PAGE_LIMIT:g}{TIMES}", None),
        ]
    else:
        healthz = drawing.median("healthz") * 1000
        for name, label, limit in (
            (
                "section, gzip",
                f"whole task section ({drawing.rows} rows), gzip, vs /healthz",
                SECTION_LIMIT,
            ),
            (
                "section",
                f"whole task section ({drawing.rows} rows), uncompressed, vs /healthz",
                SECTION_LIMIT,
            ),
            ("page", "whole library page vs /healthz", PAGE_LIMIT),
        ):
            ratio = drawing.ratio(name)
            rows.append(
                TargetRow(
                    label,
                    f"{drawing.median(name) * 1000:.2f} ms = {ratio:.1f}{TIMES} "
                    f"(/healthz {healthz:.2f} ms)",
                    f"≤ {limit:g}{TIMES}",
                    ratio <= limit,
                )
            )
        wire = drawing.wire["section, gzip"] / 1024
        rows.append(
            TargetRow(
                "its size, on the wire with headers",
                f"{wire:.1f} KiB gzip ({drawing.markup['section'] / 1024:.1f} KiB of markup; "
                f"{drawing.wire['section'] / 1024:.1f} KiB uncompressed)",
                f"≤ {SIZE_LIMIT_KIB:g} KiB",
                wire <= SIZE_LIMIT_KIB,
            )
        )
    if rss_mib is None:
        rows.append(
            TargetRow("worker RSS after 10,000 tasks in 10 libraries", why("memory"), "", None)
        )
    else:
        rows.append(
            TargetRow(
                "worker RSS after tracking and polling 10,000 tasks in 10 libraries",
                f"{rss_mib:.1f} MiB",
                f"≤ {MEMORY_LIMIT_MIB:g} MiB",
                rss_mib <= MEMORY_LIMIT_MIB,
            )
        )
    rows.append(
        TargetRow(
            "scenarios that could not run",
            str(len(failed)) + (f" ({', '.join(failed)})" if failed else ""),
            "0",
            not failed,
        )
    )
    return rows
