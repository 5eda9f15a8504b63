"""Benchmarks: scripts that measure and write results. Never part of the test run."""
