"""Benchmarks of the engines on public data sets (run as ``python -m bench.<name>``; see bench/README.md)."""
