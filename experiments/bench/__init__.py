"""Baseline-vs-patched vLLM bench: `python -m experiments.bench --preset default`."""
