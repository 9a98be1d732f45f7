"""Benchmarks of the imaging core against the seed handler, libvips and the decode floor.

Run with `make bench` (or `python -m benchmarks.run`); see docs/performance.md. The
package imports nothing heavy: each candidate runs in its own process
(`benchmarks.worker`), which imports only what that candidate needs.
"""
