"""b2: kernel launch, warp lockstep and branch divergence (if/else kernel, warp model, GPU timings)."""
