"""Design-space exploration: one network on one board over lanes, stages and widths.

Every point of the sweep re-quantizes the network to its widths (:func:`requantize`), compiles
it for its lane count, and is evaluated in one of two modes:

- ``"build"``: a real place-and-route of the array in :class:`~spikeforge.bench.top.BenchTop`
  (LUTs, FFs, block RAMs, DSPs and post-route Fmax of the board's nextpnr);
- ``"synth"``: Yosys synthesis for the board's family only (cell counts; no Fmax, so no
  throughput), faster;
- ``"model"``: no tools at all, only the golden model's figures (cycle bound, synaptic operations
  and accuracy per width): seconds for a whole sweep.

Throughput is ``synaptic ops per step / (L / Fmax)`` with ``L`` the cycle bound of
:func:`spikeforge.bench.cycles.lower_bound` on the evaluation inputs: an upper bound that the
array reaches within the ratios of ``docs/performance.md``. Accuracy (with a test set) is the
golden model's classification accuracy of the re-quantized network.

Finished points are cached as JSON files named by the hash of everything that determines them,
so an interrupted sweep resumes where it stopped and a repeated one costs nothing.
"""

import csv
import hashlib
import itertools
import json
import os
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor, as_completed

import numpy as np

from ..bench.cycles import lower_bound, synaptic_ops
from ..bench.networks import poisson_inputs
from ..bench.top import BenchTop
from ..boards.build import BuildError, build
from ..boards.registry import get_board
from ..gen.compile import compile_network
from ..gen.network import Network
from ..gen.synth import synth_stats
from ..hdl.array import NeuronArray
from ..sim.network_golden import run_network
from ..spec.errors import SpikeforgeError
from ..spec.limits import (
    STAGES_RANGE,
    V_WIDTH_RANGE,
    W_WIDTH_RANGE,
    check_int,
    check_lanes,
    v_range,
    w_range,
)
from ..spec.version import version
from .encode import encode
from .train_digits import STEPS

__all__ = [
    "MODES",
    "requantize",
    "sweep_points",
    "point_key",
    "evaluate_point",
    "load_test_set",
    "explore",
    "pareto_front",
    "write_table",
    "pareto_plot",
    "COLUMNS",
]

MODES = ("build", "synth", "model")

# Columns of the CSV table, in order.
COLUMNS = (
    "lanes",
    "stages",
    "v_width",
    "w_width",
    "status",
    "luts",
    "ffs",
    "brams",
    "sprams",
    "dsps",
    "fmax_mhz",
    "cycles_bound",
    "synaptic_ops_per_step",
    "synaptic_ops_per_s",
    "accuracy",
    "error",
    "key",
)

# Cell types counted as LUTs in synthesis-only mode, per family (carry cells ride along in
# the LUTs' slices and are not counted).
_SYNTH_LUTS = {"ice40": ("SB_LUT4",), "ecp5": ("LUT4",), "gowin": ("LUT1", "LUT2", "LUT3", "LUT4")}
_SYNTH_FFS = {"ice40": ("SB_DFF",), "ecp5": ("TRELLIS_FF",), "gowin": ("DFF",)}
_SYNTH_BRAMS = {"ice40": ("SB_RAM40_4K",), "ecp5": ("DP16KD",), "gowin": ("DP", "SDP", "SP")}


def _shift(values, e):
    """``values * 2**e`` in integers, rounding to nearest (ties up) when ``e < 0``."""
    values = np.asarray(values, np.int64)
    if e >= 0:
        return values << e
    return (values + (1 << (-e - 1))) >> -e


