"""The native harness's goals in the speed part of the benchmark (bench/speed.py), quick.

The figures themselves are the benchmark's (docs/performance.md); this checks that the part runs
and reports each goal with its measurement.
"""

import numpy as np
from network_cases import random_network, random_spikes

from spikeforge.bench.results import machine_info
from spikeforge.bench.speed import GOALS, measure_goals
from spikeforge.bench.tables import render_tables


def test_measure_goals_quick():
    rng = np.random.default_rng(5)
    net = random_network(rng, n_lif=2, max_size=10, recurrent=False)
    spikes = random_spikes(rng, net, 8, 41, activity=0.3)
    entry = measure_goals((net, spikes), quick=True, repeat=1, lanes=2, log=lambda line: None)
    assert entry["case"] == "native-goals" and entry["goals"] == GOALS
    digits = entry["digits"]
    assert digits["digits"] == 2
    for label in ("native", "cocotb"):
        assert digits[label]["cycles_per_s"]["median"] > 0
    assert digits["ratio"] == (
        digits["native"]["cycles_per_s"]["median"] / digits["cocotb"]["cycles_per_s"]["median"]
    )
    assert entry["lif_1024"]["steps"] == 10 and entry["lif_1024"]["cycles_per_s"]["median"] > 0
    assert entry["demo"]["digits"] == 40 and entry["demo"]["wall_s"]["median"] > 0
    # The speed table shows each goal against its measurement.
    results = {"date": "d", "quick": True, "repeat": 1, "machine": machine_info()}
    text = render_tables(dict(results, speed=[entry]))
    assert f">= {GOALS['ratio_digits']:.0f}x | {digits['ratio']:.0f}x" in text
