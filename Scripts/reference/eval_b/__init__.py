"""Benchmark fixture builders used by ``make_eval_fixtures_b.py`` (one module per benchmark)."""