def requantize(net, v_width, w_width):
    """``net`` at other widths: weights and every membrane-domain value scaled by
    ``2**(w_width - net.w_width)``; the decay shifts are ratios and stay.

    ``v_peak`` is the saturation ceiling and is clipped to the new range; any other value that
    no longer fits raises.

    Raises
    ------
    TypeError
        A width out of its range.
    SpikeforgeError
        A threshold, reset, rest or bias value that does not fit ``v_width`` after scaling.
    """
    v_width = check_int("v_width", v_width, *V_WIDTH_RANGE)
    w_width = check_int("w_width", w_width, *W_WIDTH_RANGE)
    e = w_width - net.w_width
    lo, hi = w_range(w_width)
    vlo, vhi = v_range(v_width)
    d = net.to_dict()
    d.update(v_width=v_width, w_width=w_width)
    d.pop("acc_width", None)
    for pop in d["populations"]:
        if pop["kind"] != "lif":
            continue
        for key in ("v_th", "v_reset", "v_rest", "bias"):
            scaled = _shift(pop[key], e)
            if scaled.min() < vlo or scaled.max() > vhi:
                raise SpikeforgeError(
                    f"population {pop['name']}: {key} scaled for w_width "
                    f"{w_width} does not fit v_width {v_width} "
                    f"([{vlo}, {vhi}])"
                )
            pop[key] = scaled.tolist()
        # v_th may be per neuron (a list): v_peak stays above the largest.
        pop["v_peak"] = int(np.clip(_shift(pop["v_peak"], e), np.max(pop["v_th"]), vhi))
        decay = pop["decay"]
        if decay and isinstance(decay[0], list):
            pop["decay"] = [[k for k in terms if abs(k) < v_width] for terms in decay]
        else:
            pop["decay"] = [k for k in decay if abs(k) < v_width]
    for proj, spec in zip(net.projections, d["projections"]):
        spec["weights"] = np.clip(_shift(proj.weights, e), lo, hi)
    return Network.from_dict(d)


def sweep_points(lanes, stages, v_widths, w_widths):
    """Every combination as a list of dicts, in a fixed order; values are checked."""
    for p in lanes:
        check_lanes(p, "--lanes", SpikeforgeError)
    for s in stages:
        check_int("--stages", s, *STAGES_RANGE, error=SpikeforgeError)
    for v in v_widths:
        check_int("--v-width", v, *V_WIDTH_RANGE, error=SpikeforgeError)
    for w in w_widths:
        check_int("--w-width", w, *W_WIDTH_RANGE, error=SpikeforgeError)
    return [
        {"lanes": p, "stages": s, "v_width": v, "w_width": w}
        for p, s, v, w in itertools.product(lanes, stages, v_widths, w_widths)
    ]


def load_test_set(path, net, steps=None):
    """Inputs and labels of a test set ``.npz``.

    Either ``spikes`` (B, T, n_in) and ``labels`` (B,), or the digits format ``images`` (B, 64)
    and ``labels`` encoded with :func:`spikeforge.cli.encode.encode` over ``steps`` steps
    (default that of the digit classifier).
    """
    with np.load(path) as data:
        if "labels" not in data.files or not ({"spikes", "images"} & set(data.files)):
            raise SpikeforgeError(
                f"{path}: a test set needs 'labels' and 'spikes' or 'images', "
                f"not {', '.join(data.files)}"
            )
        labels = np.asarray(data["labels"], np.int64)
        if "spikes" in data.files:
            spikes = np.asarray(data["spikes"], np.uint8)
        else:
            spikes = encode(data["images"], steps or STEPS).astype(np.uint8)
    if spikes.ndim != 3 or spikes.shape[2] != net.n_inputs or spikes.shape[0] != len(labels):
        raise SpikeforgeError(
            f"{path}: spikes must have shape ({len(labels)}, T, {net.n_inputs}), not {spikes.shape}"
        )
    return spikes, labels


