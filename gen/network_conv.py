"""Convolutional projections and shaped populations of ``docs/network.md`` ("Convolutions").

A ``conv2d`` (or ``conv1d``) projection stores its kernel ``(O, C/groups, kh, kw)`` and its
geometry, not a dense matrix; an input sum pool (kernel = stride) may sit in front of it or of a
dense projection. :class:`ConvGeometry` is the one definition of which source neuron reaches
which target neuron with which weight: the loader's checks, the accumulator bounds, the unrolled
dense equivalent (:meth:`ConvProjection.dense`) and the golden model's event fan-out
(:meth:`ConvGeometry.fanout`) all come from it.

This module does not import :mod:`spikeforge.gen.network`; that module calls
:func:`parse_shape` and :func:`parse_shaped_projection` where a population or projection has the
new keys.
"""

import numpy as np

from ..spec.limits import w_range
from .network_fields import field_error, field_int, is_int

__all__ = [
    "CONV_KINDS",
    "SHAPED_KEYS",
    "ConvGeometry",
    "ConvProjection",
    "parse_shape",
    "parse_shaped_projection",
]

# Projection kinds with a kernel; "dense" is the plain matrix (with an optional input pool).
CONV_KINDS = ("conv1d", "conv2d")
_KINDS = ("dense", *CONV_KINDS)
# Keys that only shaped projections have: their presence sends a projection here.
SHAPED_KEYS = (
    "kind",
    "in_shape",
    "out_channels",
    "kernel",
    "stride",
    "padding",
    "dilation",
    "groups",
    "pool",
)
_CONV_KEYS = ("from", "to", "weights", *SHAPED_KEYS)
_DENSE_KEYS = ("from", "to", "weights", "kind", "in_shape", "pool")
# Any extent (channels, height, width, kernel, stride, ...) is at most a population's size.
_EXTENT_MAX = 1 << 20
_PAD_MAX = 1 << 10


def parse_shape(path, value, size=None):
    """The shape ``[C, H, W]`` (or ``[C, L]``) at JSON ``path`` as a tuple; its product must be
    ``size`` when given."""
    if not isinstance(value, (list, tuple)) or len(value) not in (2, 3):
        raise field_error(path, f"must be a list [C, H, W] or [C, L] of integers, not {value!r}")
    shape = tuple(field_int(f"{path}[{k}]", v, 1, _EXTENT_MAX) for k, v in enumerate(value))
    if size is not None and int(np.prod(shape)) != size:
        raise field_error(
            path, f"{list(shape)} has {int(np.prod(shape))} neurons, the population has {size}"
        )
    return shape


def _pair(path, value, lo, hi, dims):
    """An int or a list of ``dims`` ints in ``[lo, hi]`` as a ``(y, x)`` pair; for 1-D the y
    value is ``lo`` (a height-1 axis: kernel, stride, dilation, pool 1, padding 0)."""
    if is_int(value):
        values = [value] * dims
    elif isinstance(value, (list, tuple)) and len(value) == dims:
        values = list(value)
    else:
        want = "an integer or a list of 2 integers" if dims == 2 else "an integer"
        raise field_error(path, f"must be {want} in [{lo}, {hi}], not {value!r}")
    out = tuple(field_int(path, v, lo, hi) for v in values)
    return out if dims == 2 else (lo, *out)


