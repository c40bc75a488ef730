"""Event-driven convolution for the golden model (``docs/network.md``, "Convolutions").

Every spike of a ``conv1d``/``conv2d`` projection's source scatters the kernel taps that reach
a target neuron: the spike's pooled position (the sum pool is linear, so a spike simply acts at
its window's position) looks up its row of a fan-out table built once from
:meth:`~spikeforge.gen.network_conv.ConvGeometry.fanout`, and the row's weights are added to the
row's targets. The sums are the dense projection's sums (``tests/test_conv_golden.py`` checks
this against the unrolled matrix): integer additions in the accumulator's type, whose every
partial sum is a sum of a subset of a neuron's weights and so lies in the range the
accumulator width was sized for.
"""

import numpy as np

__all__ = ["ConvDelivery"]


class ConvDelivery:
    """The fan-out table of one convolutional projection, and the per-step scatter.

    Parameters
    ----------
    proj : spikeforge.gen.network_conv.ConvProjection
        A ``conv1d`` or ``conv2d`` projection.
    dtype : numpy dtype
        The accumulator type of the run.

    Attributes
    ----------
    targets : ndarray of intp, shape (n_pooled + 1, k)
        Row ``q``: the target neurons of a spike at pooled position ``q``, padded with
        ``n_out`` (a scratch column); row ``n_pooled`` is for dropped spikes (all scratch).
    weights : ndarray of dtype, shape (n_pooled + 1, k)
        The matching weights, 0 in the padding.
    """

    def __init__(self, proj, dtype):
        geometry = proj.geometry
        n_pooled = geometry.n_pooled
        self.n_out = geometry.n_out
        src, dst, w = proj.synapses()
        counts = np.bincount(src, minlength=n_pooled)
        width = max(int(counts.max(initial=0)), 1)
        # fanout() lists synapses by source: the slot of each is its rank within its source.
        slot = np.arange(src.size) - np.repeat(np.cumsum(counts) - counts, counts)
        self.targets = np.full((n_pooled + 1, width), self.n_out, np.intp)
        self.weights = np.zeros((n_pooled + 1, width), dtype)
        self.targets[src, slot] = dst
        self.weights[src, slot] = w
        pool = geometry.pool_map()
        # Source neuron -> row of the table; spikes beyond the last whole window hit the
        # all-scratch row.
        self.row = np.where(pool >= 0, pool, n_pooled).astype(np.intp)
        self._scratch = {}

    def add(self, acc, spikes):
        """``acc += `` the input sums of one step.

        Parameters
        ----------
        acc : ndarray, shape (B, n_out)
            The targets' accumulators.
        spikes : ndarray of bool, shape (B, n_in)
            The source's spikes delivered this step.
        """
        entry, source = np.nonzero(spikes)
        if not entry.size:
            return
        n_batch = acc.shape[0]
        stride = self.n_out + 1
        scratch = self._scratch.get(n_batch)
        if scratch is None:
            scratch = self._scratch[n_batch] = np.zeros((n_batch, stride), acc.dtype)
        else:
            scratch[...] = 0
        rows = self.row[source]
        index = self.targets[rows]
        index += (entry * stride)[:, np.newaxis]
        # np.add.at adds every (index, weight) pair, repeated indices included, in integers.
        np.add.at(scratch.reshape(-1), index.reshape(-1), self.weights[rows].reshape(-1))
        acc += scratch[:, : self.n_out]
