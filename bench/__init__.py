"""Benchmarks for the llmops gateway: they print numbers and never assert on time."""
