"""The NumPy golden model of a whole network (``docs/network.md``).

Populations are stepped in evaluation order inside each timestep with :func:`~.golden.lif_step`
(or :func:`~.golden.cuba_lif_step` for a population with a synaptic current).
A projection from an earlier population delivers that population's spikes of the same timestep;
one from the same or a later population (``Projection.recurrent``) delivers the spikes of the
previous timestep (none at the first).
"""

from dataclasses import dataclass, field

import numpy as np

__all__ = ["NetworkRun", "run_network", "FLOAT_EXACT_ACC_WIDTH", "EVENT_FRACTION"]

# A float64 holds every integer of magnitude <= 2**53. With 0/1 spikes every partial sum of a
# weight product is a sum of a subset of one neuron's incoming weights, so it lies in
# [sum of negatives, sum of positives] and is exact when the accumulator fits this width;
# wider networks are summed in int64.
FLOAT_EXACT_ACC_WIDTH = 54

# In a batch, a projection adds one gathered weight row per source spike when no batch entry
# has more than this fraction of the source spiking in a step; above it the dense product is as
# cheap (measured on the 256 -> 1,024 network of ``docs/performance.md``: about equal near a
# third, the event sums several times faster at 2% activity). Both give the same exact sums. A
# single run always sums the rows of its spiking sources.
EVENT_FRACTION = 0.25


@dataclass
class NetworkRun:
    """Result of a network run; arrays are ``(T, size)`` or ``(B, T, size)`` like the input.

    Attributes
    ----------
    spikes : dict of str to uint8 ndarray
        0/1 spikes of every LIF population.
    v : dict of str to int64 ndarray
        Observable membrane traces (``docs/neuron.md``) of every LIF population; empty unless
        traces were asked for.
    cycles : ndarray of int64, shape (T,) or (B, T), or None
        Clock cycles per timestep, from hardware back-ends; None for the golden model.
    """

    spikes: dict
    v: dict = field(default_factory=dict)
    cycles: np.ndarray | None = None

    def save(self, path):
        """Write the result ``.npz`` (:func:`spikeforge.gen.spike_io.save_outputs`)."""
        from ..gen.spike_io import save_outputs
        save_outputs(path, self.spikes, self.v, self.cycles)


