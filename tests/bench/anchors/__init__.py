"""Anchors (finplot, vnpy) measured with the method of Heron's own benchmarks, in a scratch env."""
