"""Data: record formats and validation (records.py), tiny demo models (tiny.py), data preparation (prepare.py)."""
