"""spikeforge.bench: the benchmarks behind docs/performance.md."""
