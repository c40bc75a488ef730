"""spikeforge.bench: the benchmarks behind docs/performance.md.

One module per part of the suite: :mod:`.networks` (the benchmark networks and their inputs),
:mod:`.timing` (median and spread of repeated timings), :mod:`.cycles` (cycles per timestep
against the bound L), :mod:`.speed` (simulation speeds), :mod:`.top` and :mod:`.builds`
(resources and Fmax of the bare array), :mod:`.capacity` (the largest network per board),
:mod:`.brian` (the Brian2 comparison), :mod:`.conv` (the golden model on a convolutional
network), :mod:`.generation` (wall time and peak memory of ``spikeforge generate`` on big
networks, run as a script of its own); :mod:`.results` and :mod:`.tables` keep and render the
figures, and :mod:`.suite` runs the chosen parts.
"""
