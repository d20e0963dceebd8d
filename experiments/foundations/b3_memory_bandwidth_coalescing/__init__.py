"""b3: memory bandwidth and access patterns (coalesced, strided, gather, paged) and the KV cache."""
