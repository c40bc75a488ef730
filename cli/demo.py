"""The main job: the shipped digit classifier on the neuron array, golden model against RTL.

Loads a trained network (the dense classifier, or the convolutional one) and the held-out digits
shipped in ``spikeforge.cli/data``, encodes the
digits as spike trains, runs the golden model and the array's generated Verilog (Verilator by
default) on every digit, and reports accuracy, bit-exact agreement, cycles per inference and what
that means on a board. See ``docs/digits.md`` for the network and its training.
"""

import json
import time
from importlib import resources
from pathlib import Path

import numpy as np

from ..boards.flow import build_network
from ..gen.network_conv import ConvProjection
from ..gen.output import array_source
from ..gen.spike_io import NetworkRun
from ..sim.backends import HARDWARE_BACKENDS, simulate
from ..sim.native import NativeArray
from ..sim.native_icarus import IcarusArray
from ..sim.network_golden import run_network
from ..spec.errors import SpikeforgeError
from ..spec.files import atomic_paths, check_output_dir, check_outputs
from . import train_digits_conv
from .encode import encode
from .plot import plot_run
from .progress import Progress
from .train_digits import STEPS, classify, load_test_digits, shipped_network

__all__ = ["run_demo", "demo_workload", "REPORT_FILE", "NETWORKS"]

# The iCEBreaker build report of the shipped network (`spikeforge build --lanes 2`: 4 lanes do not
# fit the iCE40UP5K), shipped so the demo can project board figures without a place and route.
REPORT_FILE = "digits_icebreaker_report.json"
# The shipped networks the demo runs, and their shipped build reports.
NETWORKS = ("dense", "conv")
REPORT_FILES = {"dense": REPORT_FILE, "conv": "digits_conv_icebreaker_report.json"}
# What the demo writes into its folder.
OUTPUT_FILES = ("digits_array.v", "raster.png", "demo.json")


def _shipped_report(name):
    if name is None:
        return None
    path = resources.files("spikeforge.cli") / "data" / name
    return json.loads(path.read_text()) if path.is_file() else None


