"""Nothing a user has is lost: every output of every command is checked before the work starts
and written atomically (issue 14, spec/files.py).

For each command that writes a file: an output that is one of the inputs is refused and the input
stays as it was; an output in a missing folder is refused before any work (the work functions are
replaced by ones that fail the test); a write that fails midway and a Ctrl-C leave the previous
file intact and no temporary file behind, whether it comes between writing and renaming or in the
middle of a writer. Runtime about 30 s: no synthesis, no RTL simulation (training, benchmarks and
the demo's RTL run are replaced by fast stand-ins, fast_work).
"""

import builtins
import errno
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from spikeforge.bench import tables
from spikeforge.bench.tables import BEGIN, END
from spikeforge.cli import (
    cmd_bench,
    cmd_build,
    cmd_emulate,
    cmd_generate,
    cmd_nir,
    cmd_simulate,
    cmd_train_digits,
    demo,
    train_digits,
    train_digits_conv,
)
from spikeforge.cli.main import main
from spikeforge.gen.network import Network, save_network
from spikeforge.gen.nir_export import export_nir
from spikeforge.gen.spike_io import NetworkRun
from spikeforge.sim.network_golden import run_network
from spikeforge.spec import files as files_module
from spikeforge.spec.errors import EXIT_BAD_INPUT, EXIT_INTERRUPTED, SpikeforgeError
from spikeforge.spec.files import atomic_paths, atomic_write, check_outputs

NETWORK = {
    "format": "spikeforge-network/1",
    "v_width": 8,
    "w_width": 4,
    "populations": [
        {"name": "inp", "kind": "input", "size": 3},
        {
            "name": "out",
            "kind": "lif",
            "size": 2,
            "v_th": 3,
            "v_reset": 0,
            "v_rest": 0,
            "v_peak": 100,
            "t_ref": 1,
            "decay": [2],
            "reset_mode": "zero",
            "bias": 0,
        },
    ],
    "projections": [{"from": "inp", "to": "out", "weights": [[2, 1], [1, 2], [3, 3]]}],
}


@pytest.fixture
def folder(tmp_path):
    net = Network.from_dict(NETWORK)
    save_network(net, tmp_path / "net.json")
    spikes = np.array([[1, 0, 1], [0, 1, 1], [1, 1, 1], [0, 0, 0]], np.uint8)
    np.save(tmp_path / "in.npy", spikes)
    np.savez(tmp_path / "in.npz", spikes=spikes)
    export_nir(net, tmp_path / "g.nir")
    return tmp_path


def cli(capsys, *args):
    status = main([*map(str, args)])
    out, err = capsys.readouterr()
    return status, out, err


def snapshot(folder):
    """Every file under ``folder`` with its bytes, but for explore's cache of finished points."""
    return {
        os.path.relpath(path, folder): path.read_bytes()
        for path in sorted(folder.rglob("*"))
        if path.is_file() and path.parent.name != "cache"
    }


# -- commands and the work each one does --------------------------------------------------------

