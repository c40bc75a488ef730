"""spikeforge.spec: errors, shared parameter limits and checks, host-link protocol constants.

The bottom layer: it imports no other spikeforge module.
"""