def run_network(net, spikes, trace=False):
    """Run ``net`` on input spikes with the golden model.

    Parameters
    ----------
    net : spikeforge.gen.network.Network
    spikes : array_like of 0/1, shape (T, n_in) or (B, T, n_in)
        Input spikes; columns are the input populations in their order.
    trace : bool
        Also record the membrane trace of every LIF neuron.

    Returns
    -------
    NetworkRun
    """
    # Imported here: sim.golden re-exports this function; a module-level import would be circular.
    from .golden import cuba_lif_step, lif_step, param_arrays
    from ..gen.spike_io import check_input_spikes

    inputs = check_input_spikes(spikes, net.n_inputs)
    batched = inputs.ndim == 3
    if not batched:
        inputs = inputs[np.newaxis]
    n_batch, n_steps, _ = inputs.shape

    exact_in_float = net.required_acc_width() <= FLOAT_EXACT_ACC_WIDTH
    dtype = np.float64 if exact_in_float else np.int64
    weights = [proj.weights.astype(dtype) for proj in net.projections]
    # Buffers reused every step: one accumulator per population; per projection, the event sums
    # of the batch entries and one gathered row block.
    accs = {pop.name: np.empty((n_batch, pop.size), dtype) for pop in net.lif_populations}
    sums = [np.empty((n_batch, w.shape[1]), dtype) for w in weights]
    rows = [np.empty((n_batch, w.shape[1]), dtype) for w in weights]
    incoming = {pop.name: [(i, proj) for i, proj in enumerate(net.projections)
                           if proj.target == pop.name] for pop in net.lif_populations}
    params = {pop.name: param_arrays(pop.params)._replace(bias=pop.bias)
              for pop in net.lif_populations}

    v = {pop.name: np.broadcast_to(np.int64(pop.params.v_rest), (n_batch, pop.size)).copy()
         for pop in net.lif_populations}
    r = {pop.name: np.zeros((n_batch, pop.size), np.int64) for pop in net.lif_populations}
    i_syn = {pop.name: np.zeros((n_batch, pop.size), np.int64) for pop in net.lif_populations
             if pop.params.synaptic}
    previous = {pop.name: np.zeros((n_batch, pop.size), dtype) for pop in net.populations}
    out = {pop.name: np.zeros((n_batch, n_steps, pop.size), np.uint8)
           for pop in net.lif_populations}
    traces = ({pop.name: np.zeros((n_batch, n_steps, pop.size), np.int64)
               for pop in net.lif_populations} if trace else {})
    slices = {pop.name: net.input_slice(pop.name) for pop in net.input_populations}

    for t in range(n_steps):
        current = {}
        for pop in net.populations:
            if pop.kind == "input":
                current[pop.name] = inputs[:, t, slices[pop.name]].astype(dtype)
                continue
            acc = accs[pop.name]
            acc[...] = 0
            for i, proj in incoming[pop.name]:
                source = (previous if proj.recurrent else current)[proj.source]
                if n_batch == 1:
                    # The rows of the spiking sources, summed: never more work than the
                    # dense product, and fewer calls than the batch path below.
                    acc[0] += weights[i][np.flatnonzero(source[0])].sum(axis=0)
                    continue
                order, slots, active = _event_slots(source)
                if slots.shape[1] <= EVENT_FRACTION * source.shape[1]:
                    if slots.shape[1]:
                        # Slot j adds the j-th spike's row of the first active[j] entries
                        # (sorted busiest first), so every row added is a spike's.
                        total = sums[i][:active[0]]
                        np.take(weights[i], slots[:active[0], 0], axis=0, out=total)
                        for column, m in zip(slots.T[1:], active[1:]):
                            total[:m] += np.take(weights[i], column[:m], axis=0,
                                                 out=rows[i][:m])
                        acc[order[:active[0]]] += total
                else:
                    # einsum runs its own loop, not BLAS: as fast for these shapes, and free of
                    # BLAS threads, which crawl when the cores are shared.
                    acc += np.einsum("bi,ij->bj", source, weights[i])
            if pop.params.synaptic:
                v[pop.name], i_syn[pop.name], r[pop.name], spike, tr = cuba_lif_step(
                    v[pop.name], i_syn[pop.name], r[pop.name], acc.astype(np.int64),
                    params[pop.name])
            else:
                v[pop.name], r[pop.name], spike, tr = lif_step(
                    v[pop.name], r[pop.name], acc.astype(np.int64), params[pop.name])
            current[pop.name] = spike.astype(dtype)
            out[pop.name][:, t] = spike
            if trace:
                traces[pop.name][:, t] = tr
        previous = current

    if not batched:
        out = {name: array[0] for name, array in out.items()}
        traces = {name: array[0] for name, array in traces.items()}
    return NetworkRun(spikes=out, v=traces, cycles=None)


def _event_slots(spikes):
    """The spiking sources of every batch entry, the busiest entries first.

    Parameters
    ----------
    spikes : array of 0/1, shape (B, n)

    Returns
    -------
    order : ndarray of intp, shape (B,)
        The batch entries by decreasing spike count (ties in index order).
    slots : ndarray of intp, shape (B, k)
        Row ``i`` lists the spiking sources of entry ``order[i]`` in increasing order, then
        zeros; ``k`` is the largest spike count of an entry.
    active : ndarray of intp, shape (k,)
        ``active[j]``: how many entries have more than ``j`` spikes (the rows of column ``j``
        that hold a source).
    """
    entry, source = np.nonzero(spikes)
    counts = np.bincount(entry, minlength=spikes.shape[0])
    order = np.argsort(-counts, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    slots = np.zeros((spikes.shape[0], counts.max(initial=0)), np.intp)
    # Position of each spike within its entry: its index minus the index of the entry's first.
    first = np.repeat(np.cumsum(counts) - counts, counts)
    slots[rank[entry], np.arange(entry.size) - first] = source
    active = np.count_nonzero(counts[:, np.newaxis] > np.arange(slots.shape[1]), axis=0)
    return order, slots, active
