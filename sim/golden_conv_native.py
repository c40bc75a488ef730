"""The compiled convolution sums of the golden model (``golden_conv_kernel.cpp``).

:func:`conv_kernel` compiles the C++ source once per content with the system C++ compiler
(``c++``, which the Verilator flow needs too) into the cache of :mod:`.native_build`
(``<cache_root()>/<hash>/golden_conv_kernel.so``; the hash covers the source, the flags and the
compiler's version) and loads it with :mod:`ctypes`. Where the compiler is missing or the build
fails, or ``SPIKEFORGE_CONV_KERNEL=numpy`` is set, the golden model computes the same sums with
NumPy; :func:`conv_path` says which way the convolutions of this process take, and why.
"""

import ctypes
import functools
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from .native_build import cache_root

__all__ = ["KERNEL_ENV", "conv_kernel", "conv_path"]

KERNEL_ENV = "SPIKEFORGE_CONV_KERNEL"
_SOURCE = Path(__file__).with_name("golden_conv_kernel.cpp")
_LIBRARY = "golden_conv_kernel.so"
_FLAGS = ("-O2", "-shared", "-fPIC")
# The (accumulator, sum) types the kernel has an entry point for (``conv_add_<acc>_<sum>``).
_ENTRIES = ("int16_int16", "int32_int16", "int32_int32", "int64_int16", "int64_int64")
_POINTER = ctypes.c_void_p
_ARGS = (_POINTER, _POINTER, ctypes.c_int64, *[_POINTER] * 6)


def conv_path():
    """``"native"`` where the compiled kernel computes the convolution sums, else
    ``"numpy (<reason>)"``."""
    kernel, reason = _load()
    return "native" if kernel is not None else f"numpy ({reason})"


def conv_kernel(dtype, sum_dtype):
    """The compiled entry point for accumulators of ``dtype`` and sums of ``sum_dtype``, or None
    (use the NumPy ways).

    Its arguments are the pointers and count of ``conv_add_<acc>_<sum>`` in
    ``golden_conv_kernel.cpp``.
    """
    kernel, _ = _load()
    entry = f"{np.dtype(dtype).name}_{np.dtype(sum_dtype).name}"
    if kernel is None or entry not in _ENTRIES:
        return None
    return getattr(kernel, f"conv_add_{entry}")


@functools.cache
def _load():
    """``(library, None)``, or ``(None, why not)``; built and loaded once per process."""
    if os.environ.get(KERNEL_ENV, "").lower() == "numpy":
        return None, f"{KERNEL_ENV}=numpy"
    try:
        library = ctypes.CDLL(str(_build()))
    except (OSError, subprocess.SubprocessError) as error:
        return None, str(error).splitlines()[0] if str(error) else type(error).__name__
    for name in _ENTRIES:
        entry = getattr(library, f"conv_add_{name}")
        entry.argtypes, entry.restype = _ARGS, None
    return library, None


def _build():
    """The shared library, from the cache or compiled into it; OSError where it cannot be."""
    compiler = shutil.which("c++")
    if compiler is None:
        raise OSError("no C++ compiler (c++) on PATH")
    source = _SOURCE.read_text()
    version = subprocess.run(
        [compiler, "--version"], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    settings = {"source": source, "flags": _FLAGS, "compiler": version}
    key = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:24]
    root = cache_root()
    library = root / key / _LIBRARY
    if library.is_file():
        return library
    root.mkdir(parents=True, exist_ok=True)
    # Built in a temporary folder renamed into place, as native_build does: concurrent builds
    # never see each other's half-written files.
    folder = Path(tempfile.mkdtemp(prefix=f"{key}.build-", dir=root))
    result = subprocess.run(
        [compiler, *_FLAGS, "-o", str(folder / _LIBRARY), str(_SOURCE)],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    if result.returncode:
        shutil.rmtree(folder, ignore_errors=True)
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        raise OSError(f"c++ could not build {_LIBRARY}: {(lines or ['no output'])[0]}")
    try:
        folder.rename(library.parent)
    except OSError:
        # Another process finished the same build first; its library is identical.
        shutil.rmtree(folder, ignore_errors=True)
    return library
