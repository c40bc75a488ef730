"""Fuzzing of user inputs: input spike arrays and files, and CLI argument lists.

The rule under test: every input is either accepted (and then means what it says) or rejected
with one line (``SpikeforgeError`` from the library, exit 2 and one stderr line from the CLI);
never a traceback, never a hang. Network JSON and NIR files are fuzzed in
``test_network_format.py`` and ``test_nir_errors.py``. Default runtime about 50 s (the
``generate`` examples convert a design each).
"""

import json
import zipfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from spikeforge.cli.main import main
from spikeforge.gen.network import Network
from spikeforge.gen.spike_io import check_input_spikes, load_input_spikes, load_outputs
from spikeforge.spec.errors import SpikeforgeError

N_IN = 3

NETWORK = {
    "format": "spikeforge-network/1",
    "v_width": 8,
    "w_width": 4,
    "populations": [
        {"name": "inp", "kind": "input", "size": N_IN},
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

dtypes = st.one_of(
    hnp.integer_dtypes(),
    hnp.unsigned_integer_dtypes(),
    hnp.floating_dtypes(),
    hnp.complex_number_dtypes(),
    hnp.boolean_dtypes(),
    hnp.datetime64_dtypes(),
    hnp.byte_string_dtypes(max_len=3),
    hnp.unicode_string_dtypes(max_len=3),
)
# Small values so that valid arrays (all 0/1) come up often next to bad ones.


def _elements(dtype):
    if dtype.kind in "if":
        return st.sampled_from([0, 1, 2, -1])
    if dtype.kind == "u":
        return st.sampled_from([0, 1, 2])
    return None  # hypothesis's own values of the dtype


spike_arrays = dtypes.flatmap(
    lambda dtype: hnp.arrays(
        dtype,
        hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=4),
        elements=_elements(dtype),
    )
)


def is_valid_spikes(array):
    return (
        array.dtype.kind in "biu"
        and array.ndim in (2, 3)
        and array.shape[-1] == N_IN
        and 0 not in array.shape
        and bool(np.isin(array, (0, 1)).all())
    )


def check_one_line_error(error, prefix):
    message = str(error)
    assert message.startswith(prefix) and "\n" not in message, message


@settings(max_examples=300, deadline=None)
@given(spike_arrays)
def test_check_input_spikes_accepts_exactly_valid_arrays(array):
    if is_valid_spikes(array):
        out = check_input_spikes(array, N_IN)
        assert out.dtype == np.uint8 and out.flags.c_contiguous
        assert np.array_equal(out, array)
    else:
        with pytest.raises(SpikeforgeError) as info:
            check_input_spikes(array, N_IN)
        check_one_line_error(info.value, "input: ")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fuzz_inputs")
    network = folder / "net.json"
    network.write_text(json.dumps(NETWORK))
    spikes = folder / "spikes.npy"
    np.save(spikes, np.array([[1, 0, 1], [0, 1, 1], [1, 1, 1]], np.uint8))
    spikes_npz = folder / "spikes.npz"
    np.savez(spikes_npz, spikes=np.load(spikes))
    # Other names of the inputs, with the suffixes of the outputs.
    (folder / "alias.v").symlink_to(network)
    (folder / "alias.npz").symlink_to(spikes_npz)
    return {"dir": folder, "network": network, "spikes": spikes, "spikes_npz": spikes_npz}


file_contents = st.one_of(
    spike_arrays.map(lambda a: ("npy", a)),
    st.dictionaries(st.text("abcs_pike", min_size=1, max_size=6), spike_arrays, max_size=3).map(
        lambda d: ("npz", d)
    ),
    st.binary(max_size=200).map(lambda b: ("raw", b)),
)


def write_file(folder, content, suffix):
    kind, value = content
    path = folder / f"fuzz{suffix}"
    if kind == "npy":
        with open(path, "wb") as f:
            np.save(f, value, allow_pickle=False)
    elif kind == "npz":
        with open(path, "wb") as f:
            np.savez(f, **value)
    else:
        path.write_bytes(value)
    return path


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(content=file_contents, suffix=st.sampled_from([".npy", ".npz", ".NPY", ".txt", ""]))
def test_load_input_spikes_from_any_file(files, content, suffix):
    net = Network.from_dict(NETWORK)
    path = write_file(files["dir"], content, suffix)
    try:
        out = load_input_spikes(path, net)
    except SpikeforgeError as error:
        check_one_line_error(error, "input: ")
        return
    # Accepted: it must be exactly one valid array of the file.
    kind, value = content
    assert kind in ("npy", "npz") and suffix.lower() in (".npy", ".npz")
    if kind == "npz":
        value = value["spikes"] if "spikes" in value else next(iter(value.values()))
    assert is_valid_spikes(value) and np.array_equal(out, value)


def test_load_input_spikes_fixed_cases(files, tmp_path):
    net = Network.from_dict(NETWORK)
    with pytest.raises(SpikeforgeError, match=r"^input: file must be \.npy or \.npz, not "):
        load_input_spikes(tmp_path / "x.csv", net)
    with pytest.raises(SpikeforgeError, match=r"^input: file '.*missing\.npy' not found$"):
        load_input_spikes(tmp_path / "missing.npy", net)
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"PK\x03\x04 not a zip")
    with pytest.raises(SpikeforgeError, match=r"^input: cannot read '.*bad\.npz' as a NumPy"):
        load_input_spikes(bad, net)
    two = tmp_path / "two.npz"
    np.savez(two, a=np.zeros((1, 3), np.uint8), b=np.zeros((1, 3), np.uint8))
    with pytest.raises(SpikeforgeError, match=r"has no array 'spikes' \(it has: a, b\)$"):
        load_input_spikes(two, net)
    assert zipfile.is_zipfile(two)
    # np.load goes by the contents; a file whose name says otherwise is rejected by name.
    npy_inside = tmp_path / "array.npz"
    with open(npy_inside, "wb") as f:
        np.save(f, np.zeros((1, 3), np.uint8))
    with pytest.raises(
        SpikeforgeError,
        match=r"^input: '.*array\.npz' is an \.npy array, not an "
        r"\.npz archive$",
    ):
        load_input_spikes(npy_inside, net)
    with pytest.raises(
        SpikeforgeError,
        match=r"^result: '.*array\.npz' is an \.npy array, not "
        r"an \.npz archive$",
    ):
        load_outputs(npy_inside)
    npz_inside = tmp_path / "archive.npy"
    with open(npz_inside, "wb") as f:
        np.savez(f, spikes=np.zeros((1, 3), np.uint8))
    with pytest.raises(
        SpikeforgeError,
        match=r"^input: '.*archive\.npy' is an \.npz archive, not "
        r"an \.npy array$",
    ):
        load_input_spikes(npz_inside, net)


