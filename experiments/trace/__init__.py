"""`make trace`: baseline and patched vLLM under a profiler; traces and summaries in nsys_traces/<run>/.

recipes (which profiler, by backend, and its command line), nsys_run (run under nsys with a
timeout and leave nothing running; import, export, check the report), summaries (CSV/PNG from
the ranges), run (the driver: `python -m experiments.trace`), cost (nsys on vs off).
"""
