"""Day 5: latency percentiles, throughput, a profile of the hot path, and a dynamic batcher sweep."""
