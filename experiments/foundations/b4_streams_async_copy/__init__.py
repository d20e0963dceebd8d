"""b4: CUDA streams, async copies and pinned memory: an overlap timeline and when async turns synchronous."""
