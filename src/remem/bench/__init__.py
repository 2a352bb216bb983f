"""Benchmarks that ship with remem (``remem bench …``): each prints a table with a baseline from the same run."""