# name -> (arguments with OUT for the output, default output name, the work to replace)
COMMANDS = {
    "generate-core": (["generate", "core", "-o", "OUT"], "o.v", (cmd_generate, "NeuronCore")),
    "generate-net": (["generate", "NET", "-o", "OUT"], "o.v", (cmd_generate, "load_network")),
    "simulate": (
        ["simulate", "NET", "--input", "IN", "-o", "OUT"],
        "o.npz",
        (cmd_simulate, "load_network"),
    ),
    "simulate-plot": (
        ["simulate", "NET", "--input", "IN", "-o", "r.npz", "--plot", "OUT"],
        "o.png",
        (cmd_simulate, "load_network"),
    ),
    "export": (["export", "NET", "-o", "OUT"], "o.nir", (cmd_nir, "load_network")),
    "import": (["import", "GRAPH", "-o", "OUT"], "o.json", (cmd_nir, "import_nir")),
    "import-report": (
        ["import", "GRAPH", "-o", "n.json", "-r", "OUT"],
        "o.json",
        (cmd_nir, "import_nir"),
    ),
    "run": (
        [
            "run",
            "NET",
            "--board",
            "icebreaker",
            "--port",
            "/dev/null",
            "--input",
            "IN",
            "-o",
            "OUT",
        ],
        "o.npz",
        (cmd_build, "load_network"),
    ),
    "build-report": (
        ["build", "NET", "--board", "icebreaker", "--report", "OUT"],
        "o.json",
        (cmd_build, "load_network"),
    ),
    "bench": (["bench", "--doc", "none", "-o", "OUT"], "o.json", (cmd_bench, "run_suite")),
    "explore": (
        ["explore", "NET", "--board", "icebreaker", "--mode", "model", "-o", "OUT"],
        "o.csv",
        (cmd_bench, "load_network"),
    ),
    "generate-readmemh": (
        ["generate", "NET", "--memory-init", "readmemh", "-o", "OUT"],
        "o.v",
        (cmd_generate, "load_network"),
    ),
    "simulate-waves": (
        ["simulate", "NET", "--input", "IN", "--backend", "verilator", "-o", "r.npz"]
        + ["--waves", "OUT"],
        "o.vcd",
        (cmd_simulate, "load_network"),
    ),
    "emulate-waves": (
        ["emulate", "NET", "--board", "icebreaker", "--waves", "OUT"],
        "o.vcd",
        (cmd_emulate, "load_network"),
    ),
}


def arguments(name, folder, out):
    args, _, _ = COMMANDS[name]
    paths = {
        "NET": folder / "net.json",
        "IN": folder / "in.npz",
        "GRAPH": folder / "g.nir",
        "OUT": out,
    }
    return [str(paths.get(a, a)) for a in args]


def forbid_work(monkeypatch, name):
    module, attribute = COMMANDS[name][2]

    def work(*args, **kwargs):
        raise AssertionError(f"{name}: the work started before the outputs were checked")

    monkeypatch.setattr(module, attribute, work)


@pytest.mark.parametrize("name", COMMANDS)
def test_output_in_a_missing_folder_is_refused_before_the_work(folder, capsys, monkeypatch, name):
    forbid_work(monkeypatch, name)
    out = folder / "nowhere" / COMMANDS[name][1]
    status, stdout, err = cli(capsys, *arguments(name, folder, out))
    assert status == EXIT_BAD_INPUT and stdout == ""
    assert err.startswith(f"spikeforge: error: {'-r' if name == 'import-report' else ''}")
    assert f"{out}: the folder {out.parent} does not exist" in err and err.count("\n") == 1


@pytest.mark.parametrize("name", COMMANDS)
def test_output_that_is_a_folder_is_refused_before_the_work(folder, capsys, monkeypatch, name):
    forbid_work(monkeypatch, name)
    out = folder / ("dir" + os.path.splitext(COMMANDS[name][1])[1])
    out.mkdir()
    status, _, err = cli(capsys, *arguments(name, folder, out))
    assert status == EXIT_BAD_INPUT
    assert err.endswith(f"{out}: is a folder, not a file\n")


# name -> the input that is given again as the output (through a link with the output's suffix,
# or the very path when the suffixes agree)
SAME_AS_INPUT = {
    "generate-net": "net.json",
    "simulate": "in.npz",
    "simulate-plot": "in.npz",
    "export": "net.json",
    "import": "g.nir",
    "import-report": "g.nir",
    "run": "in.npz",
    "build-report": "net.json",
    "explore": "net.json",
    "generate-readmemh": "net.json",
    "simulate-waves": "in.npz",
    "emulate-waves": "net.json",
}


def _same_cases():
    for name, source in SAME_AS_INPUT.items():
        links = ["symlink", "hardlink"]
        if os.path.splitext(source)[1] == os.path.splitext(COMMANDS[name][1])[1]:
            links.append("same")
        yield from ((name, link) for link in links)


@pytest.mark.parametrize("name, link", list(_same_cases()))
def test_output_that_is_an_input_is_refused(folder, capsys, monkeypatch, name, link):
    forbid_work(monkeypatch, name)
    source = folder / SAME_AS_INPUT[name]
    if link == "same":
        out = source
    else:
        out = folder / f"alias{os.path.splitext(COMMANDS[name][1])[1]}"
        (os.symlink if link == "symlink" else os.link)(source, out)
    before = snapshot(folder)
    status, _, err = cli(capsys, *arguments(name, folder, out))
    assert status == EXIT_BAD_INPUT
    assert f"{out}: is the input {source}; choose another file" in err
    assert snapshot(folder) == before


