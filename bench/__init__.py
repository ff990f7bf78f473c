"""Benchmarks, run by hand (one command each); figures go into BENCHMARKS.md."""
