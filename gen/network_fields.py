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
# Optional: a population with it is current-based (docs/neuron.md).
_LIF_OPTIONAL = ("syn_decay",)
PROJECTION_KEYS = ("from", "to", "weights")
_NPZ_KEYS = ("npz", "key")
_KINDS = ("input", "lif")


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


def parse_population(path, spec, v_width):
    """The population at JSON ``path``: ``(name, kind, size, params, bias, per_neuron_bias)``."""
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
        return name, kind, size, None, None, False

    bias_spec = spec["bias"]
    per_neuron = not is_int(bias_spec) and not isinstance(bias_spec, bool)
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
    try:
        params = NeuronParams(
            v_width=v_width, decay=tuple(decay), bias=0 if per_neuron else bias_spec, **values
        )
    except (TypeError, ValueError) as error:
        raise field_error(path, str(error)) from None
    if per_neuron:
        bias = _bias_list(f"{path}.bias", bias_spec, size, v_width)
    else:
        bias = np.full(size, params.bias, np.int64)
    return name, kind, size, params, bias, per_neuron


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


def parse_weights(path, value, shape, names, w_width, base_dir, npz_cache):
    """The weight matrix at JSON ``path`` (a list of lists, an array or an ``.npz`` reference)
    as an int64 array of ``shape``, every value in the ``w_width`` range."""
    lo, hi = w_range(w_width)
    if isinstance(value, dict):
        array = _npz_weights(path, value, base_dir, npz_cache)
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


def _npz_weights(path, ref, base_dir, npz_cache):
    check_keys(path, ref, _NPZ_KEYS, _NPZ_KEYS)
    file, key = ref["npz"], ref["key"]
    if not isinstance(file, str) or not file:
        raise field_error(f"{path}.npz", f"must be a file name, not {file!r}")
    if not isinstance(key, str):
        raise field_error(f"{path}.key", f"must be a string, not {key!r}")
    full = os.path.join(os.fspath(base_dir), file)
    if full not in npz_cache:
        if not os.path.isfile(full):
            raise field_error(f"{path}.npz", f"file {file!r} not found (looked for {full!r})")
        try:
            with np.load(full, allow_pickle=False) as archive:
                npz_cache[full] = {name: archive[name] for name in archive.files}
        except (ValueError, OSError, EOFError, zipfile.BadZipFile) as error:
            detail = str(error).splitlines()[0] if str(error) else type(error).__name__
            raise field_error(
                f"{path}.npz", f"cannot read {file!r} as an .npz file ({detail})"
            ) from None
    arrays = npz_cache[full]
    if key not in arrays:
        raise field_error(
            f"{path}.key", f"{file!r} has no array {key!r} (it has: {', '.join(arrays) or 'none'})"
        )
    return arrays[key]
