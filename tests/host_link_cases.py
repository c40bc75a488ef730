"""Networks and faulty ports for the host-link tests."""

import numpy as np
from network_cases import random_network

from spikeforge.gen.network import Network

__all__ = ["small_network", "relayout_variant", "FaultyPort"]


def small_network(seed, n_lif=2, max_size=12, **options):
    """A small random network whose LIF neurons do fire on random input."""
    rng = np.random.default_rng(seed)
    return random_network(rng, n_lif=n_lif, max_size=max_size, extremes=0.0, **options)


def relayout_variant(net, seed):
    """Another network with ``net``'s layout: source rows of every projection and the biases
    shuffled, every threshold moved where the parameter rules allow. The accumulator width is
    kept, so the array of ``net`` can run it after runtime loading."""
    rng = np.random.default_rng(seed)
    d = net.to_dict()
    d["acc_width"] = net.acc_width
    for proj in d["projections"]:
        weights = np.array(proj["weights"], np.int64)
        proj["weights"] = weights[rng.permutation(weights.shape[0])]
    for pop in d["populations"]:
        if pop["kind"] != "lif":
            continue
        if isinstance(pop["bias"], list):
            pop["bias"] = [int(b) for b in rng.permutation(pop["bias"])]
        for v_th in (pop["v_th"] - 1, pop["v_th"] + 1):
            try:
                Network.from_dict(
                    {
                        **d,
                        "populations": [
                            {**q, "v_th": v_th} if q is pop else q for q in d["populations"]
                        ],
                    }
                )
            except ValueError:
                continue
            pop["v_th"] = v_th
            break
    return Network.from_dict(d)


class FaultyPort:
    """Wraps a port; damages chosen frames on the way to the board or bytes on the way back.

    Parameters
    ----------
    port : file-like
    write_faults : dict of int to str
        Write number (0-based) -> ``"flip"`` (one bit of a middle byte), ``"drop"`` (a middle
        byte), ``"truncate"`` (only the first half of the frame) or ``"unsync"`` (the SYNC
        byte dropped: the board skips the frame without a word).
    read_faults : set of int
        Indices of bytes read from the board (0-based, over the whole session) to flip a bit of.
    """

    def __init__(self, port, write_faults=(), read_faults=()):
        self.port = port
        self.write_faults = dict(write_faults)
        self.read_faults = set(read_faults)
        self.writes = 0
        self.read_count = 0
        self.injected = 0
        self.codes = []  # command code of every frame written
        self.burst = self.longest_burst = 0  # frames written without a read in between

    def write(self, data):
        data = bytearray(data)
        self.codes.append(data[1])
        fault = self.write_faults.get(self.writes)
        self.writes += 1
        self.burst += 1
        self.longest_burst = max(self.longest_burst, self.burst)
        middle = len(data) // 2
        if fault == "flip":
            data[middle] ^= 0x10
        elif fault == "drop":
            del data[middle]
        elif fault == "truncate":
            del data[middle:]
        elif fault == "unsync":
            del data[0]
        self.injected += fault is not None
        return self.port.write(bytes(data))

    def read(self, size=1):
        self.burst = 0
        data = bytearray(self.port.read(size))
        for n in range(len(data)):
            if self.read_count + n in self.read_faults:
                data[n] ^= 0x04
                self.injected += 1
        self.read_count += len(data)
        return bytes(data)
