"""Example geounet plugin package."""
