"""Experiments: foundation labs, vLLM labs and the baseline-vs-patched bench."""
