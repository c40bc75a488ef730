"""The NumPy golden model of a whole network (``docs/network.md``).

Populations are stepped with :func:`~.golden.membrane_update` (after
:func:`~.golden.synaptic_update` for a population with a synaptic current), the in-place forms of
:func:`~.golden.lif_step` and :func:`~.golden.cuba_lif_step`.
A projection from an earlier population delivers that population's spikes of the same timestep;
one from the same or a later population (``Projection.recurrent``) delivers the spikes of the
previous timestep (none at the first).

The spec evaluates every population once per timestep, in list order. The spikes are the same in
any order that computes a population's step after those of its sources' delivered steps, and the
run takes a faster one (:func:`_stages`): a population on no cycle of projections is computed
*a layer at a time*. Once its sources' spikes are known for a chunk of timesteps, its input sums
of several of those steps are made at once, one delivery per projection (the spikes of a
next-step projection shifted by one step), and then its neurons step through them. The
populations on cycles, and those between two cycles, are stepped together in list order, one
timestep at a time, as the spec reads. ``tests/test_golden_layers.py`` checks both ways against
each other.
"""

from typing import NamedTuple

import numpy as np

from ..gen.network_conv import ConvProjection
from ..gen.spike_io import NetworkRun, check_input_spikes
from .golden import cast_params, membrane_update, param_arrays, synaptic_update, work_dtype
from .golden_conv import ConvDelivery

__all__ = ["run_network", "EVENT_FRACTION"]

# In a batch, a projection adds one gathered weight row per source spike when no batch entry
# has more than this fraction of the source spiking in a step (a layer: when the chunk's spikes
# are at most this fraction of its sources); above it the dense product is as cheap (measured on
# the 256 -> 1,024 network of ``docs/performance.md``: about equal near a third, the event sums
# several times faster at 2% activity). Both give the same exact sums. A single run's step
# always sums the rows of its spiking sources.
EVENT_FRACTION = 0.25

# A layer's dense product of at most this many multiply-adds (about 0.1 ms) takes less time than
# building its event lists, whatever the activity.
_DENSE_MAX = 1 << 20

# A layer's dense projections are summed over the whole chunk at once when its accumulators have
# at most this many elements (1 MB of int32, the size of a core's L2 cache here), else a step at
# a time, so that the event rows' adds stay in cache (at batch 64 on the 256 -> 1,024 network of
# the Brian2 comparison, 1,000 steps: 0.25 s against 0.35 s for the whole chunk).
_LAYER_SUMS_MAX = 1 << 18

# Timesteps per chunk: at most _CHUNK_STEPS, and at most _CHUNK_SPIKES spikes of the largest
# population (16 MB of bool), whatever the batch.
_CHUNK_STEPS = 256
_CHUNK_SPIKES = 1 << 24
# A layer's sums over several steps at once (its conv projections, and dense ones within
# _LAYER_SUMS_MAX) are made for at most this many accumulator elements at a time (4 MB of int32):
# a scatter into larger ones misses the cache (at batch 64 on the NIR CNN of bench/conv.py, the
# 2.1 M-element sums of 8 steps took 1.5 times as long per step as those of 4).
_CHUNK_ELEMENTS = 1 << 20


