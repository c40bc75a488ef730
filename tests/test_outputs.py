"""Nothing a user has is lost: every output of every command is checked before the work starts
and written atomically (issue 14, spec/files.py).

For each command that writes a file: an output that is one of the inputs is refused and the input
stays as it was; an output in a missing folder is refused before any work (the work functions are
replaced by ones that fail the test); a write that fails midway and a Ctrl-C leave the previous
file intact and no temporary file behind. Runtime a few seconds: no synthesis, no RTL simulation.
"""

import errno
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from spikeforge.cli import (
    cmd_bench,
    cmd_build,
    cmd_generate,
    cmd_nir,
    cmd_simulate,
    cmd_train_digits,
    demo,
)
from spikeforge.cli.main import main
from spikeforge.gen.network import Network, save_network
from spikeforge.gen.nir_export import export_nir
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
    """Every file under ``folder`` with its bytes."""
    return {
        os.path.relpath(path, folder): path.read_bytes()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
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

# name -> arguments writing OUT (every command whose work is fast enough to run here)
WRITERS = {
    "generate-core": ["generate", "core", "--stages", "1", "-o", "OUT.v"],
    "generate-net": ["generate", "NET", "-o", "OUT.v"],
    "simulate": ["simulate", "NET", "--input", "IN", "-o", "OUT.npz"],
    "simulate-plot": ["simulate", "NET", "--input", "IN", "-o", "OUT.npz", "--plot", "OUT.png"],
    "export": ["export", "NET", "-o", "OUT.nir"],
    "import": ["import", "GRAPH", "-o", "OUT.json", "-r", "OUT-report.json", "--steps", "5"],
}


def writer_arguments(name, folder):
    paths = {"NET": folder / "net.json", "IN": folder / "in.npy", "GRAPH": folder / "g.nir"}
    return [
        str(paths[a]) if a in paths else a.replace("OUT", str(folder / "out"))
        for a in WRITERS[name]
    ]


def old_outputs(folder, name):
    """Put an old file at every output of ``name``; return the folder's snapshot."""
    for arg in writer_arguments(name, folder):
        if arg.startswith(str(folder / "out")):
            with open(arg, "wb") as file:
                file.write(b"the previous result\n")
    return snapshot(folder)


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
def test_every_command_writes_through_a_temporary_file(folder, capsys, name):
    old_outputs(folder, name)
    code, _, err = cli(capsys, *writer_arguments(name, folder))
    assert code == 0, err
    after = snapshot(folder)
    assert not [path for path in after if ".tmp-" in path]
    assert all(
        after[os.path.relpath(a, folder)] != b"the previous result\n"
        for a in writer_arguments(name, folder)
        if a.startswith(str(folder / "out"))
    )


def test_disk_full_in_a_child_process(folder):
    # The real thing: `ulimit -f` makes write() fail with EFBIG (Python ignores SIGXFSZ).
    old = old_outputs(folder, "simulate")[("out.npz")]
    script = (
        "import resource, sys\n"
        "from spikeforge.cli.main import main\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (600, 600))\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    big = np.zeros((400, 3), np.uint8)
    np.save(folder / "big.npy", big)
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            script,
            "simulate",
            str(folder / "net.json"),
            "--input",
            str(folder / "big.npy"),
            "-o",
            str(folder / "out.npz"),
        ],
        capture_output=True,
        text=True,
        env=dict(os.environ),
    )
    assert result.returncode == EXIT_BAD_INPUT, result.stderr
    assert result.stderr == (
        f"spikeforge: error: -o {folder / 'out.npz'}: cannot write: File too large\n"
    )
    assert (folder / "out.npz").read_bytes() == old
    assert not [p for p in os.listdir(folder) if ".tmp-" in p]


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
    monkeypatch.setattr(cmd_train_digits.train_digits, "train", work)
    for command in (["demo"], ["train-digits"]):
        status, _, err = cli(capsys, *command, "-o", folder / "in.npy")
        assert status == EXIT_BAD_INPUT and err.endswith("in.npy: is a file, not a folder\n")
    (folder / "demo").mkdir()
    (folder / "demo" / "raster.png").mkdir()
    status, _, err = cli(capsys, "demo", "-o", folder / "demo")
    assert status == EXIT_BAD_INPUT and err.endswith("raster.png: is a folder, not a file\n")
