"""Benchmarks: timing (CUDA events), the LIF-layer sweep, the training loop."""
