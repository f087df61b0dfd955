"""Evaluation and benchmarks: measured through the real pipeline, reported as JSON."""