# --- CLI argument lists ----------------------------------------------------------------------


def values():
    return st.one_of(
        st.integers(-70000, 70000).map(str),
        st.sampled_from(
            [
                "0",
                "1",
                "2",
                "4",
                "8",
                "16",
                "32",
                "zero",
                "subtract",
                "none",
                "3,-6",
                "verilog",
                "rtlil",
                "golden",
                "amaranth",
                "nonsense",
                "",
                "-1",
                "1e3",
                "0x10",
                "4,",
                ",",
                "-0",
            ]
        ),
        st.text(max_size=6),
    )


GENERATE_OPTIONS = [
    "--lanes",
    "--v-width",
    "--v-th",
    "--v-reset",
    "--v-rest",
    "--v-peak",
    "--t-ref",
    "--bias",
    "--reset-mode",
    "--decay",
    "--w-width",
    "--fan-in",
    "--stages",
    "--format",
]
GENERATE_FLAGS = ["--trace", "--runtime-params"]
SIMULATE_OPTIONS = ["--lanes", "--stages"]


@st.composite
def generate_args(draw, files):
    out = draw(st.sampled_from(["file", "none"] + BAD_OUTPUTS))
    targets = ["core", str(files["network"]), "missing.json", str(files["spikes"]), ""]
    if out in ("input", "input-alias"):
        # The network, which the output names.
        targets = [str(files["network"])]
    args = ["generate", draw(st.sampled_from(targets))]
    for _ in range(draw(st.integers(0, 4))):
        if draw(st.booleans()):
            args += [draw(st.sampled_from(GENERATE_OPTIONS)), draw(values())]
        else:
            args.append(draw(st.sampled_from(GENERATE_FLAGS + ["--bogus", "-x", "extra"])))
    if out != "none":
        args += [
            "-o",
            {
                "file": str(files["dir"] / "out.v"),
                "dir": str(files["dir"]),
                "existing-dir": str(files["dir"] / "sub.v"),
                "nowhere": str(files["dir"] / "no" / "such" / "out.v"),
                "input": str(files["network"]),
                "input-alias": str(files["dir"] / "alias.v"),
            }[out],
        ]
    return args, out in BAD_OUTPUTS