def test_output_that_is_a_weights_npz_of_the_network_is_refused(folder, capsys):
    d = dict(
        NETWORK, projections=[{"from": "inp", "to": "out", "weights": {"npz": "w.npz", "key": "w"}}]
    )
    (folder / "big.json").write_text(json.dumps(d))
    np.savez(folder / "w.npz", w=np.array(NETWORK["projections"][0]["weights"]))
    before = snapshot(folder)
    status, _, err = cli(
        capsys,
        "simulate",
        folder / "big.json",
        "--input",
        folder / "in.npy",
        "-o",
        folder / "w.npz",
    )
    assert status == EXIT_BAD_INPUT and "is the input" in err and str(folder / "w.npz") in err
    assert snapshot(folder) == before


def test_two_outputs_that_are_one_file_are_refused(folder, capsys):
    out = folder / "r.json"
    status, _, err = cli(capsys, "import", folder / "g.nir", "-o", out, "-r", out)
    assert status == EXIT_BAD_INPUT and err.endswith(f"-r {out}: is also the output of -o\n")


def test_wrong_suffix_is_refused_before_the_work(folder, capsys, monkeypatch):
    forbid_work(monkeypatch, "simulate-plot")
    status, _, err = cli(capsys, *arguments("simulate-plot", folder, folder / "r.xyz"))
    assert status == EXIT_BAD_INPUT
    assert err.endswith("r.xyz: the file must end in .png or .svg or .pdf\n")
    assert not (folder / "r.npz").exists()


# -- failures while writing ---------------------------------------------------------------------

# name -> arguments writing OUT (the slow work of the last ones is replaced: see fast_work)
WRITERS = {
    "generate-core": ["generate", "core", "--stages", "1", "-o", "OUT.v"],
    "generate-net": ["generate", "NET", "-o", "OUT.v"],
    "generate-readmemh": ["generate", "NET", "--memory-init", "readmemh", "--lanes", "2"]
    + ["-o", "OUT.v"],
    "simulate": ["simulate", "NET", "--input", "IN", "-o", "OUT.npz"],
    "simulate-plot": ["simulate", "NET", "--input", "IN", "-o", "OUT.npz", "--plot", "OUT.png"],
    "export": ["export", "NET", "-o", "OUT.nir"],
    "import": ["import", "GRAPH", "-o", "OUT.json", "-r", "OUT-report.json", "--steps", "5"],
    "explore": ["explore", "NET", "--board", "icebreaker", "--mode", "model", "--cache", "CACHE"]
    + ["-o", "OUT.csv"],
    "bench": ["bench", "--fresh", "-o", "OUT.json", "--doc", "OUT.md"],
    "train-digits": ["train-digits", "--epochs", "1", "-o", "OUT"],
    "train-digits-conv": ["train-digits", "--conv", "--epochs", "1", "-o", "OUT"],
    "demo": ["demo", "--backend", "amaranth", "--digits", "2", "-o", "OUT"],
}
# The files of the commands whose output is a folder.
FOLDER_OUTPUTS = {
    "train-digits": (train_digits.NET_FILE, train_digits.TEST_FILE),
    "train-digits-conv": (train_digits_conv.NET_FILE,),
    "demo": demo.OUTPUT_FILES,
}