def point_key(net_hash, board, point, mode, inputs_hash):
    """The cache key of one point: sha256 of everything its result depends on."""
    text = json.dumps(
        {
            "network": net_hash,
            "board": board,
            "point": point,
            "mode": mode,
            "inputs": inputs_hash,
            "spikeforge": version(),
        },
        sort_keys=True,
    )
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def evaluate_point(net, board_name, point, mode, inputs, labels, build_root):
    """Evaluate one point (module docstring); returns its row (a dict of :data:`COLUMNS`).

    A point that cannot be made (widths too small, the design does not fit the board) gives a
    row with ``status`` "error" and the one-line reason; other failures raise.
    """
    row = dict(point, status="ok")
    board = get_board(board_name)
    try:
        qnet = requantize(net, point["v_width"], point["w_width"])
        plan = compile_network(qnet, point["lanes"])
    except SpikeforgeError as error:
        return dict(row, status="error", error=str(error))

    # Activity of the evaluation inputs: the bound and the synaptic operations per step.
    runs = run_network(qnet, inputs)
    bounds, ops = [], []
    for b in range(inputs.shape[0]):
        one = type(runs)(spikes={k: v[b] for k, v in runs.spikes.items()})
        bounds.append(lower_bound(qnet, point["lanes"], inputs[b], one))
        ops.append(synaptic_ops(qnet, inputs[b], one))
    row["cycles_bound"] = float(np.mean(bounds))
    row["synaptic_ops_per_step"] = float(np.mean(ops))
    if labels is not None:
        last = qnet.lif_populations[-1].name
        predicted = np.argmax(runs.spikes[last].sum(axis=1), axis=-1)
        row["accuracy"] = float(np.mean(predicted == labels))

    if mode == "model":
        return row
    name = "-".join(f"{k}{point[k]}" for k in ("lanes", "stages", "v_width", "w_width"))
    build_dir = os.path.join(build_root, f"{board.name}-{name}")
    if mode == "build":
        try:
            report = build(
                BenchTop(board, plan, point["stages"]), board, build_dir, check_timing=False
            )
        except BuildError as error:
            return dict(row, status="error", error=str(error))
        for key in ("luts", "ffs", "brams", "sprams", "dsps", "fmax_mhz"):
            row[key] = report[key]
        row["synaptic_ops_per_s"] = (
            row["synaptic_ops_per_step"] * row["fmax_mhz"] * 1e6 / max(row["cycles_bound"], 1.0)
        )
    else:
        os.makedirs(build_dir, exist_ok=True)
        cells = synth_stats(
            NeuronArray(plan, stages=point["stages"]),
            board.family,
            name="array",
            build_dir=build_dir,
        )
        for key, types in (("luts", _SYNTH_LUTS), ("ffs", _SYNTH_FFS), ("brams", _SYNTH_BRAMS)):
            row[key] = sum(
                n
                for cell, n in cells.items()
                if any(cell.startswith(t) for t in types[board.family])
            )
    return row


def _progress(done, total, width=30):
    filled = width * done // max(total, 1)
    sys.stderr.write(f"\rexplore [{'#' * filled}{'.' * (width - filled)}] {done}/{total}")
    if done == total:
        sys.stderr.write("\n")
    sys.stderr.flush()


def explore(
    net,
    board,
    points,
    *,
    mode="build",
    cache_dir,
    build_root=None,
    inputs=None,
    labels=None,
    jobs=None,
    scheduler=None,
    progress=True,
):
    """Evaluate ``points`` of ``net`` on ``board``, reusing cached results.

    Parameters
    ----------
    net : Network
    board : str
    points : list of dict
        From :func:`sweep_points`.
    mode : str
        One of :data:`MODES`.
    cache_dir : str or path-like
        One JSON file per finished point.
    inputs, labels : ndarray, optional
        Evaluation inputs (B, T, n_in) and labels; without inputs, 8 steps of 20% Poisson input.
    jobs : int, optional
        Local worker processes (default: the CPU count).
    scheduler : str, optional
        Address of a Dask distributed scheduler (or a ``distributed.Client``) to send the
        points to instead of local processes.

    Returns
    -------
    list of dict
        One row per point, in the order of ``points``; ``cached`` says whether it was reused.
    """
    get_board(board)
    if mode not in MODES:
        raise SpikeforgeError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
    if inputs is None:
        inputs = poisson_inputs(8, net.n_inputs, 0.2, seed=0, batch=1)
    inputs = np.asarray(inputs, np.uint8)
    inputs_hash = hashlib.sha256(
        inputs.tobytes()
        + str(inputs.shape).encode()
        + (b"" if labels is None else np.asarray(labels, np.int64).tobytes())
    ).hexdigest()
    build_root = os.fspath(build_root or os.path.join(tempfile.gettempdir(), "spikeforge-explore"))
    os.makedirs(cache_dir, exist_ok=True)
    net_hash = net.network_hash()
    keys = [point_key(net_hash, board, p, mode, inputs_hash) for p in points]
    rows = [None] * len(points)
    pending = []
    for i, key in enumerate(keys):
        path = os.path.join(cache_dir, f"{key}.json")
        if os.path.exists(path):
            with open(path, encoding="utf-8") as file:
                rows[i] = dict(json.load(file), cached=True)
        else:
            pending.append(i)
    done = len(points) - len(pending)
    # On a terminal only: the sweep's table is its result, and a log has no use for redraws.
    progress = progress and sys.stderr.isatty()
    if progress:
        _progress(done, len(points))

    def finish(i, row):
        nonlocal done
        row["key"] = keys[i]
        tmp = os.path.join(cache_dir, f"{keys[i]}.json.tmp")
        with open(tmp, "w", encoding="utf-8", newline="\n") as file:
            json.dump(row, file, indent=1, sort_keys=True)
        # Atomic: an interrupted sweep never leaves a half-written point behind.
        os.replace(tmp, os.path.join(cache_dir, f"{keys[i]}.json"))
        rows[i] = dict(row, cached=False)
        done += 1
        if progress:
            _progress(done, len(points))

    args = (board, mode, inputs, labels, build_root)
    if not pending:
        return rows
    if scheduler is not None:
        from distributed import Client
        from distributed import as_completed as dask_completed

        client = scheduler if isinstance(scheduler, Client) else Client(scheduler)
        try:
            futures = {
                client.submit(evaluate_point, net, board, points[i], *args[1:], pure=False): i
                for i in pending
            }
            for future in dask_completed(futures):
                finish(futures[future], future.result())
        finally:
            if client is not scheduler:
                client.close()
    elif jobs == 1:
        for i in pending:
            finish(i, evaluate_point(net, board, points[i], *args[1:]))
    else:
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            futures = {
                pool.submit(evaluate_point, net, board, points[i], *args[1:]): i for i in pending
            }
            for future in as_completed(futures):
                finish(futures[future], future.result())
    return rows


