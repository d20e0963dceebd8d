"""Helpers shared by the week-1 foundation labs (a1-a5) and nothing else.

Repo-wide helpers (provenance, result files, statistics, plots) live in
experiments.common; this package only adds what several a-labs need.
"""
