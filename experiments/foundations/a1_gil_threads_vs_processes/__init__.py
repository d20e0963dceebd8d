"""Day 1: threads vs processes under the GIL (CPU-bound, GIL-releasing C code, I/O wait)."""
