"""``spikeforge bench`` (the performance suite) and ``spikeforge explore`` (design-space sweeps)."""

import argparse
import os

from ..bench.results import PARTS, dump_results, merge_results
from ..bench.suite import run_suite
from ..bench.tables import doc_with_tables, render_tables
from ..boards.registry import get_board
from ..gen.network import load_network
from ..sim.backends import HARDWARE_BACKENDS
from ..spec.errors import SpikeforgeError
from ..spec.files import atomic_paths, check_output_dir, check_outputs
from ..spec.limits import check_int
from .demo import demo_workload
from .explore import MODES, explore, load_test_set, pareto_plot, sweep_points, write_table
from .plot import PLOT_SUFFIXES

__all__ = ["add_parser"]


def _int_list(text):
    try:
        return [int(part) for part in text.split(",")]
    except ValueError:
        # argparse puts "argument --x: " in front of this message.
        raise argparse.ArgumentTypeError(
            f"must be a comma-separated list of integers, not {text!r}"
        ) from None


def _name_list(text):
    return [part for part in text.split(",") if part]


def add_parser(subparsers):
    bench = subparsers.add_parser(
        "bench",
        help="run the performance benchmark and update docs/performance.md",
        description="Cycles per timestep against the bound L, simulation speeds, board builds, "
        "the largest network that fits each board and the optional Brian2 "
        "comparison (docs/performance.md).",
    )
    bench.add_argument(
        "--parts",
        type=_name_list,
        default=list(PARTS),
        help=f"comma-separated parts to run, among {','.join(PARTS)} (default all)",
    )
    bench.add_argument(
        "--quick",
        action="store_true",
        help="small networks, few steps, one iCEBreaker build: a smoke run",
    )
    bench.add_argument(
        "--boards",
        type=_name_list,
        default=None,
        help="boards of the build part (default ulx3s-85f,tangnano9k) and the "
        "boards on which the capacity part confirms its model by building "
        "(default icebreaker,ulx3s-85f,tangnano9k); quick: icebreaker",
    )
    bench.add_argument(
        "--lanes",
        type=_int_list,
        default=[1, 2, 4],
        help="lane counts of the cycle and build parts (default 1,2,4)",
    )
    bench.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="runs per timing; the median and spread are reported (default 3)",
    )
    bench.add_argument(
        "--backend",
        default="amaranth",
        help="simulator of the cycle part: amaranth, verilator or icarus (default amaranth)",
    )
    bench.add_argument(
        "-o",
        "--output",
        default=os.path.join("bench", "results.json"),
        help="results file (default bench/results.json)",
    )
    bench.add_argument(
        "--doc",
        default=os.path.join("docs", "performance.md"),
        help="Markdown file whose generated block is replaced "
        "(default docs/performance.md; 'none' to skip)",
    )
    bench.add_argument(
        "--fresh",
        action="store_true",
        help="drop the parts of an existing results file that this run does not "
        "measure (by default they are kept, so parts can run one at a time)",
    )
    bench.set_defaults(func=run_bench)

    explore = subparsers.add_parser(
        "explore",
        help="build every combination of lanes, stages and widths for a board",
        description="Evaluate NETWORK.json on --board for every combination of the lists; "
        "finished points are cached, so an interrupted sweep resumes.",
    )
    explore.add_argument("network", help="network description, .json")
    explore.add_argument("--board", required=True, help="board name (spikeforge boards)")
    explore.add_argument(
        "--lanes", type=_int_list, default=[1], help="comma-separated lane counts (default 1)"
    )
    explore.add_argument(
        "--stages", type=_int_list, default=[4], help="comma-separated pipeline depths (default 4)"
    )
    explore.add_argument(
        "--v-width",
        type=_int_list,
        default=None,
        help="comma-separated membrane widths (default: the network's)",
    )
    explore.add_argument(
        "--w-width",
        type=_int_list,
        default=None,
        help="comma-separated weight widths (default: the network's)",
    )
    explore.add_argument(
        "--mode",
        default="build",
        help="build (place and route, default), synth (Yosys only, no Fmax) or model "
        "(golden-model figures only, no tools)",
    )
    explore.add_argument(
        "--test-set",
        help="labelled test set .npz (labels with spikes or digits images): adds accuracy",
    )
    explore.add_argument(
        "--jobs", type=int, default=None, help="local worker processes (default: CPU count)"
    )
    explore.add_argument(
        "--scheduler",
        help="Dask distributed scheduler address, e.g. tcp://host:8786 (needs the explore extra)",
    )
    explore.add_argument(
        "--cache",
        default=os.path.join("build", "explore-cache"),
        help="cache folder of finished points (default build/explore-cache)",
    )
    explore.add_argument(
        "-o", "--output", default="explore.csv", help="table, .csv or .json (default explore.csv)"
    )
    explore.add_argument(
        "--plot", default=None, help="Pareto plot .png (default: the table's name with .png)"
    )
    explore.set_defaults(func=run_explore)


