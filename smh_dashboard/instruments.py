"""The dashboard's Prometheus instruments, and the callbacks that the SMH client and poller feed.

Counters live at module level, as prometheus-client wants. Under gunicorn, gunicorn.conf.py sets
PROMETHEUS_MULTIPROC_DIR before any worker imports this, so every worker writes its counts to
files there and a scrape, whichever worker answers it, adds them up (see web/metrics.py).
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

SMH_CALLS = Counter(
    "dashboard_smh_calls",
    "Calls made to SMH, by SMH endpoint and outcome (retries count as calls).",
    ["endpoint", "outcome"],
)
TOKEN_MINTS = Counter(
    "dashboard_smh_token_mints",
    "SMH access tokens obtained: minted from a library secret (new) or renewed.",
    ["kind"],
)
CACHE_HITS = Counter(
    "dashboard_cache_hits", "Task answers found in the answer cache, within their window."
)
CACHE_MISSES = Counter(
    "dashboard_cache_misses", "Task answers looked for in the answer cache and not found there."
)
POLLS = Counter(
    "dashboard_polls",
    "Polls answered, by endpoint and answer (changed, unchanged, error).",
    ["endpoint", "answer"],
)
POLL_SECONDS = Histogram(
    "dashboard_poll_seconds", "Time taken to answer a poll, in seconds.", ["endpoint"]
)


def count_smh_call(endpoint: str, outcome: str) -> None:
    """Count one call to SMH (the SMH client's on_call)."""
    SMH_CALLS.labels(endpoint=endpoint, outcome=outcome).inc()


def count_token_mint(kind: str) -> None:
    """Count one access token obtained from SMH, "new" or "renewed" (the client's on_token)."""
    TOKEN_MINTS.labels(kind=kind).inc()


def count_cache_lookups(hits: int, misses: int) -> None:
    """Count task answers found and not found in the answer cache."""
    CACHE_HITS.inc(hits)
    CACHE_MISSES.inc(misses)


def count_poll(endpoint: str, answer: str, seconds: float) -> None:
    """Count one poll answered ("changed", "unchanged" or "error") and the time it took."""
    POLLS.labels(endpoint=endpoint, answer=answer).inc()
    POLL_SECONDS.labels(endpoint=endpoint).observe(seconds)
