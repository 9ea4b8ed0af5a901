"""Benchmark scripts. Each prints its figures; docs/benchmarks.md records them."""
