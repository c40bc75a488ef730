"""The NumPy golden model of a whole network (``docs/network.md``).

Populations are stepped in evaluation order inside each timestep with
:func:`~.golden.membrane_update` (after :func:`~.golden.synaptic_update` for a population with a
synaptic current), the in-place forms of :func:`~.golden.lif_step` and
:func:`~.golden.cuba_lif_step`.
A projection from an earlier population delivers that population's spikes of the same timestep;
one from the same or a later population (``Projection.recurrent``) delivers the spikes of the
previous timestep (none at the first).
"""

from typing import NamedTuple

import numpy as np

from ..gen.network_conv import ConvProjection
from ..gen.spike_io import NetworkRun, check_input_spikes
from .golden import cast_params, membrane_update, param_arrays, synaptic_update, work_dtype
from .golden_conv import ConvDelivery

__all__ = ["run_network", "EVENT_FRACTION"]

# In a batch, a projection adds one gathered weight row per source spike when no batch entry
# has more than this fraction of the source spiking in a step; above it the dense product is as
# cheap (measured on the 256 -> 1,024 network of ``docs/performance.md``: about equal near a
# third, the event sums several times faster at 2% activity). Both give the same exact sums. A
# single run always sums the rows of its spiking sources.
EVENT_FRACTION = 0.25

# The event lists of the input spikes are built for this many steps at once: one set of NumPy
# calls instead of one per step, in memory bounded by the chunk.
EVENT_CHUNK = 64


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
    inputs = check_input_spikes(spikes, net.n_inputs)
    batched = inputs.ndim == 3
    if not batched:
        inputs = inputs[np.newaxis]
    n_batch, n_steps, _ = inputs.shape
    # Time-major bool: a step's spikes are one contiguous block, on which np.nonzero (once per
    # population and step) is several times faster than on a strided uint8 view.
    inputs = np.ascontiguousarray(inputs.transpose(1, 0, 2), bool)

    # Sums, state and parameters all in one integer type, so that no operation converts.
    dtype = work_dtype(net.v_width, net.required_acc_width())
    # A convolution scatters its kernel taps (golden_conv.py); a pooled dense projection is its
    # unrolled matrix, and then a dense one like any other.
    convs = {
        i: ConvDelivery(proj, dtype)
        for i, proj in enumerate(net.projections)
        if isinstance(proj, ConvProjection) and proj.geometry.conv
    }
    weights = [
        None if i in convs else _dense_weights(proj, dtype)
        for i, proj in enumerate(net.projections)
    ]
    # One accumulator per population, reused every step.
    accs = {pop.name: np.empty((n_batch, pop.size), dtype) for pop in net.lif_populations}
    incoming = {
        pop.name: [(i, proj) for i, proj in enumerate(net.projections) if proj.target == pop.name]
        for pop in net.lif_populations
    }
    # The refractory counters in the narrowest unsigned type that holds t_ref.
    counter = {pop.name: np.min_scalar_type(pop.params.t_ref) for pop in net.lif_populations}
    params = {
        pop.name: cast_params(param_arrays(pop.params)._replace(bias=pop.bias), dtype)._replace(
            t_ref=np.asarray(pop.params.t_ref, counter[pop.name])
        )
        for pop in net.lif_populations
    }

    v = {
        pop.name: np.full((n_batch, pop.size), pop.params.v_rest, dtype)
        for pop in net.lif_populations
    }
    r = {pop.name: np.zeros((n_batch, pop.size), counter[pop.name]) for pop in net.lif_populations}
    i_syn = {
        pop.name: np.zeros((n_batch, pop.size), dtype)
        for pop in net.lif_populations
        if pop.params.synaptic
    }
    previous = {pop.name: np.zeros((n_batch, pop.size), bool) for pop in net.populations}
    out = {
        pop.name: np.zeros((n_batch, n_steps, pop.size), np.uint8) for pop in net.lif_populations
    }
    traces = (
        {pop.name: np.zeros((n_batch, n_steps, pop.size), np.int64) for pop in net.lif_populations}
        if trace
        else {}
    )
    slices = {pop.name: net.input_slice(pop.name) for pop in net.input_populations}
    has_bias = {pop.name: bool(np.count_nonzero(pop.bias)) for pop in net.lif_populations}

    events = {}
    for t in range(n_steps):
        if n_batch > 1 and t % EVENT_CHUNK == 0:
            events = {
                name: _event_slots(inputs[t : t + EVENT_CHUNK, :, part])
                for name, part in slices.items()
            }
        current = {}
        for pop in net.populations:
            if pop.kind == "input":
                current[pop.name] = inputs[t, :, slices[pop.name]]
                continue
            acc = accs[pop.name]
            acc[...] = 0
            for i, proj in incoming[pop.name]:
                source = (previous if proj.recurrent else current)[proj.source]
                if i in convs:
                    convs[i].add(acc, source)
                    continue
                if n_batch == 1:
                    # The rows of the spiking sources, summed: never more work than the
                    # dense product, and fewer calls than the batch path below.
                    acc[0] += weights[i][np.flatnonzero(source[0])].sum(axis=0, dtype=dtype)
                    continue
                if proj.source in events and not proj.recurrent:
                    ev, step = events[proj.source], t % EVENT_CHUNK
                else:
                    ev, step = _event_slots(source[np.newaxis]), 0
                if ev.busiest[step] <= EVENT_FRACTION * source.shape[1]:
                    _add_event_rows(acc, weights[i], ev, step)
                else:
                    # einsum runs its own loop, not BLAS: as fast for these shapes, and free of
                    # BLAS threads, which crawl when the cores are shared.
                    acc += np.einsum("bi,ij->bj", source.astype(weights[i].dtype), weights[i])
            p = params[pop.name]
            if has_bias[pop.name]:
                acc += p.bias
            if pop.params.synaptic:
                synaptic_update(i_syn[pop.name], acc, p)
            # The previous step's spikes are the resets still pending under reset_timing "next".
            spike = membrane_update(v[pop.name], r[pop.name], acc, p, previous[pop.name])
            current[pop.name] = spike
            out[pop.name][:, t] = spike
            if trace:
                traces[pop.name][:, t] = np.where(spike, p.v_peak, v[pop.name])
        previous = current

    if not batched:
        out = {name: array[0] for name, array in out.items()}
        traces = {name: array[0] for name, array in traces.items()}
    return NetworkRun(spikes=out, v=traces, cycles=None)


