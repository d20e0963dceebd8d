"""b1: the GPU's structure (SMs, warps, registers, shared/L1, L2, HBM) drawn with real sizes."""
