"""spikeforge.cli: the `spikeforge` commands, the demo, design-space exploration and training."""
