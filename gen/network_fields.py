"""The fields of a network description (``docs/network.md``), each checked where it is read.

Every check names the JSON path of the field and the rule broken, in one line, as a
:class:`SpikeforgeError`; :meth:`spikeforge.gen.network.Network.from_dict` puts them together.
"""

import os
import re
import zipfile

import numpy as np

from ..spec.errors import SpikeforgeError
from ..spec.limits import v_range, w_range
from ..spec.params import NeuronParams

__all__ = [
    "SIZE_MAX",
    "TOP_KEYS",
    "TOP_REQUIRED",
    "PROJECTION_KEYS",
    "field_error",
    "is_int",
    "field_int",
    "check_keys",
    "check_list",
    "parse_population",
    "parse_weights",
    "parse_json_int",
    "check_int_sizes",
    "NpzCache",
]

# Largest population; far beyond any FPGA, it only stops a typo from allocating gigabytes.
SIZE_MAX = 1 << 20
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}\Z")
TOP_KEYS = ("format", "v_width", "w_width", "acc_width", "populations", "projections")
TOP_REQUIRED = ("format", "v_width", "w_width", "populations", "projections")
_INPUT_KEYS = ("name", "kind", "size")
_LIF_KEYS = (
    "name",
    "kind",
    "size",
    "v_th",
    "v_reset",
    "v_rest",
    "v_peak",
    "t_ref",
    "decay",
    "reset_mode",
    "bias",
)
# Optional: a population with syn_decay is current-based; reset_timing ("same" by default) and
# threshold_compare (">" by default) are of docs/neuron.md; max_spikes can only be 1.
_LIF_OPTIONAL = ("syn_decay", "reset_timing", "threshold_compare", "max_spikes")
PROJECTION_KEYS = ("from", "to", "weights")
_NPZ_KEYS = ("npz", "key")
_KINDS = ("input", "lif")
# The first bytes of a zip archive (an .npz), or of an empty one.
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")
# Longest integer literal read from a network file: every field fits in far fewer digits, and
# Python refuses to convert beyond 4,300 digits with an error that names no field.
_INT_DIGITS_MAX = 40


class _HugeInt:
    """An integer literal too long to be any field's value; the field's check names it."""

    def __init__(self, digits):
        self.digits = digits

    def __repr__(self):
        return f"an integer of {self.digits:,} digits"


def parse_json_int(text):
    """``json.loads(..., parse_int=parse_json_int)``: an int, or a :class:`_HugeInt` stand-in
    (which :func:`check_int_sizes` finds) for a literal of more than a few dozen digits."""
    digits = len(text.lstrip("-"))
    return _HugeInt(digits) if digits > _INT_DIGITS_MAX else int(text)


def check_int_sizes(d):
    """Raise naming the JSON path of the first integer literal too long for any field."""
    stack = [("", d)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, _HugeInt):
            raise field_error(
                path or "network",
                f"{value!r} is too long for any field (at most {_INT_DIGITS_MAX})",
            )
        if isinstance(value, dict):
            items = [(f"{path}.{k}" if path else k, v) for k, v in value.items()]
        elif isinstance(value, list):
            items = [(f"{path}[{i}]", v) for i, v in enumerate(value)]
        else:
            continue
        stack.extend(reversed(items))


def field_error(path, rule):
    """The :class:`SpikeforgeError` of ``rule`` broken at JSON ``path``."""
    return SpikeforgeError(f"{path}: {rule}")