def fast_work(monkeypatch, name):
    """Replace the slow part of ``name``'s work (training, benchmarks, RTL simulation) by a fast
    one that gives the writer the same kind of data."""
    if name == "bench":
        shipped = json.loads(SHIPPED_RESULTS.read_text())
        monkeypatch.setattr(cmd_bench, "run_suite", lambda *args, **kwargs: shipped)
        monkeypatch.setattr(cmd_bench, "demo_workload", lambda: None)
    elif name == "train-digits":
        report = dict(test_size=1, steps=1, accuracy_fixed=1, accuracy_float=1, seconds=0)
        report["train_size"] = 1
        trained = (train_digits.shipped_network(), report)
        monkeypatch.setattr(train_digits, "train", lambda **kwargs: trained)
    elif name == "train-digits-conv":
        report = dict(test_size=1, steps=1, accuracy_fixed=1, accuracy_float=1, seconds=0)
        report["train_size"] = 1
        trained = (train_digits_conv.shipped_network(), report)
        monkeypatch.setattr(train_digits_conv, "train", lambda **kwargs: trained)
    elif name == "demo":
        # The golden model in place of the RTL simulation (whose Verilog is still generated).
        def simulate(net, spikes, *args, **kwargs):
            cycles = np.ones(spikes.shape[:2], np.int64)
            return NetworkRun(spikes=run_network(net, spikes).spikes, cycles=cycles)

        monkeypatch.setattr(demo, "simulate", simulate)


def writer_arguments(name, folder):
    paths = {"NET": folder / "net.json", "IN": folder / "in.npy", "GRAPH": folder / "g.nir"}
    paths["CACHE"] = folder / "cache"
    return [
        str(paths[a]) if a in paths else a.replace("OUT", str(folder / "out"))
        for a in WRITERS[name]
    ]


def writer_outputs(folder, name):
    """The files ``name`` writes."""
    named = [a for a in writer_arguments(name, folder) if a.startswith(str(folder / "out"))]
    if name in FOLDER_OUTPUTS:
        return [os.path.join(named[0], file) for file in FOLDER_OUTPUTS[name]]
    return named


def old_outputs(folder, name):
    """Put an old file at every output of ``name``; return the folder's snapshot."""
    for path in writer_outputs(folder, name):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as file:
            # A document whose generated block bench replaces.
            file.write(f"{BEGIN}\n{END}\n".encode() if path.endswith(".md") else OLD)
    return snapshot(folder)


OLD = b"the previous result\n"
# The benchmark's results in the repository (not installed with the package).
SHIPPED_RESULTS = Path(__file__).parent.parent / "bench" / "results.json"


@pytest.mark.parametrize(
    "failure, status",
    [
        (OSError(errno.EFBIG, "File too large"), EXIT_BAD_INPUT),
        (KeyboardInterrupt(), EXIT_INTERRUPTED),
    ],
    ids=["write-fails", "ctrl-c"],
)
@pytest.mark.parametrize("name", WRITERS)
def test_failed_write_keeps_the_previous_files(folder, capsys, monkeypatch, name, failure, status):
    fast_work(monkeypatch, name)
    before = old_outputs(folder, name)
    synced = []

    def sync(path):
        # The temporary file is complete (its writer has finished) when it is synced: fail
        # there, between writing and renaming, or on the second of two outputs.
        synced.append(path)
        assert os.path.getsize(path) > 0
        raise failure

    monkeypatch.setattr(files_module, "_sync", sync)
    code, _, err = cli(capsys, *writer_arguments(name, folder))
    assert code == status, err
    assert synced
    assert snapshot(folder) == before
    if status == EXIT_BAD_INPUT:
        assert err.endswith(": cannot write: File too large\n") and str(folder / "out") in err


@pytest.mark.parametrize("name", WRITERS)
def test_every_command_writes_through_a_temporary_file(folder, capsys, monkeypatch, name):
    fast_work(monkeypatch, name)
    before = old_outputs(folder, name)
    code, _, err = cli(capsys, *writer_arguments(name, folder))
    assert code == 0, err
    after = snapshot(folder)
    assert not [path for path in after if ".tmp-" in path]
    for path in writer_outputs(folder, name):
        relative = os.path.relpath(path, folder)
        assert after[relative] != before[relative], relative


