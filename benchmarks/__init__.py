"""Benchmarks that print a table and save JSON under benchmarks/results/ (not timed tests)."""
