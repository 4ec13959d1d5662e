"""Benchmarks and yardsticks (`python -m raypipe bench ...`), with the labelled set they score against."""
