"""b5: a trace of a small PyTorch transformer forward, and what launch overhead looks like in it."""
