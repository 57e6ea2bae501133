"""Input and output: reading scenes (stage 1) and writing results (stage 6)."""
