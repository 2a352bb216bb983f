"""Helpers for tests and benchmarks of remem and of applications built on it (not used by the library itself)."""
