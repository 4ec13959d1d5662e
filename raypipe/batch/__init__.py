"""Many videos in one run: a template job and a table with a row per video (see run.py)."""
