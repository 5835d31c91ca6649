"""Benchmarks of index kinds: synthetic data, timing, the one bench routine, reports and plots.

Imports :mod:`indexer.core` and nothing else of the project.
"""
