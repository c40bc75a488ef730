"""spikeforge.boards"""
