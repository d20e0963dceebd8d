"""Week-3 labs on vLLM (days 15-19 of the learning plan)."""
