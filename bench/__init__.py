"""Benchmarks: hubtasks side by side with the plain docker CLI. Run `python -m bench.run`.

Scripts, not tests: nothing here is collected by pytest. See docs/benchmarks.md.
"""