def is_int(value):
    """An integer of Python or NumPy, not a bool."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def field_int(path, value, lo, hi):
    """``value`` as an int, or the error naming ``path`` unless it is an integer in ``[lo, hi]``."""
    if not is_int(value) or not lo <= value <= hi:
        raise field_error(path, f"must be an integer in [{lo}, {hi}], not {value!r}")
    return int(value)


def check_keys(path, obj, allowed, required):
    """Raise unless ``obj`` is a JSON object with ``allowed`` keys only and all ``required``."""
    if not isinstance(obj, dict):
        raise field_error(path, f"must be a JSON object, not {type(obj).__name__}")
    for key in obj:
        if key not in allowed:
            raise field_error(path, f"unknown key {key!r}; allowed are {', '.join(allowed)}")
    for key in required:
        if key not in obj:
            raise field_error(path, f"missing key {key!r}")


def check_list(path, value):
    """``value``, or the error naming ``path`` unless it is a JSON list."""
    if not isinstance(value, list):
        raise field_error(path, f"must be a JSON list, not {type(value).__name__}")
    return value


# The neuron parameters that may be given per neuron (docs/network.md): integers and decays.
PER_NEURON_INTS = ("v_th", "v_reset", "v_rest")
PER_NEURON_DECAYS = ("decay", "syn_decay")


def parse_population(path, spec, v_width):
    """The population at JSON ``path``:
    ``(name, kind, size, params, bias, per_neuron_bias, per_neuron)``.

    ``per_neuron`` maps each of :data:`PER_NEURON_INTS` and :data:`PER_NEURON_DECAYS` given per
    neuron to its values (a read-only int64 array, or a tuple of ``size`` tuples of shift terms);
    ``params`` then holds the values of neuron 0.
    """
    if not isinstance(spec, dict):
        raise field_error(path, f"must be a JSON object, not {type(spec).__name__}")
    if "kind" not in spec:
        raise field_error(path, "missing key 'kind'")
    kind = spec["kind"]
    if kind not in _KINDS:
        raise field_error(f"{path}.kind", f"must be one of 'input', 'lif', not {kind!r}")
    required = _INPUT_KEYS if kind == "input" else _LIF_KEYS
    check_keys(path, spec, required if kind == "input" else _LIF_KEYS + _LIF_OPTIONAL, required)
    name = spec["name"]
    if not isinstance(name, str) or not _NAME.match(name):
        raise field_error(
            f"{path}.name",
            f"must be 1 to 64 letters, digits or '_' not starting with a digit, not {name!r}",
        )
    size = field_int(f"{path}.size", spec["size"], 1, SIZE_MAX)
    if kind == "input":
        return name, kind, size, None, None, False, {}
    per_neuron = _per_neuron(path, spec, name, size, v_width)
    if per_neuron:
        # Neuron 0 stands in for the population in the scalar checks below; every neuron is
        # checked against the rules that tie its values together afterwards.
        spec = dict(spec)
        for key, values in per_neuron.items():
            spec[key] = values[0] if key in PER_NEURON_INTS else list(values[0])

    bias_spec = spec["bias"]
    bias_per_neuron = not is_int(bias_spec) and not isinstance(bias_spec, bool)
    decay = spec["decay"]
    if not isinstance(decay, list):
        raise field_error(f"{path}.decay", f"must be a JSON list of shift terms, not {decay!r}")
    values = {
        key: spec[key] for key in ("v_th", "v_reset", "v_rest", "v_peak", "t_ref", "reset_mode")
    }
    if "syn_decay" in spec:
        if not isinstance(spec["syn_decay"], list):
            raise field_error(
                f"{path}.syn_decay",
                f"must be a JSON list of shift terms, not {spec['syn_decay']!r}",
            )
        values["syn_decay"] = tuple(spec["syn_decay"])
    values.update({key: spec[key] for key in ("reset_timing", "threshold_compare") if key in spec})
    if "max_spikes" in spec and not (is_int(spec["max_spikes"]) and spec["max_spikes"] == 1):
        raise field_error(
            f"{path}.max_spikes",
            f"must be 1, not {spec['max_spikes']!r}: a neuron fires at most once per step "
            "(for Sinabs IAF/LIF, export with spike_fn=SingleSpike)",
        )
    try:
        params = NeuronParams(
            v_width=v_width,
            decay=tuple(decay),
            bias=0 if bias_per_neuron else bias_spec,
            **values,
        )
    except (TypeError, ValueError) as error:
        raise field_error(path, str(error)) from None
    if bias_per_neuron:
        bias = _bias_list(f"{path}.bias", bias_spec, size, v_width)
    else:
        bias = np.full(size, params.bias, np.int64)
    if per_neuron:
        _check_order(path, name, params, per_neuron)
    return name, kind, size, params, bias, bias_per_neuron, per_neuron


def _per_neuron(path, spec, name, size, v_width):
    """The fields of ``spec`` given per neuron, checked one by one (``parse_population``)."""
    out = {}
    lo, hi = v_range(v_width)
    for key in PER_NEURON_INTS:
        value = spec.get(key)
        if not isinstance(value, list):
            continue
        if len(value) != size:
            raise field_error(
                f"{path}.{key}", f"has {len(value)} values, population {name!r} has size {size}"
            )
        for j, x in enumerate(value):
            if not is_int(x) or not lo <= x <= hi:
                raise field_error(
                    f"{path}.{key}[{j}]",
                    f"population {name!r}: must be an integer in [{lo}, {hi}], not {x!r}",
                )
        array = np.array(value, np.int64)
        array.setflags(write=False)
        out[key] = array
    for key in PER_NEURON_DECAYS:
        value = spec.get(key)
        # A list of lists is per neuron; a list of shift terms (or an empty list) is not.
        if not isinstance(value, list) or not value or not isinstance(value[0], list):
            continue
        if len(value) != size:
            raise field_error(
                f"{path}.{key}",
                f"has {len(value)} lists of shift terms, population {name!r} has size {size}",
            )
        decays = []
        for j, terms in enumerate(value):
            try:
                # NeuronParams checks the terms (count and range) as for one population.
                NeuronParams(v_th=0, v_width=v_width, decay=terms)
            except (TypeError, ValueError) as error:
                raise field_error(
                    f"{path}.{key}[{j}]",
                    f"population {name!r}: {str(error).replace('decay', key, 1)}",
                ) from None
            decays.append(tuple(terms))
        out[key] = tuple(decays)
    return out


def _check_order(path, name, params, per_neuron):
    """Every neuron's ``v_reset <= v_th <= v_peak`` with its own values."""
    size = max(len(v) for v in per_neuron.values())
    cols = {
        key: per_neuron.get(key, np.full(size, getattr(params, key), np.int64))
        for key in ("v_th", "v_reset")
    }
    bad = np.flatnonzero((cols["v_reset"] > cols["v_th"]) | (cols["v_th"] > params.v_peak))
    if bad.size:
        j = int(bad[0])
        raise field_error(
            path,
            f"population {name!r}: neuron {j} must satisfy v_reset <= v_th <= v_peak, not "
            f"v_reset={cols['v_reset'][j]}, v_th={cols['v_th'][j]}, v_peak={params.v_peak}",
        )


