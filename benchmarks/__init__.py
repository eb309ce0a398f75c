"""Replay and micro benchmarks; results are written to benchmarks/results/."""
