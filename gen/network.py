"""The network description of ``docs/network.md``: load, validate, save.

A network is a JSON file (``"format": "spikeforge-network/1"``) with populations in evaluation
order and dense projections between them; big weight matrices may live in an ``.npz`` beside it.
:meth:`Network.from_dict` is the one validator: every rule it enforces reports the JSON path and the
rule broken, in one line, as a :class:`SpikeforgeError` (the checks of single fields are in
:mod:`spikeforge.gen.network_fields`).
"""

import dataclasses
import hashlib
import json
import os

import numpy as np

from ..spec.errors import SpikeforgeError
from ..spec.files import atomic_paths
from ..spec.limits import ACC_WIDTH_RANGE, V_WIDTH_RANGE, W_WIDTH_RANGE
from .network_conv import SHAPED_KEYS, parse_shape, parse_shaped_projection
from .network_fields import (
    PROJECTION_KEYS,
    SIZE_MAX,
    TOP_KEYS,
    TOP_REQUIRED,
    NpzCache,
    check_int_sizes,
    check_keys,
    check_list,
    field_error,
    field_int,
    parse_json_int,
    parse_population,
    parse_weights,
)
from .spike_io import write_npz

__all__ = [
    "FORMAT",
    "SIZE_MAX",
    "NPZ_THRESHOLD",
    "Population",
    "Projection",
    "Network",
    "load_network",
    "save_network",
    "network_npz_path",
    "signed_width",
]

FORMAT = "spikeforge-network/1"
# save_network moves a matrix with more entries than this to the .npz beside the JSON file.
NPZ_THRESHOLD = 4096


def signed_width(lo, hi):
    """Smallest width of a signed integer that holds every value in ``[lo, hi]`` (at least 2)."""
    width = 2
    while not -(1 << (width - 1)) <= lo <= hi <= (1 << (width - 1)) - 1:
        width += 1
    return width


class Population:
    """One population: ``kind`` ``"input"`` (spike sources) or ``"lif"`` (neurons).

    Attributes
    ----------
    name : str
    kind : str
    size : int
    params : NeuronParams or None
        The LIF parameters (``bias`` 0 when the bias is given per neuron); None for inputs.
    bias : ndarray of int64, shape (size,), or None
        The bias of every neuron; None for inputs.
    per_neuron_bias : bool
        The file gave a list rather than one value (kept so that saving writes it back alike).
    shape : tuple of int or None
        The optional ``(C, H, W)`` or ``(C, L)`` of the neurons, flattened in C order.
    per_neuron : dict
        The parameters given per neuron (``docs/network.md``): ``"v_th"``, ``"v_reset"``,
        ``"v_rest"`` to a read-only int64 array of ``size`` values, ``"decay"``,
        ``"syn_decay"`` to a tuple of ``size`` tuples of shift terms. Empty when every value is
        one for the population; ``params`` holds those of neuron 0 otherwise.
    """

    def __init__(
        self, name, kind, size, params=None, bias=None, per_neuron_bias=False, per_neuron=None
    ):
        self.name = name
        self.kind = kind
        self.size = size
        self.shape = None
        self.params = params
        self.bias = bias
        self.per_neuron_bias = per_neuron_bias
        self.per_neuron = dict(per_neuron or {})
        if bias is not None:
            bias.setflags(write=False)

    def column(self, key):
        """The value of integer parameter ``key`` (``"v_th"``, ``"v_reset"``, ``"v_rest"``) of
        every neuron: an int64 array of ``size``."""
        if key in self.per_neuron:
            return self.per_neuron[key]
        return np.full(self.size, getattr(self.params, key), np.int64)

    def decays(self, key="decay"):
        """The ``decay`` (or ``syn_decay``) of every neuron: a tuple of ``size`` tuples."""
        if key in self.per_neuron:
            return self.per_neuron[key]
        return (tuple(getattr(self.params, key) or ()),) * self.size

    def neuron_params(self):
        """One ``NeuronParams`` per neuron (bias 0 where the bias is per neuron)."""
        if not self.per_neuron:
            return [self.params] * self.size
        cols = {key: self.column(key) for key in ("v_th", "v_reset", "v_rest")}
        decays = self.decays()
        syn = self.decays("syn_decay") if self.params.synaptic else None
        return [
            dataclasses.replace(
                self.params,
                v_th=int(cols["v_th"][j]),
                v_reset=int(cols["v_reset"][j]),
                v_rest=int(cols["v_rest"][j]),
                decay=decays[j],
                syn_decay=syn[j] if syn is not None else None,
            )
            for j in range(self.size)
        ]

    @property
    def is_input(self):
        """True for an input population (spike sources, no neurons)."""
        return self.kind == "input"

    def to_dict(self):
        """The JSON object of this population."""
        out = {"name": self.name, "kind": self.kind, "size": self.size}
        if self.shape is not None:
            out["shape"] = list(self.shape)
        if self.kind == "lif":
            p = self.params
            out.update(
                v_th=p.v_th,
                v_reset=p.v_reset,
                v_rest=p.v_rest,
                v_peak=p.v_peak,
                t_ref=p.t_ref,
                decay=list(p.decay),
            )
            if p.synaptic:
                out["syn_decay"] = list(p.syn_decay)
            for key, values in self.per_neuron.items():
                if key in ("decay", "syn_decay"):
                    out[key] = [list(d) for d in values]
                else:
                    out[key] = [int(x) for x in values]
            # Written only when not the default, so that older files keep their bytes.
            if p.delayed_reset:
                out["reset_timing"] = p.reset_timing
            if p.fires_at_threshold:
                out["threshold_compare"] = p.threshold_compare
            out.update(
                reset_mode=p.reset_mode,
                bias=[int(b) for b in self.bias] if self.per_neuron_bias else p.bias,
            )
        return out

    def __repr__(self):
        return f"Population({self.name!r}, kind={self.kind!r}, size={self.size})"