def _bias_list(path, value, size, v_width):
    lo, hi = v_range(v_width)
    if isinstance(value, np.ndarray):
        if value.ndim != 1 or not np.issubdtype(value.dtype, np.integer):
            raise field_error(
                path,
                f"must be an integer or a list of {size} integers, not an array "
                f"of shape {value.shape} and dtype {value.dtype}",
            )
        value = value.tolist()
    if not isinstance(value, list):
        raise field_error(path, f"must be an integer or a list of {size} integers, not {value!r}")
    if len(value) != size:
        raise field_error(path, f"has {len(value)} values, the population has size {size}")
    for j, b in enumerate(value):
        field_int(f"{path}[{j}]", b, lo, hi)
    return np.array(value, np.int64)


def parse_weights(path, value, shape, names, w_width, npz_cache):
    """The weight matrix at JSON ``path`` (a list of lists, an array or an ``.npz`` reference)
    as an int64 array of ``shape``, every value in the ``w_width`` range."""
    lo, hi = w_range(w_width)
    if isinstance(value, dict):
        array = npz_cache.weights(path, value)
    elif isinstance(value, np.ndarray):
        array = value
    elif isinstance(value, list):
        array = _inline_weights(path, value, shape, w_width)
    else:
        raise field_error(
            path,
            f'must be a list of lists of integers or {{"npz": FILE, "key": '
            f"NAME}}, not {type(value).__name__}",
        )
    if not np.issubdtype(array.dtype, np.integer):
        raise field_error(path, f"dtype {array.dtype} is not an integer type; weights are integers")
    if array.shape != shape:
        raise field_error(
            path,
            f"shape {tuple(array.shape)}, expected (size of {names[0]!r}, size of "
            f"{names[1]!r}) = {shape}",
        )
    if array.size:
        bad = (array < lo) | (array > hi)
        if bad.any():
            index = tuple(int(i) for i in np.argwhere(bad)[0])
            raise _range_error(path, array[index], index, w_width)
    return np.array(array, np.int64)