def run_demo(
    out_dir="spikeforge-demo",
    *,
    network="dense",
    backend="verilator",
    lanes=2,
    digits=None,
    chunk=40,
    board=None,
    log=print,
):
    """Run the demo and return its figures as a dict (also written as ``demo.json``).

    Parameters
    ----------
    out_dir : path
        Where the Verilog, the raster plot and ``demo.json`` go.
    network : str
        The shipped network to run: ``dense`` (``digits_net.json``) or ``conv``
        (``digits_conv_net.json``), see ``docs/digits.md``.
    backend : str
        Hardware back-end for the RTL run: ``verilator``, ``icarus`` or ``amaranth``.
    lanes : int
        Lanes of the array.
    digits : int, optional
        Run only the first ``digits`` test digits (all 360 by default).
    chunk : int
        Digits per simulator run (one progress step each).
    board : str, optional
        Also build the bitstream for this board and project from its report.
    """
    if network not in NETWORKS:
        raise SpikeforgeError(f"--network must be one of {', '.join(NETWORKS)}, not {network!r}")
    if backend not in HARDWARE_BACKENDS:
        raise SpikeforgeError(
            f"--backend must be one of {', '.join(HARDWARE_BACKENDS)}, not {backend!r}"
        )
    out = Path(out_dir)
    check_output_dir("-o", out)
    # A new folder is made only once the work is done: until then a failed run leaves nothing.
    if out.is_dir():
        check_outputs([("-o", out / name, None) for name in OUTPUT_FILES])
    net = shipped_network() if network == "dense" else train_digits_conv.shipped_network()
    images, labels = load_test_digits()
    if digits is not None:
        if not isinstance(digits, int) or not 1 <= digits <= len(images):
            raise SpikeforgeError(
                f"--digits must be an integer in [1, {len(images)}], not {digits!r}"
            )
        images, labels = images[:digits], labels[:digits]
    spikes = encode(images, STEPS)
    log(
        f"spikeforge demo: {len(images)} held-out 8x8 digits (scikit-learn digits, CC BY 4.0), "
        f"{STEPS} timesteps each, network "
        + " -> ".join(f"{p.name} {_size(p)}" for p in net.populations)
    )

    began = time.monotonic()
    golden = run_network(net, spikes)
    golden_seconds = time.monotonic() - began
    golden_pred = classify(golden.spikes["output"].sum(axis=1))
    accuracy_golden = float(np.mean(golden_pred == labels))
    # Reported before the RTL run, which may take a while or be refused.
    log(f"golden model: accuracy {accuracy_golden:.2%} ({golden_seconds:.2f} s for all digits)")

    # The simulator's program is built (or found in the cache) before the clock starts: the RTL
    # time is simulation only.
    program = {"verilator": NativeArray, "icarus": IcarusArray}.get(backend)
    native = program(net, lanes=lanes) if program else None
    verilog = native.verilog if native else array_source(net, lanes=lanes)[0]

    runs = []
    began = time.monotonic()
    with Progress(f"{backend} RTL simulation", len(images)) as bar:
        for start in range(0, len(images), chunk):
            batch = spikes[start : start + chunk]
            runs.append(native.run(batch) if native else simulate(net, batch, backend, lanes=lanes))
            bar.advance(len(batch))
    rtl_seconds = time.monotonic() - began
    rtl_spikes = {name: np.concatenate([r.spikes[name] for r in runs]) for name in golden.spikes}
    cycles = np.concatenate([r.cycles for r in runs])
    rtl_pred = classify(rtl_spikes["output"].sum(axis=1))
    # Per digit: every spike of every population equal.
    same = np.all(
        [(rtl_spikes[name] == golden.spikes[name]).all(axis=(1, 2)) for name in golden.spikes],
        axis=0,
    )
    digits_agreeing = int(same.sum())

    per_inference = cycles.sum(axis=1)
    figures = {
        "digits": len(images),
        "timesteps": STEPS,
        "lanes": lanes,
        "backend": backend,
        "network": network,
        "accuracy_golden": accuracy_golden,
        "accuracy_rtl": float(np.mean(rtl_pred == labels)),
        "bit_exact_digits": digits_agreeing,
        "bit_exact": bool(same.all()),
        "cycles_per_inference_median": float(np.median(per_inference)),
        "cycles_per_inference_max": int(per_inference.max()),
        "golden_seconds": golden_seconds,
        "rtl_seconds": rtl_seconds,
        "neurons": sum(p.size for p in net.lif_populations),
        # Nonzero synapses of the unrolled network, and the weight values stored (a kernel's
        # once, shared by every position).
        "synapses": int(sum(np.count_nonzero(_unrolled(p)) for p in net.projections)),
        "weights": int(sum(p.weights.size for p in net.projections)),
    }
    log(
        f"RTL ({backend}, {lanes} lanes): accuracy {figures['accuracy_rtl']:.2%}, "
        f"bit-exact with the golden model on {digits_agreeing}/{len(images)} digits "
        f"(every spike of every population), {rtl_seconds:.1f} s"
    )
    log(
        f"cycles per inference ({STEPS} steps): median {figures['cycles_per_inference_median']:.0f}, "
        f"max {figures['cycles_per_inference_max']}"
    )

    out.mkdir(parents=True, exist_ok=True)
    report = (
        _board_report(net, board, lanes, out, log)
        if board
        else _shipped_report(REPORT_FILES.get(network))
    )
    if report is not None and report["lanes"] != lanes:
        log(
            f"the shipped build report is for {report['lanes']} lanes, not {lanes}: "
            f"add --board to build this configuration"
        )
        report = None
    if report is not None:
        fmax = report["fmax_mhz"]
        latency_us = figures["cycles_per_inference_median"] / fmax
        figures.update(
            board=report["board"],
            fmax_mhz=fmax,
            latency_us=latency_us,
            inferences_per_second=1e6 / latency_us,
            luts=report["luts"],
            brams=report["brams"],
            dsps=report["dsps"],
        )
        log(
            f"on {report['board']} at its post-route Fmax {fmax:.1f} MHz: {latency_us:.1f} us per "
            f"inference, {1e6 / latency_us:,.0f} inferences/s; {report['luts']} LUTs, "
            f"{report['brams']} BRAMs, {report['dsps']} DSPs"
            + ("" if board else " (shipped build report; --board builds anew)")
        )
    else:
        log("no board report: add --board icebreaker to build one and project board figures")

    # The raster of the first digit from the runs above (spikes only: a trace run would need a
    # second Verilator build).
    # The three files, all or none.
    with atomic_paths([out / name for name in OUTPUT_FILES], "-o") as (v_file, png, doc):
        with open(v_file, "w", encoding="utf-8", newline="\n") as file:
            file.write(verilog)
        plot_run(
            png,
            NetworkRun(spikes={name: s[:1] for name, s in rtl_spikes.items()}),
            NetworkRun(spikes={name: s[:1] for name, s in golden.spikes.items()}),
            title=f"digit {int(labels[0])} (label): {backend} RTL over golden",
        )
        with open(doc, "w", encoding="utf-8", newline="\n") as file:
            file.write(json.dumps(figures, indent=2, sort_keys=True) + "\n")
    log(f"wrote {out / 'digits_array.v'}, {out / 'raster.png'}, {out / 'demo.json'}")
    if not same.all():
        raise SpikeforgeError("RTL and golden model disagree: the hardware is not bit-exact")
    return figures


def demo_workload():
    """The demo's dense network and its held-out digits as spike trains, ``(360, STEPS, 64)``."""
    images, _ = load_test_digits()
    return shipped_network(), encode(images, STEPS)


def _size(pop):
    """A population's size for the log: its shape where it has one (``8x8x8``)."""
    return "x".join(map(str, pop.shape)) if pop.shape is not None else str(pop.size)


def _unrolled(proj):
    """The dense matrix of a projection, a conv or pooled one unrolled."""
    return proj.dense() if isinstance(proj, ConvProjection) else proj.weights


def _board_report(net, board, lanes, out, log):
    log(f"building the bitstream for {board} ...")
    report = build_network(net, board, out / f"build-{board}", lanes=lanes)
    log(f"wrote {report['bitstream']}")
    return report
