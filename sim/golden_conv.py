"""Event-driven convolution for the golden model (``docs/network.md``, "Convolutions").

A step of a ``conv1d``/``conv2d`` projection adds, to every target, the weights of the kernel
taps that reach it from this step's spikes (the sum pool is linear, so a spike simply acts at
its window's position). :class:`ConvDelivery` has two ways to compute the same sums and takes
the cheaper one for each step:

- *scatter*, for sparse steps: each spike looks up its row of a fan-out table built once from
  :meth:`~spikeforge.gen.network_conv.ConvGeometry.fanout` and adds the row's weights to the
  row's targets;
- *window sums*, for busy steps: the spikes of 8 channels at one pooled position form a byte
  (of 16 channels, two bytes, when there are more than 8), which looks up the sums of those
  channels' weights for every tap and output channel in a 256-row (65,536-row) table; the taps
  are then shifted into place over whole arrays, once per tap. A
  busy layer thus costs a few passes over arrays of the size of its output, independent of
  how many of its inputs spiked, where the scatter costs several operations per synapse.

Where the C++ compiler is available, a compiled kernel (``golden_conv_kernel.cpp``, loaded by
:mod:`.golden_conv_native`) computes the same sums instead, spike by spike, in the
accumulator's type or in int16 where every partial sum fits it; the two ways above stay the reference, and the fallback where it cannot be
built or ``SPIKEFORGE_CONV_KERNEL=numpy`` is set.

Both are integer additions (no floating point), in the accumulator's type or, where every sum
fits, in int16; ``tests/test_conv_golden.py`` checks both against the unrolled dense matrix.
Every partial sum that ends in a target is a sum of a subset of that neuron's synapses (each
counted at most once per spike of its window), so it lies in the range the accumulator width
was sized for; the window-sum tables also hold sums that no neuron adds up, bounded by
:func:`_table_bound`, and are used only when that bound fits the type.
"""

import functools
import types

import numpy as np

from .golden_conv_native import conv_kernel

__all__ = ["ConvDelivery"]

# Relative cost per element of the two ways (measured on the NIR CNN of bench/conv.py, batch 64):
# a synapse of the scatter costs about 3 ns (gathers of its target and weight, index
# arithmetic and np.add.at); a gathered table element about 0.2 ns, a shifted tap element about
# 0.6 ns.
_SCATTER_COST = 3.0
_GATHER_COST = 0.2
_SHIFT_COST = 0.6
# Tables larger than this (in elements, 32 MB of int16) would not stay in cache: such a
# projection scatters. A 16-bit key's table is that large, but the keys of spikes at a few
# percent have a bit or two set: the rows read are a few hundred.
_TABLE_MAX = 1 << 24
# The tap sums of the window-sum way, and the synapses of the scatter, are computed for this many
# elements at most at a time (a few megabytes, whatever the layer's size).
_SUMS_MAX = 1 << 20


