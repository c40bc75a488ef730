"""spikeforge.sim"""