def pareto_front(rows):
    """Rows not dominated in (fewer LUTs, more synaptic ops/s); rows without both are left out."""
    valid = [
        r for r in rows if r.get("luts") is not None and r.get("synaptic_ops_per_s") is not None
    ]
    return [
        r
        for r in valid
        if not any(
            o["luts"] <= r["luts"]
            and o["synaptic_ops_per_s"] >= r["synaptic_ops_per_s"]
            and (o["luts"], o["synaptic_ops_per_s"]) != (r["luts"], r["synaptic_ops_per_s"])
            for o in valid
        )
    ]


def write_table(rows, path):
    """Write ``rows`` as CSV (``.csv``) or JSON (``.json``), by the file's extension."""
    ext = os.path.splitext(os.fspath(path))[1].lower()
    if ext not in (".csv", ".json"):
        raise SpikeforgeError(f"table file must end in .csv or .json, not {os.fspath(path)!r}")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="") as file:
        if ext == ".json":
            json.dump([{k: r.get(k) for k in COLUMNS} for r in rows], file, indent=1)
            file.write("\n")
        else:
            writer = csv.DictWriter(
                file, fieldnames=COLUMNS, extrasaction="ignore", lineterminator="\n"
            )
            writer.writeheader()
            writer.writerows(rows)


def pareto_plot(rows, path, title=""):
    """LUTs against synaptic ops/s, the Pareto front joined, coloured by accuracy if known.

    Points without a throughput (synthesis-only mode) are drawn at the bottom axis as ticks.
    """
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    ok = [r for r in rows if r.get("luts") is not None]
    with_ops = [r for r in ok if r.get("synaptic_ops_per_s") is not None]
    accuracy = [r.get("accuracy") for r in with_ops]
    if with_ops:
        colours = accuracy if all(a is not None for a in accuracy) else None
        scatter = ax.scatter(
            [r["luts"] for r in with_ops],
            [r["synaptic_ops_per_s"] for r in with_ops],
            c=colours,
            cmap="viridis" if colours else None,
            zorder=3,
        )
        if colours:
            fig.colorbar(scatter, ax=ax, label="accuracy")
        front = sorted(pareto_front(with_ops), key=lambda r: r["luts"])
        ax.plot(
            [r["luts"] for r in front],
            [r["synaptic_ops_per_s"] for r in front],
            "k--",
            lw=1,
            label="Pareto front",
        )
        for r in with_ops:
            ax.annotate(
                f"P{r['lanes']} s{r['stages']} v{r['v_width']} w{r['w_width']}",
                (r["luts"], r["synaptic_ops_per_s"]),
                fontsize=6,
            )
        ax.set_yscale("log")
        ax.legend(loc="lower right")
    else:
        ax.plot([r["luts"] for r in ok], [0] * len(ok), "|", ms=20)
    ax.set_xlabel("LUTs")
    ax.set_ylabel("synaptic ops/s (bound at Fmax)")
    ax.set_title(title or "spikeforge explore")
    fig.tight_layout()
    fig.savefig(path, dpi=120, metadata={"Software": None})
    plt.close(fig)
