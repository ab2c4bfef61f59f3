"""Test support: receipt images, service processes, small waiting helpers."""
