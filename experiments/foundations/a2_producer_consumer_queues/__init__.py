"""Day 2: one streaming request queue in threading, multiprocessing and asyncio."""