class _Interrupting:
    """A file that takes the first half of the first write, then is interrupted (Ctrl-C)."""

    def __init__(self, file, interrupted):
        self._file = file
        self._interrupted = interrupted

    def write(self, data):
        self._file.write(data[: len(data) // 2])
        self._file.flush()
        self._interrupted.append(self._file.name)
        raise KeyboardInterrupt

    def __getattr__(self, name):
        return getattr(self._file, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._file.close()


def interrupt_writers(monkeypatch):
    """Make every write into a temporary output file stop halfway with a Ctrl-C; return the list
    of the files interrupted."""
    interrupted = []
    real_open = builtins.open

    def interrupting_open(file, mode="r", *args, **kwargs):
        handle = real_open(file, mode, *args, **kwargs)
        temporary = isinstance(file, (str, os.PathLike)) and ".tmp-" in os.fspath(file)
        if temporary and set(mode) & set("wax+"):
            return _Interrupting(handle, interrupted)
        return handle

    # zipfile (the .npz files) opens through io.open, the rest through the built-in.
    monkeypatch.setattr(builtins, "open", interrupting_open)
    monkeypatch.setattr(io, "open", interrupting_open)

    # (A NIR graph is made in memory and written through the built-in open too.)
    return interrupted


@pytest.mark.parametrize("name", WRITERS)
def test_ctrl_c_in_the_middle_of_a_write_leaves_no_partial_file(folder, capsys, monkeypatch, name):
    fast_work(monkeypatch, name)
    before = old_outputs(folder, name)
    interrupted = interrupt_writers(monkeypatch)
    code, _, err = cli(capsys, *writer_arguments(name, folder))
    monkeypatch.undo()
    # Nothing but explore's progress bar on stderr.
    assert code == EXIT_INTERRUPTED and "error" not in err
    assert interrupted
    assert snapshot(folder) == before


# The script of a child whose files can grow to 3,000 bytes: `ulimit -f` makes write() fail with
# EFBIG (Python ignores SIGXFSZ).
LIMITED_CHILD = (
    "import resource, sys\n"
    "from spikeforge.cli.main import main\n"
    "resource.setrlimit(resource.RLIMIT_FSIZE, (3000, 3000))\n"
    "sys.exit(main(sys.argv[1:]))\n"
)


@pytest.mark.parametrize(
    "steps, plot, failed",
    [(20000, False, "-o OUT.npz"), (4, True, "-o OUT.npz, --plot OUT.png")],
    ids=["result", "plot"],
)
def test_disk_full_in_a_child_process(folder, steps, plot, failed):
    # The real thing, midway through the result (20,000 random steps make a bigger file)
    # or through the plot (the result fits): the write() that fails names no file, so both are
    # named.
    name = "simulate-plot" if plot else "simulate"
    before = old_outputs(folder, name)
    spikes = np.random.default_rng(1).integers(0, 2, (steps, 3), np.uint8)
    np.save(folder / "in.npy", spikes)
    before["in.npy"] = (folder / "in.npy").read_bytes()
    result = subprocess.run(
        [sys.executable, "-c", LIMITED_CHILD, *writer_arguments(name, folder)],
        capture_output=True,
        text=True,
        env=dict(os.environ),
    )
    assert result.returncode == EXIT_BAD_INPUT, result.stderr
    assert result.stderr == (
        f"spikeforge: error: {failed.replace('OUT', str(folder / 'out'))}: cannot write: "
        "File too large\n"
    )
    assert snapshot(folder) == before


def test_export_disk_full_in_a_child_process(folder):
    # HDF5 would crash the process on a write the disk refuses: the graph is made in memory and
    # written by Python, whose failure is the usual one line.
    before = old_outputs(folder, "export")
    result = subprocess.run(
        [sys.executable, "-c", LIMITED_CHILD, *writer_arguments("export", folder)],
        capture_output=True,
        text=True,
        env=dict(os.environ),
    )
    assert result.returncode == EXIT_BAD_INPUT, result.stderr
    assert (
        result.stderr
        == f"spikeforge: error: -o {folder / 'out.nir'}: cannot write: File too large\n"
    )
    assert snapshot(folder) == before


# -- the module itself -------------------------------------------------------------------------


def test_atomic_write_keeps_the_mode_and_replaces_whole(tmp_path):
    path = tmp_path / "a.txt"
    path.write_text("old")
    path.chmod(0o640)
    with atomic_write(path) as file:
        file.write("new")
        assert path.read_text() == "old"
    assert path.read_text() == "new" and (path.stat().st_mode & 0o777) == 0o640


def test_atomic_paths_all_or_none(tmp_path):
    a, b = tmp_path / "a.json", tmp_path / "b.png"
    with pytest.raises(RuntimeError):
        with atomic_paths([a, b]) as (ta, tb):
            assert ta.endswith(".json") and tb.endswith(".png")
            with open(ta, "w") as file:
                file.write("x")
            raise RuntimeError("second writer failed")
    assert os.listdir(tmp_path) == []


def test_check_outputs_rules(tmp_path):
    (tmp_path / "in.json").write_text("{}")
    check_outputs([("-o", tmp_path / "x.json", (".json",)), ("-r", None, None)])
    for outputs, message in [
        ([("-o", tmp_path / "x.txt", (".json",))], "the file must end in .json"),
        ([("-o", tmp_path / "in.json", None)], "is the input"),
        ([("-o", "", None)], "must be a file name, not a folder"),
        ([("-o", tmp_path / "no" / "x", None)], "does not exist"),
    ]:
        with pytest.raises(SpikeforgeError, match=message):
            check_outputs(outputs, [tmp_path / "in.json"])


def test_build_folder_that_is_a_file_is_refused_before_the_work(folder, capsys, monkeypatch):
    forbid_work(monkeypatch, "build-report")
    status, _, err = cli(
        capsys, "build", folder / "net.json", "--board", "icebreaker", "-o", folder / "in.npy"
    )
    assert status == EXIT_BAD_INPUT and err.endswith("in.npy: is a file, not a folder\n")


def test_demo_and_train_digits_folders_are_checked_before_the_work(folder, capsys, monkeypatch):
    def work(*args, **kwargs):
        raise AssertionError("the work started")

    monkeypatch.setattr(demo, "shipped_network", work)
    monkeypatch.setattr(demo.train_digits_conv, "shipped_network", work)
    monkeypatch.setattr(cmd_train_digits.train_digits, "train", work)
    monkeypatch.setattr(cmd_train_digits.train_digits_conv, "train", work)
    for command in (
        ["demo"],
        ["demo", "--network", "conv"],
        ["train-digits"],
        ["train-digits", "--conv"],
    ):
        status, _, err = cli(capsys, *command, "-o", folder / "in.npy")
        assert status == EXIT_BAD_INPUT and err.endswith("in.npy: is a file, not a folder\n")
    (folder / "demo").mkdir()
    (folder / "demo" / "raster.png").mkdir()
    status, _, err = cli(capsys, "demo", "-o", folder / "demo")
    assert status == EXIT_BAD_INPUT and err.endswith("raster.png: is a folder, not a file\n")


def test_demo_makes_a_new_folder_only_once_its_work_is_done(folder, capsys, monkeypatch):
    out = folder / "new" / "demo"

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(demo, "simulate", interrupted)
    status, _, err = cli(capsys, "demo", "--backend", "amaranth", "--digits", "2", "-o", out)
    assert status == EXIT_INTERRUPTED and "error" not in err
    assert not (folder / "new").exists()
    fast_work(monkeypatch, "demo")
    status, _, err = cli(capsys, "demo", "--backend", "amaranth", "--digits", "2", "-o", out)
    assert status == 0, err
    assert sorted(os.listdir(out)) == sorted(demo.OUTPUT_FILES)


def test_train_digits_makes_a_new_folder(folder, capsys, monkeypatch):
    fast_work(monkeypatch, "train-digits")
    out = folder / "new" / "trained"
    status, _, err = cli(capsys, "train-digits", "--epochs", "1", "-o", out)
    assert status == 0, err
    assert sorted(os.listdir(out)) == sorted(FOLDER_OUTPUTS["train-digits"])


def test_bench_doc_is_replaced_atomically(tmp_path, monkeypatch):
    doc = tmp_path / "performance.md"
    doc.write_text(f"intro\n{BEGIN}\nold tables\n{END}\nend\n")
    before = doc.read_bytes()

    def sync(path):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(files_module, "_sync", sync)
    shipped = json.loads(SHIPPED_RESULTS.read_text())
    with pytest.raises(SpikeforgeError, match=r"^--doc .*performance\.md: cannot write: No space"):
        tables.update_doc(doc, shipped)
    assert doc.read_bytes() == before and os.listdir(tmp_path) == ["performance.md"]
