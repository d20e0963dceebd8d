"""b3: memory bandwidth and access patterns (coalesced, strided, gather, paged rows) and the KV-cache argument."""
