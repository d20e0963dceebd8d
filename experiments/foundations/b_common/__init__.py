"""Helpers shared by the week-2 GPU labs (b1-b5): the warp/sector model, CUDA guards and timing, lab plumbing."""
