"""Day 3: loading a weights file with read() vs mmap, cold and warm page cache."""