def _dense_weights(proj, dtype):
    """The matrix ``(size of source, size of target)`` of a dense projection, in the type of
    :func:`_row_dtype`."""
    matrix = proj.dense() if isinstance(proj, ConvProjection) else proj.weights
    return matrix.astype(_row_dtype(matrix, dtype))


def _row_dtype(weights, dtype):
    """int16 when every sum of a subset of a column of ``weights`` fits it, else ``dtype``.

    Such a projection's weight rows are gathered and summed in int16: half the bytes of int32,
    and the gathering is most of a batch's time on a sparse network.
    """
    lo, hi = np.iinfo(np.int16).min, np.iinfo(np.int16).max
    fits = (
        np.minimum(weights, 0).sum(axis=0).min(initial=0) >= lo
        and np.maximum(weights, 0).sum(axis=0).max(initial=0) <= hi
    )
    return np.int16 if fits else dtype


class _Events(NamedTuple):
    """The spiking sources of every batch entry of ``T`` steps (:func:`_event_slots`)."""

    order: np.ndarray  # (T, B): the batch entries by decreasing spike count, ties by index
    active: np.ndarray  # (T, k): how many entries have more than j spikes
    busiest: np.ndarray  # (T,): the largest spike count of an entry
    sources: np.ndarray  # the spiking sources, by step, then slot j, then entry (in order)
    start: np.ndarray  # (T + 1,): where each step begins in ``sources``


def _event_slots(spikes):
    """The spiking sources of every batch entry of every step, the busiest entries first.

    Parameters
    ----------
    spikes : array of bool, shape (T, B, n)

    Returns
    -------
    _Events
        Slot ``j`` of step ``t`` lists the ``j``-th spiking source (in increasing order) of
        the first ``active[t, j]`` entries of ``order[t]``.
    """
    n_steps, n_batch, n = spikes.shape
    # np.nonzero of a 3-D array is several times slower than of the flat one.
    step_entry, source = np.divmod(np.flatnonzero(spikes), n)
    counts = np.bincount(step_entry, minlength=n_steps * n_batch)
    # Slot of each spike: its index minus the index of its entry's first spike.
    slot = np.arange(step_entry.size) - np.repeat(np.cumsum(counts) - counts, counts)
    counts = counts.reshape(n_steps, n_batch)
    order = np.argsort(-counts, axis=1, kind="stable")
    rank = np.empty_like(order)
    np.put_along_axis(rank, order, np.broadcast_to(np.arange(n_batch), order.shape), axis=1)
    busiest = counts.max(axis=1)
    width = int(busiest.max(initial=0))
    step, entry = np.divmod(step_entry, n_batch)
    by_slot = np.argsort((step * width + slot) * n_batch + rank[step, entry], kind="stable")
    # active[t, j] = entries with a count above j: a histogram of the counts, summed from the top.
    histogram = np.bincount(
        (np.arange(n_steps)[:, np.newaxis] * (width + 1) + counts).ravel(),
        minlength=n_steps * (width + 1),
    ).reshape(n_steps, width + 1)
    active = np.cumsum(histogram[:, :0:-1], axis=1)[:, ::-1]
    start = np.concatenate(([0], np.cumsum(counts.sum(axis=1))))
    return _Events(order, active, busiest, source[by_slot], start)


def _add_event_rows(acc, weights, events, step):
    """``acc += `` the weight rows of the spiking sources of ``events`` at ``step``.

    The rows are gathered in one call, slot by slot; slot ``j`` adds its rows to the sums of
    the first ``active[j]`` entries (sorted busiest first), so every row added is a spike's.
    """
    busiest = events.busiest[step]
    if not busiest:
        return
    active = events.active[step]
    rows = weights[events.sources[events.start[step] : events.start[step + 1]]]
    total = rows[: active[0]]
    offset = active[0]
    for j in range(1, busiest):
        total[: active[j]] += rows[offset : offset + active[j]]
        offset += active[j]
    acc[events.order[step, : active[0]]] += total
