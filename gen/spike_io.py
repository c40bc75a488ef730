"""Spike and result files of ``docs/network.md``: input spikes in, ``.npz`` results out.

Input spikes are an integer (or bool) 0/1 array of shape ``(T, n_in)`` or ``(B, T, n_in)``, in a
``.npy`` file or in an ``.npz`` file (array ``spikes``, or its only array). Results are an ``.npz``
with ``spikes_<population>`` (uint8) for every LIF population, ``v_<population>`` (int32, the
observable membrane trace) when traces were asked for, ``cycles`` (int64, one per timestep)
from hardware back-ends, and ``shape_<population>`` (int64, ``[C, H, W]`` or ``[C, L]``) for every
such population that has a shape.

Every ``.npz`` written here is byte-for-byte deterministic: the zip members carry a fixed date, so
that the same run gives the same file.
"""

import io
import os
import zipfile
from dataclasses import dataclass, field

import numpy as np

from ..spec.errors import SpikeforgeError

__all__ = [
    "NetworkRun",
    "write_npz",
    "load_input_spikes",
    "check_input_spikes",
    "save_outputs",
    "load_outputs",
]

# Any fixed date; zip cannot store one before 1980.
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)
# The first bytes of an .npy file, and of a zip archive (an .npz) or an empty one.
_NPY_MAGIC = b"\x93NUMPY"
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")


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
    shapes : dict of str to tuple of int
        The shape ``(C, H, W)`` or ``(C, L)`` of the populations that have one (a result file's
        ``shape_<population>``); the last axis of their arrays is that shape in C order.
    """

    spikes: dict
    v: dict = field(default_factory=dict)
    cycles: np.ndarray | None = None
    shapes: dict = field(default_factory=dict)

    def save(self, path, net=None):
        """Write the result ``.npz`` (:func:`save_outputs`), with the shapes of ``net``'s shaped
        populations among ``spikes`` when ``net`` is given (else ``shapes``)."""
        shapes = self.shapes
        if net is not None:
            shapes = {
                pop.name: pop.shape
                for pop in net.populations
                if pop.shape is not None and pop.name in self.spikes
            }
        save_outputs(path, self.spikes, self.v, self.cycles, shapes)


def write_npz(path, arrays):
    """Write ``arrays`` (name -> array) as an uncompressed ``.npz`` that ``np.load`` reads.

    Unlike ``np.savez`` the file does not depend on the clock. Members are written in the given
    order.
    """
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as archive:
        for name, array in arrays.items():
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, np.ascontiguousarray(array), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=_ZIP_DATE)
            info.external_attr = 0o644 << 16
            archive.writestr(info, buffer.getvalue())


def _read_array(path, what, key=None):
    """Read one array from a ``.npy`` or ``.npz`` file, with one-line errors naming ``what``."""
    path = os.fspath(path)
    suffix = os.path.splitext(path)[1].lower()
    if suffix not in (".npy", ".npz"):
        raise SpikeforgeError(f"{what}: file must be .npy or .npz, not {path!r}")
    if not os.path.isfile(path):
        raise SpikeforgeError(f"{what}: file {path!r} not found")
    try:
        with open(path, "rb") as file:
            # np.load takes anything else for a pickle and advises allow_pickle=True.
            magic = file.read(6)
            if magic[:4] not in _ZIP_MAGIC and magic != _NPY_MAGIC:
                raise SpikeforgeError(
                    f"{what}: {path!r} is not a NumPy file (neither an .npy array nor an .npz "
                    "archive)"
                )
            file.seek(0)
            loaded = np.load(file, allow_pickle=False)
            # np.load goes by the file's contents, not its name: check they agree.
            if suffix == ".npy":
                if not isinstance(loaded, np.ndarray):
                    loaded.close()
                    raise SpikeforgeError(f"{what}: {path!r} is an .npz archive, not an .npy array")
                return loaded
            if not isinstance(loaded, np.lib.npyio.NpzFile):
                raise SpikeforgeError(f"{what}: {path!r} is an .npy array, not an .npz archive")
            with loaded as archive:
                names = list(archive.files)
                if key in names:
                    return archive[key]
                if key is None or len(names) != 1:
                    raise SpikeforgeError(
                        f"{what}: {path!r} has no array {key!r} (it has: "
                        f"{', '.join(names) or 'none'})"
                    )
                return archive[names[0]]
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as error:
        detail = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise SpikeforgeError(f"{what}: cannot read {path!r} as a NumPy file ({detail})") from None


def check_input_spikes(spikes, n_inputs, what="input"):
    """Validate an array of input spikes and return it as a C-contiguous uint8 array.

    Parameters
    ----------
    spikes : array_like
        Integer or bool 0/1 values shaped ``(T, n_in)`` or ``(B, T, n_in)``, ``T >= 1``.
    n_inputs : int
        The network's ``n_in``.
    what : str
        Name used in error messages.

    Raises
    ------
    SpikeforgeError
        Wrong dimensions, wrong width, an empty time axis, a non-integer dtype or a value other
        than 0 and 1.
    """
    array = np.asarray(spikes)
    if not (array.dtype == np.bool_ or np.issubdtype(array.dtype, np.integer)):
        raise SpikeforgeError(
            f"{what}: dtype {array.dtype} is not an integer type; spikes are 0/1 integers"
        )
    if array.ndim not in (2, 3):
        raise SpikeforgeError(f"{what}: shape {array.shape} must be (T, n_in) or (B, T, n_in)")
    if array.shape[-1] != n_inputs:
        raise SpikeforgeError(
            f"{what}: shape {array.shape} has {array.shape[-1]} columns, the "
            f"network has n_in={n_inputs} input neurons"
        )
    if array.shape[-2] == 0 or (array.ndim == 3 and array.shape[0] == 0):
        raise SpikeforgeError(f"{what}: shape {array.shape} has no timesteps or no batch entries")
    if array.dtype == np.bool_:
        # Always 0 or 1, and laid out as uint8: no check and no conversion (a batch of the
        # bench's NIR CNN is 44 M inputs).
        return np.ascontiguousarray(array).view(np.uint8)
    bad = (array != 0) & (array != 1)
    if bad.any():
        index = tuple(int(i) for i in np.argwhere(bad)[0])
        raise SpikeforgeError(
            f"{what}: values must be 0 or 1, found {int(array[index])} at index {index}"
        )
    return np.ascontiguousarray(array, np.uint8)


def load_input_spikes(source, net, what="input"):
    """Input spikes for ``net`` from a ``.npy``/``.npz`` path or an array.

    See :func:`check_input_spikes` for the rules.

    An ``.npz`` file must hold an array named ``spikes`` or exactly one array.
    """
    if isinstance(source, (str, os.PathLike)):
        source = _read_array(source, what, key="spikes")
    return check_input_spikes(source, net.n_inputs, what)


def save_outputs(path, spikes, v=None, cycles=None, shapes=None):
    """Write a result ``.npz``.

    Parameters
    ----------
    path : str or path-like
    spikes : dict of str to array
        Spikes of every LIF population, ``(T, size)`` or ``(B, T, size)``; stored as uint8.
    v : dict of str to array, optional
        Membrane traces, same shapes; stored as int32 (every ``v_width <= 32`` value fits).
    cycles : array, optional
        Clock cycles per timestep (hardware back-ends); stored as int64.
    shapes : dict of str to tuple of int, optional
        The shape ``(C, H, W)`` or ``(C, L)`` of populations of ``spikes``; stored as int64
        ``shape_<population>``.
    """
    arrays = {f"spikes_{name}": np.asarray(array, np.uint8) for name, array in spikes.items()}
    for name, array in (v or {}).items():
        arrays[f"v_{name}"] = np.asarray(array, np.int32)
    if cycles is not None:
        arrays["cycles"] = np.asarray(cycles, np.int64)
    for name, shape in (shapes or {}).items():
        arrays[f"shape_{name}"] = np.asarray(shape, np.int64)
    write_npz(path, arrays)


def load_outputs(path, what="result"):
    """Read a result ``.npz`` back as a :class:`NetworkRun`."""
    path = os.fspath(path)
    if not path.lower().endswith(".npz"):
        raise SpikeforgeError(f"{what}: file must be .npz, not {path!r}")
    if not os.path.isfile(path):
        raise SpikeforgeError(f"{what}: file {path!r} not found")
    spikes, v, cycles, shapes = {}, {}, None, {}
    try:
        loaded = np.load(path, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):
            raise SpikeforgeError(f"{what}: {path!r} is an .npy array, not an .npz archive")
        with loaded as archive:
            for key in archive.files:
                if key.startswith("spikes_"):
                    spikes[key[len("spikes_") :]] = archive[key]
                elif key.startswith("v_"):
                    v[key[len("v_") :]] = archive[key].astype(np.int64)
                elif key.startswith("shape_"):
                    shapes[key[len("shape_") :]] = _shape(path, what, key, archive[key])
                elif key == "cycles":
                    cycles = archive[key]
                else:
                    raise SpikeforgeError(
                        f"{what}: {path!r} has an unknown array {key!r}; "
                        f"allowed are spikes_<name>, v_<name>, shape_<name>, cycles"
                    )
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as error:
        detail = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise SpikeforgeError(f"{what}: cannot read {path!r} as a NumPy file ({detail})") from None
    if not spikes:
        raise SpikeforgeError(f"{what}: {path!r} has no spikes_<population> array")
    for name, shape in shapes.items():
        if name not in spikes:
            raise SpikeforgeError(f"{what}: {path!r} has shape_{name} but no spikes_{name}")
        size = spikes[name].shape[-1]
        if int(np.prod(shape)) != size:
            raise SpikeforgeError(
                f"{what}: {path!r}: shape_{name} {list(shape)} does not match the {size} "
                f"neurons of spikes_{name}"
            )
    return NetworkRun(spikes=spikes, v=v, cycles=cycles, shapes=shapes)


def _shape(path, what, key, array):
    """The population shape stored as ``key``: 2 or 3 positive integers."""
    if (
        array.ndim != 1
        or len(array) not in (2, 3)
        or not np.issubdtype(array.dtype, np.integer)
        or (array < 1).any()
    ):
        raise SpikeforgeError(
            f"{what}: {path!r}: {key} must be 2 or 3 positive integers ([C, H, W] or [C, L]), "
            f"not {array.tolist()!r}"
        )
    return tuple(int(n) for n in array)
