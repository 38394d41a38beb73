"""Benchmark the dashboard on loopback; `bench/run.py` is the entry point."""
