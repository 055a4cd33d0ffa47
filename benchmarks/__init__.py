"""The benchmarks behind `python bench.py NAME`, one file each; timing.py holds the shared helpers."""