class ConvDelivery:
    """The fan-out tables of one convolutional projection, and the per-step sums.

    Parameters
    ----------
    proj : spikeforge.gen.network_conv.ConvProjection
        A ``conv1d`` or ``conv2d`` projection.
    dtype : numpy dtype
        The accumulator type of the run.

    Attributes
    ----------
    targets : ndarray of intp, shape (n_pooled + 1, k)
        Row ``q``: the target neurons of a spike at pooled position ``q``, padded with target
        0; row ``n_pooled`` is for dropped spikes (all padding).
    weights : ndarray of dtype, shape (n_pooled + 1, k)
        The matching weights, 0 in the padding (which thus adds nothing to target 0).
    tables : ndarray of dtype, shape (planes, groups of channels, taps x 2**key_bits, O) or None
        The window-sum tables (None where they would not fit the type or the cache).
    key_bits : int
        Channels per group: 16 where more than 8 channels and the tables fit, else 8.
    """

    def __init__(self, proj, dtype):
        self.geometry = geometry = proj.geometry
        self.n_out = geometry.n_out
        self._proj, self.dtype = proj, np.dtype(dtype)
        # Every partial sum of a target lies within its column bounds: where they fit int16,
        # the kernel adds in int16 (half the work), exactly.
        lo, hi = proj.column_bounds(self.n_out)
        small = np.iinfo(np.int16)
        fits = lo.min(initial=0) >= small.min and hi.max(initial=0) <= small.max
        sum_dtype = np.dtype(np.int16) if fits or self.dtype.itemsize == 2 else self.dtype
        self._native = conv_kernel(dtype, sum_dtype)
        if self._native is not None:
            kernel = proj.weights.reshape(_kernel_shape(geometry))
            self._native_args = _native_args(kernel, geometry, geometry.pool_map(), sum_dtype)

    # The NumPy ways' tables are built on first use: the compiled kernel does not need them.
    @functools.cached_property
    def _ways(self):
        """:func:`_numpy_ways` of the projection."""
        return _numpy_ways(self._proj, self.dtype)

    @property
    def targets(self):
        """See the class's attributes."""
        return self._ways.targets

    @property
    def weights(self):
        """See the class's attributes."""
        return self._ways.weights

    @property
    def tables(self):
        """See the class's attributes."""
        return self._ways.tables

    @property
    def key_bits(self):
        """See the class's attributes."""
        return self._ways.key_bits

    def add(self, acc, spikes):
        """``acc += `` the input sums of one step, or of several (a row per batch entry and step).

        Parameters
        ----------
        acc : ndarray, shape (rows, n_out)
            The targets' accumulators.
        spikes : ndarray of bool, shape (rows, n_in)
            The source's spikes delivered in each row's step.
        """
        if self._native is not None and acc.flags.c_contiguous and acc.dtype == self.dtype:
            self.add_native(acc, spikes)
            return
        n_spikes = np.count_nonzero(spikes)
        if not n_spikes:
            return
        if self.tables is not None and (
            n_spikes * self._ways.scatter_cost > acc.shape[0] * self._ways.window_cost
        ):
            self.add_windows(acc, spikes)
        else:
            self.add_scatter(acc, spikes)

    def add_native(self, acc, spikes):
        """:meth:`add` by the compiled kernel (``acc`` C-contiguous, of the accumulator type)."""
        spikes = np.ascontiguousarray(spikes, dtype=np.bool_)
        geometry, where, weights, tap_y, tap_x, scratch = self._native_args
        self._native(
            acc.ctypes.data,
            spikes.ctypes.data,
            acc.shape[0],
            geometry.ctypes.data,
            where.ctypes.data,
            weights.ctypes.data,
            tap_y.ctypes.data,
            tap_x.ctypes.data,
            scratch.ctypes.data,
        )

    def add_scatter(self, acc, spikes):
        """:meth:`add` by scattering every spike's fan-out row, for a bounded number of
        synapses at a time."""
        # np.nonzero of a 2-D array is ten times slower than of the flat one.
        events = np.flatnonzero(spikes)
        chunk = max(1, _SUMS_MAX // self.targets.shape[1])
        for start in range(0, events.size, chunk):
            entry, source = np.divmod(events[start : start + chunk], spikes.shape[1])
            rows = self._ways.row[source]
            index = self.targets[rows]
            index += (entry * self.n_out)[:, np.newaxis]
            # np.add.at adds every (index, weight) pair, repeated indices included, in integers.
            np.add.at(acc.reshape(-1), index.reshape(-1), self.weights[rows].reshape(-1))

    def add_windows(self, acc, spikes):
        """:meth:`add` by the window-sum tables (``tables`` must not be None), a few batch
        entries at a time: the tap sums of one entry are ``taps x Hp x Wp x O`` values."""
        _, hp, wp = self.geometry.pooled
        per_entry = len(self._ways.taps) * hp * wp * self.geometry.out_channels
        chunk = max(1, _SUMS_MAX // per_entry)
        for start in range(0, acc.shape[0], chunk):
            self._add_windows(acc[start : start + chunk], spikes[start : start + chunk])

    def _add_windows(self, acc, spikes):
        """:meth:`add_windows` of some batch entries."""
        g = self.geometry
        n_batch = acc.shape[0]
        c, hp, wp = g.pooled
        o, ho, wo = g.out_shape
        groups = self.tables.shape[1]
        # Spike counts per pooled position, channel-padded to whole keys: (B, bytes, 8, Hp Wp).
        counts = _pooled_counts(spikes.reshape(n_batch, *g.in_shape), g.pool, hp, wp)
        n_bytes = groups * self.key_bits // 8
        if c % self.key_bits:
            padded = np.zeros((n_batch, n_bytes * 8, hp, wp), np.uint8)
            padded[:, :c] = counts
            counts = padded
        counts = counts.reshape(n_batch, n_bytes, 8, hp * wp)
        # Only the bit planes that some count of this step uses.
        planes = int(counts.max()).bit_length()
        if not planes:
            # Every spike fell beyond the last whole pool window.
            return
        bit = np.arange(8, dtype=np.uint8)[:, np.newaxis]
        # sums[tap, b, y, x, o]: the weights of tap ``tap`` of the spikes at pooled (y, x); tap
        # major, so that each tap's shift below reads one contiguous block.
        sums = None
        for plane in range(planes):
            # Bit ``plane`` of every count, 8 channels to a byte (channel k is bit k).
            bits = counts if planes == 1 else (counts >> plane) & 1
            key = np.bitwise_or.reduce(bits << bit, axis=2)
            if self.key_bits == 16:
                # Channels 16 g + 8 .. 16 g + 15 are the high byte.
                key = key.astype(np.uint16)
                key = key[:, 0::2] | (key[:, 1::2] << 8)
            for group in range(groups):
                index = self._ways.tap_rows + key[:, group]
                part = np.take(self.tables[plane, group], index, axis=0)
                sums = part if sums is None else np.add(sums, part, out=sums)
        sums = sums.reshape(len(self._ways.taps), n_batch, hp, wp, o)
        out = np.zeros((n_batch, ho, wo, o), sums.dtype)
        for tap, (out_y, out_x, in_y, in_x) in enumerate(self._ways.taps):
            out[:, out_y, out_x] += sums[tap, :, in_y, in_x]
        view = acc.reshape(n_batch, o, ho, wo)
        view += out.transpose(0, 3, 1, 2)


def _numpy_ways(proj, dtype):
    """The fan-out and window-sum tables of :class:`ConvDelivery`'s NumPy ways, with their
    costs per spike and per batch entry."""
    ways = types.SimpleNamespace()
    geometry = proj.geometry
    n_pooled = geometry.n_pooled
    src, dst, w = proj.synapses()
    counts = np.bincount(src, minlength=n_pooled)
    width = max(int(counts.max(initial=0)), 1)
    # fanout() lists synapses by source: the slot of each is its rank within its source.
    slot = np.arange(src.size) - np.repeat(np.cumsum(counts) - counts, counts)
    ways.targets = np.zeros((n_pooled + 1, width), np.intp)
    ways.weights = np.zeros((n_pooled + 1, width), dtype)
    ways.targets[src, slot] = dst
    ways.weights[src, slot] = w
    pool = geometry.pool_map()
    # Source neuron -> row of the table; spikes beyond the last whole window hit the
    # all-zero row.
    ways.row = np.where(pool >= 0, pool, n_pooled).astype(np.intp)
    kernel = proj.weights.reshape(_kernel_shape(geometry))
    sum_dtype = _sum_dtype(proj.column_bounds(geometry.n_out), kernel, geometry, dtype)
    ways.key_bits = 16 if geometry.in_shape[0] > 8 else 8
    ways.tables = _window_tables(kernel, geometry, sum_dtype, ways.key_bits)
    if ways.tables is None and ways.key_bits == 16:
        ways.key_bits = 8
        ways.tables = _window_tables(kernel, geometry, sum_dtype, ways.key_bits)
    ways.taps = _tap_slices(geometry)
    # Row of tap t's table block: the table of a (plane, group) is (taps x 2**key_bits, O).
    rows = 1 << ways.key_bits
    ways.tap_rows = (np.arange(len(ways.taps), dtype=np.int32) * rows)[:, None, None]
    # Elements of one batch entry's window-sum step: table gathers and tap shifts.
    planes, groups = ways.tables.shape[:2] if ways.tables is not None else (0, 0)
    _, hp, wp = geometry.pooled
    taps = geometry.kernel[0] * geometry.kernel[1]
    ways.window_cost = (
        _GATHER_COST * hp * wp * taps * geometry.out_channels * planes * groups
        + _SHIFT_COST * geometry.n_out * taps
    )
    ways.scatter_cost = _SCATTER_COST * width
    return ways


def _native_args(kernel, geometry, pool, sum_dtype):
    """The arrays of the compiled kernel (``golden_conv_kernel.cpp``, ``add_rows``): geometry;
    per source its channel, pooled row and column and the first output channel of its group;
    weights as ``(C, kh, kw, O/groups)``, columns reversed; the output row (column) of every tap and pooled row
    (column), -1 where none; and the zeroed sums (weights and sums of ``sum_dtype``)."""
    o, cg, kh, kw = kernel.shape
    c, hp, wp = geometry.pooled
    _, ho, wo = geometry.out_shape
    groups = geometry.groups
    og = o // groups
    # Where the taps of a kernel row reach consecutive outputs with all channels, the kernel
    # adds them as one block.
    runs = geometry.stride[1] == geometry.dilation[1] == groups == 1
    fields = (geometry.n_in, geometry.n_out, hp, wp, o, ho, wo, kh, kw, cg, og, runs)
    # weights[c, ky, kw - 1 - kx, j] is kernel[(c // cg) og + j, c % cg, ky, kx].
    grouped = kernel.reshape(groups, og, cg, kh, kw).transpose(0, 2, 3, 4, 1)[:, :, :, ::-1]
    return (
        np.array(fields, np.int64),
        _source_positions(pool, hp, wp, cg, og),
        np.ascontiguousarray(grouped.reshape(c, kh, kw, og)).astype(sum_dtype),
        _tap_targets(kh, hp, ho, geometry.stride[0], geometry.padding[0], geometry.dilation[0]),
        _tap_targets(kw, wp, wo, geometry.stride[1], geometry.padding[1], geometry.dilation[1]),
        np.zeros(geometry.n_out, sum_dtype),
    )


def _source_positions(pool, hp, wp, cg, og):
    """``(n_in, 4)`` int32 from :meth:`pool_map`: channel, row and column of each source's
    pooled position and the first output channel of the channel's group; ``(-1, 0, 0, 0)``
    where the source is dropped."""
    c, rest = np.divmod(pool, hp * wp)
    y, x = np.divmod(rest, wp)
    out = np.stack([c, y, x, c // cg * og], axis=1)
    return np.where(pool[:, np.newaxis] >= 0, out, [-1, 0, 0, 0]).astype(np.int32)


def _tap_targets(k, n_in, n_out, s, p, d):
    """``(k, n_in)`` int32: the output ``y'`` that tap ``ky`` of input ``y`` reaches, where
    ``y = y' s - p + ky d`` (``docs/network.md``), or -1 where none does."""
    y = np.arange(n_in)[np.newaxis] + p - np.arange(k)[:, np.newaxis] * d
    out = y // s
    return np.where((y % s == 0) & (out >= 0) & (out < n_out), out, -1).astype(np.int32)


def _kernel_shape(geometry):
    """The kernel as ``(O, C/groups, kh, kw)`` (a ``conv1d`` kernel has ``kh = 1``)."""
    c = geometry.in_shape[0]
    return (geometry.out_channels, c // geometry.groups, *geometry.kernel)


def _sum_dtype(bounds, kernel, geometry, dtype):
    """int16 when every sum of the window-sum way fits it, else ``dtype``.

    ``bounds`` are the projection's ``(lo, hi)`` per target (:meth:`column_bounds`): every sum
    that ends in a target lies between them; the others are bounded by :func:`_table_bound`.
    int16 halves the bytes of the table gathers and tap shifts, which are most of the
    window-sum way's time.
    """
    lo, hi = bounds
    small = np.iinfo(np.int16)
    fits = (
        lo.min(initial=0) >= small.min
        and hi.max(initial=0) <= small.max
        and _table_bound(kernel, geometry) <= small.max
    )
    return np.dtype(np.int16) if fits else np.dtype(dtype)


def _table_bound(kernel, geometry):
    """The largest magnitude of a table entry and of a sum of entries at one position, tap and
    output channel: a window's count times the sum of ``|w|`` over the input channels."""
    window = geometry.pool[0] * geometry.pool[1]
    return window * int(np.abs(kernel).sum(axis=1).max(initial=0))


def _window_tables(kernel, geometry, dtype, key_bits):
    """The window-sum tables of :class:`ConvDelivery`, or None.

    ``tables[j, g, 2**key_bits tap + key, o]`` is ``2**j`` times the sum of ``kernel[o, c, tap]``
    over the channels ``c = key_bits g + k`` whose bit ``k`` is set in ``key`` (0 where ``c`` is
    not in the group of ``o``); a count ``n`` at a position is the sum of its bits ``2**j``.
    None when a table entry might not fit ``dtype`` or the tables are too large.
    """
    o, cg, kh, kw = kernel.shape
    c = geometry.in_shape[0]
    groups = -(-c // key_bits)
    window = geometry.pool[0] * geometry.pool[1]
    planes = window.bit_length()
    # The counts are uint8 (_pooled_counts).
    if window > 255 or planes * groups * (1 << key_bits) * kh * kw * o > _TABLE_MAX:
        return None
    if _table_bound(kernel, geometry) > np.iinfo(dtype).max:
        return None
    # per_channel[c, tap, o]: the weight of channel c, 0 outside the group of o.
    og = o // geometry.groups
    n_bytes = groups * key_bits // 8
    per_channel = np.zeros((n_bytes * 8, kh * kw, o), np.int64)
    flat = kernel.reshape(o, cg, kh * kw)
    for out_c in range(o):
        first = (out_c // og) * cg
        per_channel[first : first + cg, :, out_c] = flat[out_c]
    bits = (np.arange(256)[:, np.newaxis] >> np.arange(8)) & 1
    # (bytes, taps, 256, o): every byte's subset sum, in int64 (einsum of integers is exact).
    # Every sum of a table, of one or two bytes and times 2**j, is at most _table_bound: it
    # fits dtype, in which the rest is done.
    sums = np.einsum("bk,gktp->gtbp", bits, per_channel.reshape(n_bytes, 8, kh * kw, o))
    sums = sums.astype(dtype)
    if key_bits == 16:
        # Key hi * 256 + lo: the sum of the low byte's table and the high byte's.
        sums = sums[1::2, :, :, np.newaxis] + sums[0::2, :, np.newaxis]
    sums = sums.reshape(groups, kh * kw << key_bits, o)
    return np.stack([sums << j for j in range(planes)])


def _tap_slices(geometry):
    """Per tap ``(ky, kx)``: the output rows and columns it reaches and the pooled input rows
    and columns they read, as slices (``docs/network.md``: ``y = y' s - p + ky d``)."""
    _, hp, wp = geometry.pooled
    _, ho, wo = geometry.out_shape
    kh, kw = geometry.kernel
    out = []
    for ky in range(kh):
        for kx in range(kw):
            ys = _axis_slices(
                ky, hp, ho, geometry.stride[0], geometry.padding[0], geometry.dilation[0]
            )
            xs = _axis_slices(
                kx, wp, wo, geometry.stride[1], geometry.padding[1], geometry.dilation[1]
            )
            out.append((ys[0], xs[0], ys[1], xs[1]))
    return out


def _axis_slices(k, n_in, n_out, s, p, d):
    """``(output slice, input slice)`` of tap ``k`` on one axis: the outputs ``y'`` whose input
    ``y' s - p + k d`` lies in ``[0, n_in)``, and those inputs (empty slices if none)."""
    offset = k * d - p
    first = max(0, (s - 1 - offset) // s)
    last = min(n_out, (n_in - 1 - offset) // s + 1)
    if last <= first:
        return slice(0, 0), slice(0, 0)
    start = first * s + offset
    return slice(first, last), slice(start, start + (last - first - 1) * s + 1, s)


def _pooled_counts(spikes, pool, hp, wp):
    """The spikes ``(B, C, H, W)`` (bool) summed over each whole pool window: ``(B, C, Hp, Wp)``,
    uint8 (a window of up to 255 neurons; :func:`_window_tables` allows at most that)."""
    # bool and uint8 share their layout: the sums below then add uint8 to uint8, not cast.
    spikes = spikes.view(np.uint8)
    py, px = pool
    if py == px == 1:
        return spikes
    n_batch, c = spikes.shape[:2]
    whole = spikes[:, :, : hp * py, : wp * px].reshape(n_batch, c, hp, py, wp, px)
    # One add per window offset: NumPy's sum over two strided axes is ten times slower.
    counts = whole[:, :, :, 0, :, 0].copy()
    for i in range(py):
        for j in range(px):
            if i or j:
                counts += whole[:, :, :, i, :, j]
    return counts