def run_bench(args):
    check_int("--repeat", args.repeat, 1, 100, error=SpikeforgeError)
    if args.backend not in HARDWARE_BACKENDS:
        raise SpikeforgeError(
            f"--backend must be one of {', '.join(HARDWARE_BACKENDS)}, not {args.backend!r}"
        )
    if args.boards is not None:
        for name in args.boards:
            get_board(name)
    outputs = [("-o", args.output, (".json",))]
    if args.doc != "none":
        outputs.append(("--doc", args.doc, (".md",)))
        if not os.path.isfile(args.doc):
            raise SpikeforgeError(f"--doc {args.doc}: not found; its generated block is replaced")
    check_outputs(outputs)
    results = run_suite(
        args.parts,
        quick=args.quick,
        boards=args.boards,
        repeat=args.repeat,
        lanes=tuple(args.lanes),
        backend=args.backend,
        # The speed part also measures the demo's network against the native harness's goals.
        demo=demo_workload() if "speed" in args.parts else None,
    )
    if not args.fresh:
        results = merge_results(args.output, results)
    # The results file and the document are written together or not at all.
    doc = None if args.doc == "none" else doc_with_tables(args.doc, results)
    paths, options = [args.output], ["-o"]
    if doc is not None:
        paths.append(args.doc)
        options.append("--doc")
    with atomic_paths(paths, options) as temps:
        with open(temps[0], "w", encoding="utf-8", newline="\n") as file:
            dump_results(file, results)
        if doc is not None:
            with open(temps[1], "w", encoding="utf-8", newline="\n") as file:
                file.write(doc)
    print(f"wrote {args.output}")
    if doc is not None:
        print(f"updated {args.doc}")
    else:
        print(render_tables(results))
    return 0


def run_explore(args):
    get_board(args.board)
    if args.mode not in MODES:
        raise SpikeforgeError(f"--mode must be one of {', '.join(MODES)}, not {args.mode!r}")
    if args.jobs is not None and args.jobs < 1:
        raise SpikeforgeError(f"--jobs must be a positive integer, not {args.jobs}")
    ext = os.path.splitext(args.output)[1].lower()
    if ext not in (".csv", ".json"):
        raise SpikeforgeError(f"-o must end in .csv or .json, not {args.output!r}")
    plot = args.plot or os.path.splitext(args.output)[0] + ".png"
    outputs = [("-o", args.output, (".csv", ".json")), ("--plot", plot, PLOT_SUFFIXES)]
    check_outputs(outputs, [args.network, args.test_set])
    check_output_dir("--cache", args.cache)
    if args.scheduler is not None:
        try:
            import distributed  # noqa: F401  (only to report a missing extra in one line)
        except ImportError:
            raise SpikeforgeError(
                "--scheduler needs Dask: pip install 'spikeforge[explore]'"
            ) from None
    net = load_network(args.network, args.allow_outside_npz)
    check_outputs(outputs, net.files)
    points = sweep_points(
        args.lanes, args.stages, args.v_width or [net.v_width], args.w_width or [net.w_width]
    )
    inputs = labels = None
    if args.test_set:
        inputs, labels = load_test_set(args.test_set, net)
    rows = explore(
        net,
        args.board,
        points,
        mode=args.mode,
        cache_dir=args.cache,
        inputs=inputs,
        labels=labels,
        jobs=args.jobs,
        scheduler=args.scheduler,
    )
    # The table and its plot, both or neither.
    with atomic_paths([args.output, plot], ["-o", "--plot"]) as (table, picture):
        write_table(rows, table)
        pareto_plot(rows, picture, title=f"{os.path.basename(args.network)} on {args.board}")
    reused = sum(r["cached"] for r in rows)
    failed = sum(r["status"] != "ok" for r in rows)
    print(
        f"wrote {args.output} and {plot}: {len(rows)} points ({reused} from the cache, "
        f"{failed} failed)"
    )
    return 0
