"""Files the command line writes: checked before the work starts, then written atomically.

Every output goes through :func:`check_outputs` before a command does its work, and is written
with :func:`atomic_write` or :func:`atomic_paths`: into a temporary file in the same folder,
flushed and synced, then renamed over the target. A failure at any point (a full disk, a
``ulimit -f``, Ctrl-C) leaves an existing file as it was and removes the temporary file. A command
with several outputs writes them all to temporary files first and renames them only when every
one is complete, so it leaves all or none of them.
"""

import contextlib
import os
import tempfile

from .errors import SpikeforgeError

__all__ = [
    "check_outputs",
    "check_output_folder",
    "check_output_dir",
    "atomic_paths",
    "atomic_write",
]


def _label(option, path):
    return f"{option} {path}" if option else str(path)


def _same_file(a, b):
    """Whether paths ``a`` and ``b`` name one file: the same resolved path or the same inode."""
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def check_outputs(outputs, inputs=()):
    """Refuse outputs that cannot be written, before any work is done.

    Parameters
    ----------
    outputs : iterable of (str, path, tuple of str or None)
        ``(option, path, suffixes)``: the option that named the file (``"-o"``), the file, and
        the suffixes its format allows (lower case, with the dot), or None for any.
    inputs : iterable of path
        Files the command reads; no output may be one of them.

    Raises
    ------
    SpikeforgeError
        One line naming the option and the path: a folder that is missing or not writable, a
        path that is a folder, a wrong suffix, a path that is an input, or two outputs that are
        the same file.
    """
    inputs = [os.fspath(p) for p in inputs if p is not None]
    seen = []
    for option, path, suffixes in outputs:
        if path is None:
            continue
        path = os.fspath(path)
        label = _label(option, path)
        if not path or path.endswith(os.sep):
            raise SpikeforgeError(f"{label}: must be a file name, not a folder")
        if suffixes is not None and os.path.splitext(path)[1].lower() not in suffixes:
            raise SpikeforgeError(f"{label}: the file must end in {' or '.join(suffixes)}")
        if os.path.isdir(path):
            raise SpikeforgeError(f"{label}: is a folder, not a file")
        check_output_folder(option, os.path.dirname(path) or ".", path)
        if os.path.exists(path) and not os.access(path, os.W_OK):
            raise SpikeforgeError(f"{label}: the file is not writable")
        for source in inputs:
            if _same_file(path, source):
                raise SpikeforgeError(f"{label}: is the input {source}; choose another file")
        for other_option, other in seen:
            if _same_file(path, other):
                raise SpikeforgeError(f"{label}: is also the output of {other_option}")
        seen.append((option, path))


def check_output_folder(option, folder, path=None):
    """Refuse a ``folder`` to write into that is missing, a file or not writable.

    ``path`` is the file or folder the user named (default ``folder``), for the message.
    """
    label = _label(option, path if path is not None else folder)
    if not os.path.isdir(folder):
        what = "is a file" if os.path.exists(folder) else "does not exist"
        raise SpikeforgeError(f"{label}: the folder {folder} {what}")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise SpikeforgeError(f"{label}: the folder {folder} is not writable")


def check_output_dir(option, folder):
    """Refuse a ``folder`` that a command makes (with its parents) and writes files into: it must
    be a folder, or not exist below a folder that is writable."""
    folder = os.fspath(folder)
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise SpikeforgeError(f"{_label(option, folder)}: is a file, not a folder")
    existing = os.path.abspath(folder)
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    check_output_folder(option, existing, folder)


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _sync(path):
    with open(path, "rb") as file:
        os.fsync(file.fileno())


def _sync_folder(folder):
    # The rename is durable only once the folder is; not every system can open a folder.
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _failed_write(error, targets, temps, options):
    """The option and file of a writer's ``error``: the temporary file it names, or every
    target when it names none of them (a failed ``write()`` names no file)."""
    named = getattr(error, "filename", None)
    labels = []
    for option, target, temp in zip(options, targets, temps):
        if isinstance(named, str) and os.path.abspath(named) == os.path.abspath(temp):
            return _label(option, target)
        labels.append(_label(option, target))
    return ", ".join(labels)


@contextlib.contextmanager
def atomic_paths(targets, option=None):
    """Temporary paths to write ``targets`` through; renamed over them when all are written.

    ``with atomic_paths(["a.npz", "a.png"]) as (npz, png): ...`` writes the two temporary files
    (in the targets' folders, with the targets' suffixes, so that writers that choose the
    format by suffix still work). On a normal exit every temporary file is synced and renamed
    over its target; on any exception, Ctrl-C included, the temporary files are removed and
    the targets stay as they were. ``option`` names the option of every target (a list), or of
    all of them, in messages.

    Raises
    ------
    SpikeforgeError
        An operating-system error while writing, as one line naming ``option`` and the file
        (every target when a writer's error does not say which file failed).
    """
    targets = [os.fspath(t) for t in targets]
    options = list(option) if isinstance(option, (list, tuple)) else [option] * len(targets)
    temps = []
    try:
        for target in targets:
            folder = os.path.dirname(target) or "."
            stem, suffix = os.path.splitext(os.path.basename(target))
            fd, temp = tempfile.mkstemp(suffix=suffix, prefix=f".{stem}.tmp-", dir=folder)
            os.close(fd)
            temps.append(temp)
        try:
            yield temps
        except OSError as error:
            label = _failed_write(error, targets, temps, options)
            raise SpikeforgeError(f"{label}: cannot write: {error.strerror or error}") from None
        current = 0
        try:
            for current in range(len(targets)):
                target, temp = targets[current], temps[current]
                _sync(temp)
                mode = (
                    os.stat(target).st_mode & 0o777 if os.path.exists(target) else 0o666 & ~_umask()
                )
                os.chmod(temp, mode)
            for current in range(len(targets)):
                target, temp = targets[current], temps[current]
                os.replace(temp, target)
                _sync_folder(os.path.dirname(target) or ".")
        except OSError as error:
            reason = error.strerror or str(error)
            label = _label(options[current], targets[current])
            raise SpikeforgeError(f"{label}: cannot write: {reason}") from None
    except OSError as error:
        # mkstemp itself: the folder went away or is full.
        label = _label(options[len(temps)], targets[len(temps)])
        raise SpikeforgeError(f"{label}: cannot write: {error.strerror or error}") from None
    finally:
        for temp in temps:
            with contextlib.suppress(OSError):
                os.remove(temp)


@contextlib.contextmanager
def atomic_write(path, mode="w", option=None, **kwargs):
    """``open(path, mode)`` that replaces ``path`` only once the file is complete.

    ``kwargs`` go to :func:`open`; text files default to UTF-8 with ``\\n`` line ends. See
    :func:`atomic_paths` for what happens on a failure.
    """
    if "b" not in mode:
        kwargs.setdefault("encoding", "utf-8")
        kwargs.setdefault("newline", "\n")
    with atomic_paths([path], option) as (temp,):
        with open(temp, mode, **kwargs) as file:
            yield file