class ConvGeometry:
    """Input pool, then a 2-D convolution, from a ``(C, H, W)`` source to ``(O, H', W')``.

    Parameters
    ----------
    in_shape : tuple of int
        ``(C, H, W)`` of the source (before pooling).
    pool, kernel, stride, padding, dilation : tuple of int
        ``(y, x)`` pairs; ``pool = (1, 1)`` is no pooling.
    out_channels, groups : int
        ``groups`` divides ``C`` and ``out_channels``.
    conv : bool
        False for a dense projection with an input pool (the other fields then unused).

    Attributes
    ----------
    pooled : tuple of int
        ``(C, H // pool_y, W // pool_x)``: the source after pooling; the source rows and columns
        beyond the last whole window are dropped.
    out_shape : tuple of int
        ``(O, H', W')``, ``H' = (Hp + 2 p - d (k - 1) - 1) // s + 1``.
    """

    def __init__(
        self,
        in_shape,
        pool=(1, 1),
        out_channels=1,
        kernel=(1, 1),
        stride=(1, 1),
        padding=(0, 0),
        dilation=(1, 1),
        groups=1,
        conv=True,
    ):
        self.in_shape = tuple(in_shape)
        self.pool = tuple(pool)
        self.out_channels = out_channels
        self.kernel = tuple(kernel)
        self.stride = tuple(stride)
        self.padding = tuple(padding)
        self.dilation = tuple(dilation)
        self.groups = groups
        self.conv = conv
        c, h, w = self.in_shape
        self.pooled = (c, h // self.pool[0], w // self.pool[1])
        if conv:
            extent = [
                (n + 2 * p - d * (k - 1) - 1) // s + 1
                for n, p, d, k, s in zip(
                    self.pooled[1:], self.padding, self.dilation, self.kernel, self.stride
                )
            ]
            self.out_shape = (out_channels, *extent)

    @property
    def n_in(self):
        """Source neurons."""
        return int(np.prod(self.in_shape))

    @property
    def n_pooled(self):
        """Positions after pooling."""
        return int(np.prod(self.pooled))

    @property
    def n_out(self):
        """Target neurons of a convolution."""
        return int(np.prod(self.out_shape))

    def pool_map(self):
        """For every source neuron (C order) its pooled position, or -1 where it is dropped."""
        c, h, w = self.in_shape
        py, px = self.pool
        _, hp, wp = self.pooled
        y = np.arange(h) // py
        x = np.arange(w) // px
        keep = (y < hp)[:, None] & (x < wp)[None, :]
        plane = np.where(keep, y[:, None] * wp + x[None, :], -1)
        base = (np.arange(c) * hp * wp)[:, None, None]
        return np.where(plane >= 0, base + plane, -1).reshape(-1).astype(np.int64)

    def fanout(self):
        """Every synapse of the convolution, from pooled positions.

        Returns
        -------
        source, target, tap : ndarray of int64
            Pooled position, target neuron (C order of ``out_shape``) and flat index into the
            kernel ``(O, C/groups, kh, kw)``, one entry per synapse, ordered by source.
        """
        c, hp, wp = self.pooled
        o = self.out_channels
        cg, og = c // self.groups, o // self.groups
        kh, kw = self.kernel
        _, ho, wo = self.out_shape
        grid = np.meshgrid(
            np.arange(c),
            np.arange(hp),
            np.arange(wp),
            np.arange(kh),
            np.arange(kw),
            np.arange(og),
            indexing="ij",
        )
        ci, yi, xi, ky, kx, oi = (g.reshape(-1) for g in grid)
        # The output position (y', x') that tap (ky, kx) of input (y, x) reaches:
        # y = y' s - p + ky d, so y' = (y + p - ky d) / s where that is a whole number in range.
        ny = yi + self.padding[0] - ky * self.dilation[0]
        nx = xi + self.padding[1] - kx * self.dilation[1]
        yo, ry = np.divmod(ny, self.stride[0])
        xo, rx = np.divmod(nx, self.stride[1])
        ok = (ry == 0) & (rx == 0) & (yo >= 0) & (yo < ho) & (xo >= 0) & (xo < wo)
        ci, ky, kx, oi, yo, xo = (a[ok] for a in (ci, ky, kx, oi, yo, xo))
        out_c = (ci // cg) * og + oi
        source = (ci * hp + yi[ok]) * wp + xi[ok]
        target = (out_c * ho + yo) * wo + xo
        tap = ((out_c * cg + ci % cg) * kh + ky) * kw + kx
        return source.astype(np.int64), target.astype(np.int64), tap.astype(np.int64)


class ConvProjection:
    """A ``conv1d``/``conv2d`` projection, or a dense one with an input pool.

    It has the attributes of :class:`spikeforge.gen.network.Projection` (``source``,
    ``target``, ``source_index``, ``target_index``, ``recurrent``), with ``weights`` the kernel
    ``(O, C/groups, kh, kw)`` (``(O, C/groups, k)`` for ``conv1d``), or the pooled matrix
    ``(C Hp Wp, size of target)`` of a dense one.

    Attributes
    ----------
    kind : str
        ``"conv2d"``, ``"conv1d"`` or ``"dense"``.
    geometry : ConvGeometry
    """

    def __init__(self, kind, source, target, weights, geometry, source_index, target_index):
        self.kind = kind
        self.source = source
        self.target = target
        self.weights = weights
        self.weights.setflags(write=False)
        self.geometry = geometry
        self.source_index = source_index
        self.target_index = target_index
        self._synapses = None

    @property
    def recurrent(self):
        """True if the spikes of step ``t`` arrive at step ``t + 1`` (as for dense ones)."""
        return self.source_index >= self.target_index

    def synapses(self):
        """``(source, target, weight)`` arrays of every synapse from a *pooled* position, by
        source (computed once: the loader, the bounds and the golden model all ask)."""
        if self._synapses is None:
            if self.geometry.conv:
                src, dst, tap = self.geometry.fanout()
                w = self.weights.reshape(-1)[tap]
            else:
                src, dst = np.nonzero(self.weights)
                w = self.weights[src, dst]
            for array in (src, dst, w):
                array.setflags(write=False)
            self._synapses = src, dst, w
        return self._synapses

    def dense(self):
        """The equivalent dense matrix ``(size of source, size of target)``, int64."""
        g = self.geometry
        n_out = self.weights.shape[1] if not g.conv else g.n_out
        pooled = np.zeros((g.n_pooled, n_out), np.int64)
        src, dst, w = self.synapses()
        np.add.at(pooled, (src, dst), w)
        pool = g.pool_map()
        out = np.zeros((g.n_in, n_out), np.int64)
        kept = pool >= 0
        out[kept] = pooled[pool[kept]]
        return out

    def column_bounds(self, n_out):
        """``(lo, hi)``: per target neuron the sum of its negative and positive synapses."""
        src, dst, w = self.synapses()
        # Every pooled position gathers a whole window of source neurons.
        window = self.geometry.pool[0] * self.geometry.pool[1]
        lo = np.bincount(dst, np.minimum(w, 0) * window, minlength=n_out)
        hi = np.bincount(dst, np.maximum(w, 0) * window, minlength=n_out)
        # Each sum has at most 2**20 terms of at most 2**15 in magnitude: exact in float64.
        return lo.astype(np.int64), hi.astype(np.int64)

    def to_dict(self, weights):
        """The JSON object of the projection with ``weights`` as its ``weights`` value."""
        g = self.geometry
        out = {"from": self.source, "to": self.target, "kind": self.kind}
        one_d = self.kind == "conv1d"
        shape = list(g.in_shape)
        out["in_shape"] = [shape[0], shape[2]] if one_d else shape
        if self.kind != "dense":
            for key in ("kernel", "stride", "padding", "dilation"):
                pair = list(getattr(g, key))
                out[key] = pair[1] if one_d else pair
            out["out_channels"] = g.out_channels
            out["groups"] = g.groups
        out["pool"] = g.pool[1] if one_d else list(g.pool)
        out["weights"] = weights
        return out

    def __repr__(self):
        return (
            f"ConvProjection({self.source!r} -> {self.target!r}, kind={self.kind!r}, "
            f"weights={self.weights.shape}, recurrent={self.recurrent})"
        )


def parse_shaped_projection(path, spec, src, dst, w_width, npz_cache):
    """The projection at JSON ``path`` that has keys of :data:`SHAPED_KEYS`.

    Parameters
    ----------
    spec : dict
    src, dst : tuple
        ``(index, population)`` of the source and the target (``population.shape`` may be None).
    w_width : int
    npz_cache : NpzCache

    Returns
    -------
    ConvProjection or None
        None for a dense projection without a pool: the caller reads it as any dense one.
    """
    kind = spec.get("kind", "dense")
    if kind not in _KINDS:
        raise field_error(
            f"{path}.kind", f"must be one of 'dense', 'conv1d', 'conv2d', not {kind!r}"
        )
    allowed = _DENSE_KEYS if kind == "dense" else _CONV_KEYS
    for key in spec:
        if key not in allowed:
            raise field_error(
                path, f"unknown key {key!r} for kind {kind!r}; allowed are {', '.join(allowed)}"
            )
    for key in ("from", "to", "weights", *(("out_channels", "kernel") if kind != "dense" else ())):
        if key not in spec:
            raise field_error(path, f"missing key {key!r}")
    (src_index, src_pop), (dst_index, dst_pop) = src, dst
    dims = 1 if kind == "conv1d" else 2
    in_shape = _in_shape(path, spec, src_pop, dims)
    pool = _pair(f"{path}.pool", spec.get("pool", 1), 1, _EXTENT_MAX, dims)
    for k, (n, p) in enumerate(zip(in_shape[1:], pool)):
        if p > n:
            raise field_error(
                f"{path}.pool", f"window {p} is larger than the source's extent {n} (axis {k})"
            )
    if kind == "dense":
        geometry = ConvGeometry(in_shape, pool, conv=False)
        if geometry.pool == (1, 1):
            return None
        shape = (geometry.n_pooled, dst_pop.size)
        weights = _parse_array(f"{path}.weights", spec["weights"], shape, w_width, npz_cache)
    else:
        geometry = _conv_geometry(path, spec, in_shape, pool, dims)
        out_shape = geometry.out_shape if dims == 2 else geometry.out_shape[::2]
        if geometry.n_out != dst_pop.size:
            raise field_error(
                path,
                f"output shape {list(out_shape)} has {geometry.n_out} neurons, the "
                f"target {dst_pop.name!r} has {dst_pop.size}",
            )
        target_shape = getattr(dst_pop, "shape", None)
        if target_shape is not None and tuple(target_shape) != out_shape:
            raise field_error(
                path,
                f"output shape {list(out_shape)} differs from the shape "
                f"{list(target_shape)} of {dst_pop.name!r}",
            )
        c = in_shape[0]
        shape = (geometry.out_channels, c // geometry.groups, *geometry.kernel[2 - dims :])
        weights = _parse_array(f"{path}.weights", spec["weights"], shape, w_width, npz_cache)
    return ConvProjection(kind, src_pop.name, dst_pop.name, weights, geometry, src_index, dst_index)


def _in_shape(path, spec, src_pop, dims):
    """The source shape as ``(C, H, W)``: the key ``in_shape``, else the population's shape."""
    value = spec.get("in_shape", getattr(src_pop, "shape", None))
    if value is None:
        raise field_error(
            path, f"missing key 'in_shape' (the source {src_pop.name!r} has no shape)"
        )
    shape = parse_shape(f"{path}.in_shape", value, src_pop.size)
    if len(shape) != dims + 1:
        want = "[C, L]" if dims == 1 else "[C, H, W]"
        raise field_error(f"{path}.in_shape", f"must be {want} for this kind, not {list(shape)}")
    return shape if dims == 2 else (shape[0], 1, shape[1])


def _conv_geometry(path, spec, in_shape, pool, dims):
    """The checked :class:`ConvGeometry` of a ``conv1d``/``conv2d`` projection."""
    out_channels = field_int(f"{path}.out_channels", spec["out_channels"], 1, _EXTENT_MAX)
    kernel = _pair(f"{path}.kernel", spec["kernel"], 1, _EXTENT_MAX, dims)
    stride = _pair(f"{path}.stride", spec.get("stride", 1), 1, _EXTENT_MAX, dims)
    padding = _pair(f"{path}.padding", spec.get("padding", 0), 0, _PAD_MAX, dims)
    dilation = _pair(f"{path}.dilation", spec.get("dilation", 1), 1, _EXTENT_MAX, dims)
    groups = field_int(f"{path}.groups", spec.get("groups", 1), 1, _EXTENT_MAX)
    c = in_shape[0]
    if c % groups or out_channels % groups:
        raise field_error(
            f"{path}.groups",
            f"{groups} must divide the input channels ({c}) and out_channels ({out_channels})",
        )
    geometry = ConvGeometry(in_shape, pool, out_channels, kernel, stride, padding, dilation, groups)
    if min(geometry.out_shape[1:]) < 1:
        span = [d * (k - 1) + 1 for d, k in zip(dilation, kernel)]
        raise field_error(
            f"{path}.kernel",
            f"the dilated kernel {span[2 - dims :]} does not fit the pooled and padded input "
            f"{[n + 2 * p for n, p in zip(geometry.pooled[1:], padding)][2 - dims :]}",
        )
    return geometry


def _parse_array(path, value, shape, w_width, npz_cache):
    """Weights of any ``shape`` (nested lists, an array or an ``.npz`` reference), int64."""
    lo, hi = w_range(w_width)
    if isinstance(value, dict):
        array = npz_cache.weights(path, value)
    elif isinstance(value, np.ndarray):
        array = value
    elif isinstance(value, list):
        array = _nested(path, value, shape)
    else:
        raise field_error(
            path,
            f'must be nested lists of integers or {{"npz": FILE, "key": NAME}}, '
            f"not {type(value).__name__}",
        )
    if not np.issubdtype(array.dtype, np.integer):
        raise field_error(path, f"dtype {array.dtype} is not an integer type; weights are integers")
    if tuple(array.shape) != tuple(shape):
        raise field_error(path, f"shape {tuple(array.shape)}, expected {tuple(shape)}")
    if array.size:
        bad = (array < lo) | (array > hi)
        if bad.any():
            index = [int(i) for i in np.argwhere(bad)[0]]
            raise field_error(
                path,
                f"value {int(array[tuple(index)])} at {index} outside w_width={w_width} "
                f"range [{lo}, {hi}]",
            )
    return np.array(array, np.int64)


def _nested(path, value, shape):
    """Nested JSON lists of the exact ``shape``, every leaf an integer."""
    if len(value) != shape[0]:
        raise field_error(path, f"has {len(value)} entries, expected {shape[0]}")
    if len(shape) == 1:
        for k, leaf in enumerate(value):
            if not is_int(leaf):
                raise field_error(f"{path}[{k}]", f"must be an integer, not {leaf!r}")
            if abs(leaf) >= 1 << 62:
                raise field_error(f"{path}[{k}]", f"value {leaf} is far outside any w_width")
        return np.array(value, np.int64)
    parts = []
    for k, item in enumerate(value):
        if not isinstance(item, list):
            raise field_error(
                f"{path}[{k}]", f"must be a list of {shape[1]} entries, not {type(item).__name__}"
            )
        parts.append(_nested(f"{path}[{k}]", item, shape[1:]))
    return np.stack(parts) if parts else np.zeros(shape, np.int64)
