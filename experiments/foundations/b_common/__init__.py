"""Helpers shared by the week-2 GPU labs (b1-b5): warp/sector model, CUDA guards, lab plumbing."""
