"""Benchmarks that print ratios; results and how to rerun them are in BENCHMARKS.md."""
