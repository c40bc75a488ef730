"""spikeforge.gen"""
