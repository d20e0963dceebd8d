"""Code shared by every lab and the bench: provenance, result files, statistics, plots."""
