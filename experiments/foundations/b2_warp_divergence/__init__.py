"""b2: kernel launch, warp lockstep and branch divergence (an if/else kernel, the analytic model, GPU timings)."""