def run_network(net, spikes, trace=False, layers=True):
    """Run ``net`` on input spikes with the golden model.

    Parameters
    ----------
    net : spikeforge.gen.network.Network
    spikes : array_like of 0/1, shape (T, n_in) or (B, T, n_in)
        Input spikes; columns are the input populations in their order.
    trace : bool
        Also record the membrane trace of every LIF neuron.
    layers : bool
        Compute the populations on no cycle a layer at a time (the default, and faster); False
        steps every population in every timestep, in list order. Both give the same run.

    Returns
    -------
    NetworkRun
    """
    inputs = check_input_spikes(spikes, net.n_inputs)
    batched = inputs.ndim == 3
    if not batched:
        inputs = inputs[np.newaxis]
    n_batch, n_steps, _ = inputs.shape
    # Time-major bool: a step's spikes are one contiguous block, on which np.nonzero is several
    # times faster than on a strided uint8 view.
    inputs = np.ascontiguousarray(inputs.transpose(1, 0, 2), bool)
    run = _Run(net, n_batch, n_steps, trace)
    stages = _stages(net) if layers else [(False, [p.name for p in net.lif_populations])]
    largest = max(p.size for p in net.populations)
    chunk = max(1, min(_CHUNK_STEPS, _CHUNK_SPIKES // (n_batch * largest)))
    for t0 in range(0, n_steps, chunk):
        run.start_chunk(inputs[t0 : t0 + chunk], t0)
        for layered, names in stages:
            if layered:
                run.layer(names[0])
            else:
                run.steps(names)
        run.end_chunk()

    out, traces = run.out, run.traces
    if not batched:
        out = {name: array[0] for name, array in out.items()}
        traces = {name: array[0] for name, array in traces.items()}
    return NetworkRun(spikes=out, v=traces, cycles=None)


def _stages(net):
    """The order of a run: ``(True, [name])`` for a population computed a layer at a time,
    ``(False, names)`` for populations stepped together one timestep at a time.

    A population on a cycle of projections (a self-projection included) needs its own spikes
    of the previous step, and so do the populations between two cycles, through both: these
    are stepped together, in list order. The others are layers: first those that depend on no
    cycle, then the stepped ones, then the rest, each after its sources.
    """
    lif = [p.name for p in net.lif_populations]
    if not any(proj.recurrent for proj in net.projections):
        # Every cycle has a projection to the same or an earlier population: with none, the
        # list order is an order of layers, sources first.
        return [(True, [name]) for name in lif]
    # Only LIF populations have inputs: an input population is on no cycle and between none.
    targets = {name: set() for name in lif}
    for proj in net.projections:
        if proj.source in targets:
            targets[proj.source].add(proj.target)
    reach = {name: _reachable(name, targets) for name in lif}
    cyclic = {name for name in lif if name in reach[name]}
    if len(cyclic) == len(lif):
        return [(False, lif)]
    # Upstream of a cycle: a cycle is reachable from it; downstream: it is reachable from one.
    upstream = {name for name in lif if cyclic & (reach[name] | {name})}
    downstream = {name for name in lif if any(name in reach[c] for c in cyclic)} | cyclic
    stepped = [n for n in lif if n in upstream and n in downstream]
    first = [n for n in lif if n not in downstream]
    last = [n for n in lif if n in downstream and n not in stepped]
    sources = {name: set() for name in lif}
    for proj in net.projections:
        sources[proj.target].add(proj.source)
    stages = [(True, [n]) for n in _sources_first(first, sources)]
    if stepped:
        stages.append((False, stepped))
    return stages + [(True, [n]) for n in _sources_first(last, sources)]


def _reachable(name, targets):
    """The populations that a path of one or more projections leads to from ``name``."""
    seen, todo = set(), list(targets[name])
    while todo:
        node = todo.pop()
        if node not in seen:
            seen.add(node)
            todo.extend(targets[node])
    return seen


def _sources_first(names, sources):
    """``names`` (on no cycle), each after those of its sources that are among them; list order
    where that leaves a choice."""
    order, todo = [], list(names)
    while todo:
        name = next(n for n in todo if not sources[n] & set(todo))
        todo.remove(name)
        order.append(name)
    return order


class _Run:
    """The state of one run of :func:`run_network` and the spikes of the current chunk.

    ``chunk[name]`` holds a population's spikes of the chunk's steps, time-major ``(L, B, n)``,
    once computed; ``last[name]`` its spikes of the step before the chunk (none before the
    first).
    """

    def __init__(self, net, n_batch, n_steps, trace):
        self.net = net
        # Sums, state and parameters all in one integer type, so that no operation converts.
        self.dtype = dtype = work_dtype(net.v_width, net.required_acc_width())
        # A convolution scatters its kernel taps (golden_conv.py); a pooled dense projection is
        # its unrolled matrix, and then a dense one like any other.
        self.convs = {
            i: ConvDelivery(proj, dtype)
            for i, proj in enumerate(net.projections)
            if isinstance(proj, ConvProjection) and proj.geometry.conv
        }
        self.weights = [
            None if i in self.convs else _dense_weights(proj, dtype)
            for i, proj in enumerate(net.projections)
        ]
        self.pops = {pop.name: pop for pop in net.populations}
        self.incoming = {
            pop.name: [(i, p) for i, p in enumerate(net.projections) if p.target == pop.name]
            for pop in net.lif_populations
        }
        # The refractory counters in the narrowest unsigned type that holds t_ref.
        counter = {pop.name: np.min_scalar_type(pop.params.t_ref) for pop in net.lif_populations}
        self.params = {
            pop.name: cast_params(_population_params(pop), dtype)._replace(
                t_ref=np.asarray(pop.params.t_ref, counter[pop.name])
            )
            for pop in net.lif_populations
        }
        self.has_bias = {pop.name: bool(np.count_nonzero(pop.bias)) for pop in net.lif_populations}
        shape = {pop.name: (n_batch, pop.size) for pop in net.populations}
        self.v = {
            p.name: np.broadcast_to(p.column("v_rest"), shape[p.name]).astype(dtype)
            for p in net.lif_populations
        }
        self.r = {p.name: np.zeros(shape[p.name], counter[p.name]) for p in net.lif_populations}
        self.i_syn = {
            p.name: np.zeros(shape[p.name], dtype) for p in net.lif_populations if p.params.synaptic
        }
        self.last = {p.name: np.zeros(shape[p.name], bool) for p in net.populations}
        self.out = {
            p.name: np.zeros((n_batch, n_steps, p.size), np.uint8) for p in net.lif_populations
        }
        self.traces = (
            {p.name: np.zeros((n_batch, n_steps, p.size), np.int64) for p in net.lif_populations}
            if trace
            else {}
        )
        self.slices = {pop.name: net.input_slice(pop.name) for pop in net.input_populations}
        # The populations that no projection leaves: their spikes go straight into ``out``.
        self.sinks = {p.name for p in net.lif_populations} - {p.source for p in net.projections}
        self.chunk, self.t0 = {}, 0

    def start_chunk(self, inputs, t0):
        """Begin the chunk of steps from ``t0`` on: ``inputs`` ``(L, B, n_in)``."""
        self.t0 = t0
        self.chunk = {
            name: np.ascontiguousarray(inputs[:, :, part]) for name, part in self.slices.items()
        }
        n_steps, n_batch = inputs.shape[:2]
        for pop in self.net.lif_populations:
            if pop.name in self.sinks:
                # A time-major view of ``out`` (bool and uint8 share their layout): each step's
                # spikes are written once, where they end.
                part = self.out[pop.name][:, t0 : t0 + n_steps]
                self.chunk[pop.name] = part.transpose(1, 0, 2).view(bool)
            else:
                self.chunk[pop.name] = np.empty((n_steps, n_batch, pop.size), bool)

    def end_chunk(self):
        """Record the chunk's spikes."""
        n_steps = next(iter(self.chunk.values())).shape[0]
        for name, spikes in self.chunk.items():
            self.last[name] = spikes[-1]
            if name in self.out and name not in self.sinks:
                self.out[name][:, self.t0 : self.t0 + n_steps] = spikes.transpose(1, 0, 2)

    def _at(self, name, step):
        """The spikes of population ``name`` at ``step`` of the chunk (-1: the step before)."""
        return self.last[name] if step < 0 else self.chunk[name][step]

    def _delivered(self, proj):
        """The spikes ``proj`` delivers in the chunk's steps: its source's, one step late if it
        delivers in the next step."""
        spikes = self.chunk[proj.source]
        if not proj.recurrent:
            return spikes
        return np.concatenate((self.last[proj.source][np.newaxis], spikes[:-1]))

    def layer(self, name):
        """Compute population ``name`` over the chunk: its sources' spikes must be known."""
        n_steps, n_batch, size = self.chunk[name].shape
        whole, by_step = [], []
        for i, proj in self.incoming[name]:
            source = self._delivered(proj)
            if i in self.convs or n_steps * n_batch * size <= _LAYER_SUMS_MAX:
                whole.append((i, source))
            else:
                by_step.append((i, source, _event_slots(source)))
        part = max(1, _CHUNK_ELEMENTS // (n_batch * size)) if whole else n_steps
        for first in range(0, n_steps, part):
            last = min(n_steps, first + part)
            # Without sums of several steps, one step's accumulators, reused: they stay in cache.
            acc = np.zeros((last - first if whole else 1, n_batch, size), self.dtype)
            for i, source in whole:
                rows = source[first:last]
                self._deliver(acc.reshape(-1, size), i, rows.reshape(acc.shape[0] * n_batch, -1))
            for step in range(first, last):
                step_acc = acc[step - first] if whole else acc[0]
                if not whole and step:
                    step_acc[...] = 0
                for i, source, events in by_step:
                    self._deliver(step_acc, i, source[step], events, step)
                self._neurons(name, step_acc, step)

    def steps(self, names):
        """Step populations ``names`` together through the chunk, one timestep at a time, in
        list order."""
        n_steps, n_batch = next(iter(self.chunk.values())).shape[:2]
        # The event lists of the dense projections from sources computed before, for the whole
        # chunk: one set of NumPy calls instead of one per step.
        dense = [
            (i, proj)
            for name in names
            for i, proj in self.incoming[name]
            if n_batch > 1 and i not in self.convs
        ]
        events = {i: _event_slots(self._delivered(p)) for i, p in dense if p.source not in names}
        accs = {name: np.empty((n_batch, self.pops[name].size), self.dtype) for name in names}
        # Per population: (projection, source, 1 if it delivers in the next step else 0).
        incoming = {
            name: [(i, p.source, int(p.recurrent)) for i, p in self.incoming[name]]
            for name in names
        }
        for step in range(n_steps):
            for name in names:
                acc = accs[name]
                acc[...] = 0
                for i, source, delay in incoming[name]:
                    source = (
                        self.chunk[source][step - delay] if step >= delay else self.last[source]
                    )
                    if i in events:
                        self._deliver(acc, i, source, events[i], step)
                    elif i in self.convs:
                        self.convs[i].add(acc, source)
                    elif n_batch == 1:
                        # The rows of the spiking sources, summed: never more work than the
                        # dense product, and fewer calls than the batch path.
                        rows = self.weights[i][np.flatnonzero(source[0])]
                        acc[0] += rows.sum(axis=0, dtype=self.dtype)
                    else:
                        self._deliver(acc, i, source, _event_slots(source[np.newaxis]))
                self._neurons(name, acc, step)

    def _deliver(self, acc, i, source, events=None, step=0):
        """``acc += `` the sums of projection ``i`` from the delivered ``source`` spikes, one
        row per batch entry (and step).

        ``events`` are those of a timestep's spikes, at ``step`` (:func:`_event_slots`); a
        dense projection of a step of a batch must have them. Without them ``source`` is a
        layer's chunk, whose rows are summed in one go.
        """
        if i in self.convs:
            self.convs[i].add(acc, source)
            return
        weights = self.weights[i]
        if events is None:
            # A layer's chunk: the same choice over all its steps and entries at once, and the
            # dense product for a small one.
            if (
                source.size * weights.shape[1] > _DENSE_MAX
                and np.count_nonzero(source) <= EVENT_FRACTION * source.size
            ):
                _add_event_rows(acc, weights, _event_slots(source[np.newaxis]), 0)
                return
        elif events.busiest[step] <= EVENT_FRACTION * source.shape[1]:
            _add_event_rows(acc, weights, events, step)
            return
        # einsum runs its own loop, not BLAS: as fast for these shapes, and free of BLAS
        # threads, which crawl when the cores are shared.
        acc += np.einsum("bi,ij->bj", source.astype(weights.dtype), weights)

    def _neurons(self, name, acc, step):
        """One step of population ``name``'s neurons with input sums ``acc`` (scratch)."""
        p = self.params[name]
        if self.has_bias[name]:
            acc += p.bias
        if name in self.i_syn:
            synaptic_update(self.i_syn[name], acc, p)
        # The previous step's spikes are the resets still pending under reset_timing "next".
        spike = self.chunk[name][step]
        membrane_update(self.v[name], self.r[name], acc, p, self._at(name, step - 1), spike)
        if self.traces:
            self.traces[name][:, self.t0 + step] = np.where(spike, p.v_peak, self.v[name])


def _population_params(pop):
    """The ``ParamArrays`` of LIF population ``pop``: scalars, or with per-neuron values
    (``docs/network.md``) one entry per neuron; the bias always per neuron."""
    if pop.per_neuron:
        return param_arrays(pop.neuron_params())._replace(bias=pop.bias)
    return param_arrays(pop.params)._replace(bias=pop.bias)


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