class Projection:
    """Dense weights from population ``source`` to LIF population ``target``.

    Attributes
    ----------
    source, target : str
        Population names (the JSON ``from`` and ``to``).
    source_index, target_index : int
        Their positions in the evaluation order.
    weights : ndarray of int64, shape (size of source, size of target), read-only
    """

    def __init__(self, source, target, weights, source_index, target_index):
        self.source = source
        self.target = target
        self.weights = weights
        self.weights.setflags(write=False)
        self.source_index = source_index
        self.target_index = target_index

    @property
    def recurrent(self):
        """True if the spikes of step ``t`` arrive at step ``t + 1``: the source is the target
        itself or comes after it in the evaluation order."""
        return self.source_index >= self.target_index

    def column_bounds(self, n_out):
        """``(lo, hi)``: per target neuron the sum of its negative and of its positive weights."""
        return np.minimum(self.weights, 0).sum(axis=0), np.maximum(self.weights, 0).sum(axis=0)

    def to_dict(self, weights):
        """The JSON object of the projection with ``weights`` as its ``weights`` value."""
        return {"from": self.source, "to": self.target, "weights": weights}

    def __repr__(self):
        return (
            f"Projection({self.source!r} -> {self.target!r}, shape={self.weights.shape}, "
            f"recurrent={self.recurrent})"
        )