def _inline_weights(path, rows, shape, w_width):
    lo, hi = w_range(w_width)
    if rows and not any(isinstance(row, list) for row in rows):
        raise field_error(
            path,
            f"must be a list of {shape[0]} rows (size of the source) of {shape[1]} integers "
            f"(size of the target), not a flat list of {len(rows)} values",
        )
    if len(rows) != shape[0]:
        raise field_error(path, f"has {len(rows)} rows, expected {shape[0]} (size of the source)")
    for i, row in enumerate(rows):
        if not isinstance(row, list) or len(row) != shape[1]:
            got = f"{len(row)} entries" if isinstance(row, list) else type(row).__name__
            raise field_error(
                f"{path}[{i}]",
                f"must be a list of {shape[1]} integers (size of the target), not {got}",
            )
        for j, w in enumerate(row):
            if not is_int(w):
                raise field_error(f"{path}[{i}][{j}]", f"must be an integer, not {w!r}")
            if not lo <= w <= hi:
                # Checked here because a Python int beyond int64 would not even convert.
                raise _range_error(path, w, (i, j), w_width)
    return np.array(rows, np.int64).reshape(shape)


def _range_error(path, value, index, w_width):
    lo, hi = w_range(w_width)
    return field_error(
        path, f"value {int(value)} at {list(index)} outside w_width={w_width} range [{lo}, {hi}]"
    )


class NpzCache:
    """The ``.npz`` files of one network, each read once.

    A reference names a file relative to ``base_dir``, ending in ``.npz``, that stays inside
    ``base_dir`` (links resolved) unless ``allow_outside``.
    """

    def __init__(self, base_dir, allow_outside=False):
        self.base_dir = os.path.realpath(os.fspath(base_dir))
        self.allow_outside = allow_outside
        self._arrays = {}

    def files(self):
        """The files read, in order."""
        return list(self._arrays)

    def weights(self, path, ref):
        """The array of the reference ``ref`` at JSON ``path``."""
        check_keys(path, ref, _NPZ_KEYS, _NPZ_KEYS)
        file, key = ref["npz"], ref["key"]
        if not isinstance(file, str) or not file:
            raise field_error(f"{path}.npz", f"must be a file name, not {file!r}")
        if not isinstance(key, str):
            raise field_error(f"{path}.key", f"must be a string, not {key!r}")
        if not file.lower().endswith(".npz"):
            raise field_error(f"{path}.npz", f"must name an .npz file, not {file!r}")
        full = os.path.realpath(os.path.join(self.base_dir, file))
        if not self.allow_outside and os.path.commonpath([full, self.base_dir]) != self.base_dir:
            raise field_error(
                f"{path}.npz",
                f"{file!r} is outside the network's folder {self.base_dir}; move it there or "
                "allow it with 'spikeforge --allow-outside-npz'",
            )
        if full not in self._arrays:
            self._arrays[full] = _read_npz(f"{path}.npz", file, full)
        arrays = self._arrays[full]
        if key not in arrays:
            raise field_error(
                f"{path}.key",
                f"{file!r} has no array {key!r} (it has: {', '.join(arrays) or 'none'})",
            )
        return arrays[key]


def _read_npz(path, file, full):
    """Every array of the ``.npz`` file ``full``, named ``file`` at JSON ``path`` in errors."""
    if not os.path.isfile(full):
        raise field_error(path, f"file {file!r} not found (looked for {full!r})")
    try:
        with open(full, "rb") as stream:
            if stream.read(4) not in _ZIP_MAGIC:
                raise field_error(
                    path, f"cannot read {file!r} as an .npz file (it is not a zip archive)"
                )
            stream.seek(0)
            with np.load(stream, allow_pickle=False) as archive:
                return {name: archive[name] for name in archive.files}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as error:
        detail = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise field_error(path, f"cannot read {file!r} as an .npz file ({detail})") from None
