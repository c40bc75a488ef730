"""Pictures of a network run: a spike raster per LIF population and a few membrane traces.

Uses matplotlib with the Agg back-end (no display needed). With a ``reference`` run (for example
hardware over golden) both are drawn on the same axes and every disagreement is marked.
"""

import numpy as np

from ..spec.errors import SpikeforgeError

__all__ = ["plot_run", "TRACE_NEURONS", "PLOT_SUFFIXES"]

# Image formats of the pictures, chosen by the file's suffix.
PLOT_SUFFIXES = (".png", ".svg", ".pdf")

# Membrane traces drawn per LIF population; more lines than this become unreadable.
TRACE_NEURONS = 3


def _first(array):
    """Batch entry 0 of a ``(B, T, N)`` array, or the ``(T, N)`` array itself."""
    array = np.asarray(array)
    return array[0] if array.ndim == 3 else array


def plot_run(path, result, reference=None, title=None):
    """Draw ``result``, a :class:`~spikeforge.gen.spike_io.NetworkRun`, into image ``path``.

    Parameters
    ----------
    path : str or path-like
        Output file; its suffix picks the format (``.png``, ``.svg``, ``.pdf``).
    result : NetworkRun
    reference : NetworkRun, optional
        Drawn underneath in grey; spikes present in only one of the runs are marked with red
        crosses and a trace that differs is labelled as such.
    title : str, optional

    Only batch entry 0 of a batched run is drawn.
    """
    # Imported here: the Agg back-end must be chosen before pyplot is imported, and only when a
    # picture is drawn, not in every program that imports spikeforge.
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    names = list(result.spikes)
    if reference is not None and list(reference.spikes) != names:
        raise SpikeforgeError(
            f"plot: the reference has populations {list(reference.spikes)}, the result {names}"
        )
    has_traces = bool(result.v)
    rows = len(names) + (1 if has_traces else 0)
    fig, axes = plt.subplots(rows, 1, figsize=(10, 1.2 + 1.8 * rows), sharex=True, squeeze=False)
    axes = axes[:, 0]
    for ax, name in zip(axes, names):
        spikes = _first(result.spikes[name])
        if reference is not None:
            ref = _first(reference.spikes[name])
            t, n = np.nonzero(ref)
            ax.scatter(
                t, n, s=28, facecolors="none", edgecolors="0.55", linewidths=0.8, label="reference"
            )
            t, n = np.nonzero(spikes != ref)
            if len(t):
                ax.scatter(t, n, s=40, marker="x", color="red", label=f"{len(t)} mismatches")
        t, n = np.nonzero(spikes)
        ax.scatter(t, n, s=6, color="black", label="result" if reference is not None else None)
        ax.set_ylabel(f"{name}\nneuron")
        ax.set_ylim(-0.5, spikes.shape[1] - 0.5)
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        if reference is not None:
            ax.legend(loc="upper right", fontsize="small")
    if has_traces:
        ax = axes[-1]
        colors = iter(plt.rcParams["axes.prop_cycle"].by_key()["color"] * 8)
        for name in names:
            trace = _first(result.v[name])
            ref = _first(reference.v[name]) if reference is not None and reference.v else None
            for n in range(min(TRACE_NEURONS, trace.shape[1])):
                color = next(colors)
                label = f"{name}[{n}]"
                if ref is not None:
                    ax.plot(ref[:, n], color="0.55", linewidth=3, alpha=0.6)
                    if not np.array_equal(ref[:, n], trace[:, n]):
                        label += " (differs)"
                ax.plot(trace[:, n], color=color, linewidth=1, label=label, drawstyle="steps-post")
        ax.set_ylabel("membrane v")
        ax.legend(loc="upper right", fontsize="small", ncol=2)
    axes[-1].set_xlabel("timestep")
    axes[-1].xaxis.set_major_locator(MaxNLocator(integer=True))
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