@st.composite
def simulate_args(draw, files):
    args = [
        "simulate",
        draw(st.sampled_from([str(files["network"]), str(files["spikes"]), "missing.json"])),
    ]
    out = draw(st.sampled_from(["npz", "txt", "none"] + BAD_OUTPUTS))
    sources = ["good", "good-npz", "network", "missing", "none", "text"]
    if out == "input-alias":
        # The input spikes, which the output names.
        sources = ["good-npz"]
    source = draw(st.sampled_from(sources))
    if source != "none":
        args += [
            "--input",
            {
                "good": str(files["spikes"]),
                "good-npz": str(files["spikes_npz"]),
                "network": str(files["network"]),
                "missing": str(files["dir"] / "nope.npy"),
                "text": draw(values()),
            }[source],
        ]
    # The golden back-end, or a name that is not one: the hardware back-ends are slow and
    # tested in their own files.
    args += ["--backend", draw(st.sampled_from(["golden", "Golden", "nonsense", ""]))]
    for _ in range(draw(st.integers(0, 3))):
        if draw(st.booleans()):
            args += [draw(st.sampled_from(SIMULATE_OPTIONS)), draw(values())]
        else:
            args.append(draw(st.sampled_from(["--trace", "--bogus", "extra"])))
    if out != "none":
        args += [
            "-o",
            {
                "npz": str(files["dir"] / "out.npz"),
                "txt": str(files["dir"] / "o.txt"),
                "dir": str(files["dir"]),
                "existing-dir": str(files["dir"] / "sub.npz"),
                "nowhere": str(files["dir"] / "no" / "such" / "out.npz"),
                # The input spikes or the network, by their names or another.
                "input": str(files["spikes_npz"] if source == "good-npz" else files["network"]),
                "input-alias": str(files["dir"] / "alias.npz"),
            }[out],
        ]
    return args, out in BAD_OUTPUTS


# Outputs that can never be written: a folder (the folder of the inputs, or a folder with the
# output's suffix), a file in a missing folder, an input by its own name or a link.
BAD_OUTPUTS = ["dir", "existing-dir", "nowhere", "input", "input-alias"]


def run_cli(capsys, args):
    capsys.readouterr()
    code = main(args)
    err = capsys.readouterr().err
    assert code in (0, 2), (args, code, err)
    if code == 2:
        lines = err.splitlines()
        assert len(lines) == 1 and lines[0].startswith("spikeforge: error: "), (args, err)
    return code


def inputs(files):
    """The bytes of every input file."""
    return {name: files[name].read_bytes() for name in ("network", "spikes", "spikes_npz")}


def run_fuzzed(capsys, files, drawn):
    """Run fuzzed arguments: a bad output fails with one line, and no input ever changes."""
    args, bad_output = drawn
    (files["dir"] / "sub.v").mkdir(exist_ok=True)
    (files["dir"] / "sub.npz").mkdir(exist_ok=True)
    before = inputs(files)
    code = run_cli(capsys, args)
    assert inputs(files) == before, args
    if bad_output:
        assert code == 2, args


@settings(
    max_examples=25,
    deadline=60000,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_generate_any_arguments(files, capsys, data):
    run_fuzzed(capsys, files, data.draw(generate_args(files)))


@settings(
    max_examples=80,
    deadline=60000,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_simulate_any_arguments(files, capsys, data):
    run_fuzzed(capsys, files, data.draw(simulate_args(files)))


def test_cli_fixed_cases(files, capsys):
    # The ends of the generated space: one success of each command, and errors pinned exactly.
    out = files["dir"] / "fixed.npz"
    assert (
        run_cli(
            capsys,
            ["simulate", str(files["network"]), "--input", str(files["spikes"]), "-o", str(out)],
        )
        == 0
    )
    assert out.exists()
    assert (
        run_cli(
            capsys,
            [
                "generate",
                "core",
                "--v-width",
                "8",
                "--v-th",
                "10",
                "--stages",
                "1",
                "-o",
                str(files["dir"] / "core.v"),
            ],
        )
        == 0
    )
    assert (
        run_cli(
            capsys,
            [
                "simulate",
                str(files["network"]),
                "--input",
                str(files["spikes"]),
                "--lanes",
                "3",
                "-o",
                str(out),
            ],
        )
        == 2
    )
    assert run_cli(capsys, ["generate", "core", "--bogus", "-o", str(out)]) == 2