class Network:
    """A validated network; build it with :meth:`from_dict` or :func:`load_network`.

    Attributes
    ----------
    v_width, w_width : int
    acc_width : int
        The explicit ``acc_width`` of the file, or :meth:`required_acc_width`.
    acc_width_explicit : bool
    populations : list of Population
        In evaluation order.
    projections : list of Projection
        In file order.
    input_populations, lif_populations : list of Population
    n_inputs : int
        Columns of the input spike array: the sizes of the input populations, in their order.
    files : list of str
        The files it was read from (:func:`load_network`: the JSON file and its ``.npz``
        files), which no output may replace.
    """

    def __init__(self, v_width, w_width, populations, projections, acc_width=None):
        self.v_width = v_width
        self.w_width = w_width
        self.populations = list(populations)
        self.projections = list(projections)
        self._by_name = {p.name: i for i, p in enumerate(self.populations)}
        self.input_populations = [p for p in self.populations if p.kind == "input"]
        self.lif_populations = [p for p in self.populations if p.kind == "lif"]
        self.n_inputs = sum(p.size for p in self.input_populations)
        self.acc_width_explicit = acc_width is not None
        self.acc_width = acc_width if acc_width is not None else self.required_acc_width()
        self.files = []

    # -- queries ---------------------------------------------------------------------------------

    def index(self, name):
        """Position of population ``name`` in the evaluation order."""
        try:
            return self._by_name[name]
        except KeyError:
            raise SpikeforgeError(
                f"no population named {name!r}; the network has {', '.join(self._by_name)}"
            ) from None

    def population(self, name):
        """The :class:`Population` called ``name``."""
        return self.populations[self.index(name)]

    def _lif(self, name):
        pop = self.population(name)
        if pop.kind != "lif":
            raise SpikeforgeError(f"population {name!r} is an input population, not a LIF one")
        return pop

    def neuron_params(self, name):
        """:class:`NeuronParams` of LIF population ``name`` (bias 0 if given per neuron)."""
        return self._lif(name).params

    def bias(self, name):
        """Bias of every neuron of LIF population ``name``, int64 array of shape (size,)."""
        return self._lif(name).bias

    def input_slice(self, name):
        """Columns of input population ``name`` in the input spike array."""
        start = 0
        for pop in self.input_populations:
            if pop.name == name:
                return slice(start, start + pop.size)
            start += pop.size
        raise SpikeforgeError(f"{name!r} is not an input population")

    def incoming(self, name):
        """Projections into population ``name``, in file order."""
        return [proj for proj in self.projections if proj.target == name]

    def input_bounds(self):
        """Per LIF population, ``(lo, hi)`` arrays of the extreme weight sums of each neuron.

        ``lo`` is the sum of the negative incoming weights over all projections, ``hi`` the sum of
        the positive ones; the bias is not included.
        """
        bounds = {}
        for pop in self.lif_populations:
            lo = np.zeros(pop.size, np.int64)
            hi = np.zeros(pop.size, np.int64)
            for proj in self.incoming(pop.name):
                proj_lo, proj_hi = proj.column_bounds(pop.size)
                lo += proj_lo
                hi += proj_hi
            bounds[pop.name] = lo, hi
        return bounds

    def input_range(self):
        """``(min lo, max hi)`` over all LIF neurons (see :meth:`input_bounds`), as ints."""
        lo = hi = 0
        for pop_lo, pop_hi in self.input_bounds().values():
            lo = min(lo, int(pop_lo.min()))
            hi = max(hi, int(pop_hi.max()))
        return lo, hi

    def required_acc_width(self):
        """Smallest signed accumulator width that holds every neuron's weight sum exactly.

        The range covered is :meth:`input_range`; the result is at least 2.
        """
        return signed_width(*self.input_range())

    # -- conversion ------------------------------------------------------------------------------

    def to_dict(self, weights=None):
        """The JSON object of the network, weights inline as lists.

        Parameters
        ----------
        weights : callable, optional
            ``weights(index, projection) -> JSON value`` replaces the inline matrix (used by
            :func:`save_network` to refer to an ``.npz``).
        """
        out = {"format": FORMAT, "v_width": self.v_width, "w_width": self.w_width}
        if self.acc_width_explicit:
            out["acc_width"] = self.acc_width
        out["populations"] = [pop.to_dict() for pop in self.populations]
        out["projections"] = [
            proj.to_dict(proj.weights.tolist() if weights is None else weights(i, proj))
            for i, proj in enumerate(self.projections)
        ]
        return out

    def network_hash(self):
        """sha256 (hex) of the canonical content: what the hardware is built from.

        Covers widths (with the effective ``acc_width``), every population and every weight, and
        nothing about how the file was written (key order, inline or ``.npz``, explicit or implied
        ``acc_width``).
        """

        def digest(_, proj):
            data = np.ascontiguousarray(proj.weights, "<i8").tobytes()
            return {
                "shape": list(proj.weights.shape),
                "int64le_sha256": hashlib.sha256(data).hexdigest(),
            }

        content = self.to_dict(weights=digest)
        content["acc_width"] = self.acc_width
        text = json.dumps(content, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()

    def __eq__(self, other):
        if not isinstance(other, Network):
            return NotImplemented
        # The hash covers everything but whether acc_width was written out.
        return (
            self.network_hash() == other.network_hash()
            and self.acc_width_explicit == other.acc_width_explicit
        )

    __hash__ = None

    def __repr__(self):
        return (
            f"Network(v_width={self.v_width}, w_width={self.w_width}, "
            f"acc_width={self.acc_width}, populations={[p.name for p in self.populations]}, "
            f"projections={len(self.projections)})"
        )

    # -- validation ------------------------------------------------------------------------------

    @classmethod
    def from_dict(cls, d, base_dir=".", allow_outside=False):
        """Validate a network given as a JSON-like dict and build it.

        Parameters
        ----------
        d : dict
            As in ``docs/network.md``. Besides JSON lists, weights and a per-neuron bias may be
            integer NumPy arrays (for programs that build networks).
        base_dir : str or path-like
            Folder that ``{"npz": ...}`` weight references are relative to.
        allow_outside : bool
            Whether a reference may name a file outside ``base_dir``.

        Raises
        ------
        SpikeforgeError
            The first rule broken, naming its JSON path.
        """
        check_keys("network", d, TOP_KEYS, TOP_REQUIRED)
        if d["format"] != FORMAT:
            raise field_error("format", f"must be {FORMAT!r}, not {d['format']!r}")
        v_width = field_int("v_width", d["v_width"], *V_WIDTH_RANGE)
        w_width = field_int("w_width", d["w_width"], *W_WIDTH_RANGE)
        acc_width = None
        if "acc_width" in d:
            acc_width = field_int("acc_width", d["acc_width"], *ACC_WIDTH_RANGE)

        pops = []
        names = {}
        for i, spec in enumerate(check_list("populations", d["populations"])):
            shape = spec.get("shape") if isinstance(spec, dict) else None
            if shape is not None:
                spec = {k: v for k, v in spec.items() if k != "shape"}
            pop = Population(*parse_population(f"populations[{i}]", spec, v_width))
            if shape is not None:
                pop.shape = parse_shape(f"populations[{i}].shape", shape, pop.size)
            if pop.name in names:
                raise field_error(
                    f"populations[{i}].name",
                    f"duplicate name {pop.name!r} (also populations[{names[pop.name]}])",
                )
            names[pop.name] = i
            pops.append(pop)
        if not any(p.kind == "lif" for p in pops):
            raise field_error("populations", "must contain at least one 'lif' population")

        projections = []
        pairs = {}
        npz_cache = NpzCache(base_dir, allow_outside)
        for i, spec in enumerate(check_list("projections", d["projections"])):
            path = f"projections[{i}]"
            # Convolutional and pooled projections: gen/network_conv.py.
            shaped = isinstance(spec, dict) and any(key in spec for key in SHAPED_KEYS)
            check_keys(
                path, spec, PROJECTION_KEYS + (SHAPED_KEYS if shaped else ()), PROJECTION_KEYS
            )
            ends = []
            for key in ("from", "to"):
                name = spec[key]
                if not isinstance(name, str) or name not in names:
                    raise field_error(
                        f"{path}.{key}",
                        f"unknown population {name!r}; the network has {', '.join(names)}",
                    )
                ends.append(names[name])
            src, dst = ends
            if pops[dst].kind != "lif":
                raise field_error(
                    f"{path}.to",
                    f"{pops[dst].name!r} is an input population; a "
                    f"projection must end at a 'lif' population",
                )
            if (src, dst) in pairs:
                raise field_error(
                    path,
                    f"duplicate projection {pops[src].name} -> {pops[dst].name} "
                    f"(also projections[{pairs[src, dst]}]); merge the weight matrices",
                )
            pairs[src, dst] = i
            if shaped:
                proj = parse_shaped_projection(
                    path, spec, (src, pops[src]), (dst, pops[dst]), w_width, npz_cache
                )
                if proj is not None:
                    projections.append(proj)
                    continue
            weights = parse_weights(
                f"{path}.weights",
                spec["weights"],
                (pops[src].size, pops[dst].size),
                (pops[src].name, pops[dst].name),
                w_width,
                npz_cache,
            )
            projections.append(Projection(pops[src].name, pops[dst].name, weights, src, dst))

        net = cls(v_width, w_width, pops, projections, acc_width)
        net.files = npz_cache.files()
        required = net.required_acc_width()
        if acc_width is not None and acc_width < required:
            lo, hi = net.input_range()
            raise field_error(
                "acc_width",
                f"{acc_width} is too small for the worst-case weight "
                f"sum range [{lo}, {hi}], which needs {required} bits",
            )
        if required > ACC_WIDTH_RANGE[1]:
            # Without an explicit acc_width the loader sizes the accumulator itself; the
            # neuron core still has only ACC_WIDTH_RANGE[1] bits to give.
            lo, hi = net.input_range()
            raise field_error(
                "acc_width",
                f"the worst-case weight sum range [{lo}, {hi}] needs {required} bits, "
                f"the neuron core holds at most {ACC_WIDTH_RANGE[1]}; use fewer or narrower "
                "weights",
            )
        return net


def _reject_duplicate_keys(pairs):
    out = {}
    for key, value in pairs:
        if key in out:
            raise SpikeforgeError(f"duplicate JSON key {key!r}")
        out[key] = value
    return out


def load_network(path, allow_outside=False):
    """Read, validate and return the :class:`Network` in the JSON file ``path``.

    ``{"npz": FILE}`` weight references are relative to the file's folder and may not leave it
    unless ``allow_outside`` (``spikeforge --allow-outside-npz``). The returned network's
    ``files`` lists the files read: ``path`` and the ``.npz`` files.
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        raise SpikeforgeError(f"network file {path!r} is a folder, not a file")
    if not os.path.isfile(path):
        raise SpikeforgeError(f"network file {path!r} not found")
    try:
        with open(path, encoding="utf-8") as file:
            text = file.read()
    except (OSError, UnicodeDecodeError) as error:
        raise SpikeforgeError(f"{path}: cannot read the network file ({error})") from None
    try:
        d = json.loads(text, object_pairs_hook=_reject_duplicate_keys)
    except json.JSONDecodeError as error:
        raise SpikeforgeError(
            f"{path}: line {error.lineno} column {error.colno}: invalid JSON ({error.msg})"
        ) from None
    except RecursionError:
        raise SpikeforgeError(
            f"{path}: invalid JSON (nested too deeply; a network is at most 5 levels deep)"
        ) from None
    except SpikeforgeError as error:
        raise SpikeforgeError(f"{path}: {error}") from None
    except ValueError:
        # Python refuses an integer literal of more than 4,300 digits, naming no field; read
        # again, slowly, to name it.
        try:
            check_int_sizes(json.loads(text, parse_int=parse_json_int))
        except SpikeforgeError as error:
            raise SpikeforgeError(f"{path}: {error}") from None
        raise
    net = Network.from_dict(
        d, base_dir=os.path.dirname(os.path.abspath(path)), allow_outside=allow_outside
    )
    net.files = [path, *net.files]
    return net


def save_network(net, path, npz=None, option=None):
    """Write ``net`` as JSON to ``path``; big matrices may go to ``<stem>.npz`` beside it.

    Parameters
    ----------
    net : Network
    path : str or path-like
    npz : bool or None
        True puts every weight matrix in the ``.npz``, False keeps all inline, None (default) moves
        those with more than :data:`NPZ_THRESHOLD` entries.
    option : str, optional
        The command-line option that named ``path``, for the message of a failed write.

    Both files are written atomically (:func:`spikeforge.spec.files.atomic_paths`). Loading the written file gives a network equal to ``net``. The output is deterministic.
    """
    path = os.fspath(path)
    stem = os.path.splitext(os.path.basename(path))[0]
    npz_name = f"{stem}.npz"
    arrays = {}

    def weights(i, proj):
        if npz is False or (npz is None and proj.weights.size <= NPZ_THRESHOLD):
            return proj.weights.tolist()
        key = f"w{i}_{proj.source}_{proj.target}"
        # w_width <= 16, so int16 holds every weight exactly and the file stays small.
        arrays[key] = proj.weights.astype(np.int16)
        return {"npz": npz_name, "key": key}

    d = net.to_dict(weights=weights)
    text = _dumps(d)
    targets = [path]
    if arrays:
        targets.append(network_npz_path(path))
    # Both files or neither: the JSON names the .npz.
    with atomic_paths(targets, option) as temps:
        with open(temps[0], "w", encoding="utf-8", newline="\n") as file:
            file.write(text)
        if arrays:
            write_npz(temps[1], arrays)


def network_npz_path(path):
    """The ``.npz`` that :func:`save_network` may write beside the network file ``path``."""
    path = os.fspath(path)
    stem = os.path.splitext(os.path.basename(path))[0]
    return os.path.join(os.path.dirname(path), f"{stem}.npz")


def _dumps(d):
    """JSON with one population per line and one weight row per line: diff-friendly."""
    lines = ["{"]
    head = [
        f"  {json.dumps(k)}: {json.dumps(v)},"
        for k, v in d.items()
        if k not in ("populations", "projections")
    ]
    lines += head
    lines.append('  "populations": [')
    lines.append(",\n".join(f"    {json.dumps(p)}" for p in d["populations"]))
    lines.append("  ],")
    lines.append('  "projections": [')
    projs = []
    for proj in d["projections"]:
        w = proj["weights"]
        if isinstance(w, list):
            rows = ",\n".join(f"        {json.dumps(row)}" for row in w)
            w_text = f"[\n{rows}\n      ]" if w else "[]"
        else:
            w_text = json.dumps(w)
        extra = "".join(
            f" {json.dumps(k)}: {json.dumps(v)},"
            for k, v in proj.items()
            if k not in ("from", "to", "weights")
        )
        projs.append(
            f'    {{"from": {json.dumps(proj["from"])}, "to": {json.dumps(proj["to"])},{extra}\n'
            f'      "weights": {w_text}}}'
        )
    lines.append(",\n".join(projs))
    lines.append("  ]")
    lines.append("}")
    return "\n".join(line for line in lines if line) + "\n"
