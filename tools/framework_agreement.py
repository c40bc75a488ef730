"""Spike agreement of spikeforge with each framework's own forward pass (``docs/nir.md``).

For every fixture of ``tests/data/frameworks/`` (written by ``tools/make_framework_fixtures.py``)
it imports the ``.nir`` graph with the framework's preset and the options the fixture records,
runs the golden model on the stored input spikes and compares each layer's spikes with the
framework's as Jaccard (spikes in both runs over spikes in either), per sample, averaged over the
batch. Needs no torch::

    python tools/framework_agreement.py            # the table of docs/nir.md

``tests/test_framework_fixtures.py`` checks the same numbers.
"""

import argparse
import json
import os
import sys

import numpy as np

from spikeforge.gen.nir_import import import_nir
from spikeforge.sim.network_golden import run_network

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "tests", "data")
FIXTURES = os.path.normpath(os.path.join(FIXTURES, "frameworks"))
# The widths of the table: wide enough that quantization hardly matters (the convention is what is
# measured; tests/test_framework_fixtures.py checks these), and the network's defaults.
WIDE = (24, 16)
DEFAULT = (16, 8)


def fixture_names():
    """The fixtures stored, sorted."""
    return sorted(f[:-4] for f in os.listdir(FIXTURES) if f.endswith(".npz"))


def load_fixture(name):
    """``(data, settings)`` of fixture ``name``: the ``.npz`` arrays and its settings dict."""
    with np.load(os.path.join(FIXTURES, f"{name}.npz")) as npz:
        data = {k: npz[k] for k in npz.files}
    return data, json.loads(str(data["settings"]))


def jaccard(a, b):
    """Mean over the batch of ``|a & b| / |a | b|`` per sample (1 where neither fires)."""
    a = a.reshape(a.shape[0], -1) > 0
    b = b.reshape(b.shape[0], -1) > 0
    both = (a & b).sum(axis=1)
    either = (a | b).sum(axis=1)
    return float(np.mean(np.where(either > 0, both / np.maximum(either, 1), 1.0)))


def agreement(name, v_width=WIDE[0], w_width=WIDE[1]):
    """Per layer of fixture ``name``: ``(NIR node, Jaccard, framework spikes, spikeforge
    spikes)``, and the import's warnings."""
    data, settings = load_fixture(name)
    model = import_nir(
        os.path.join(FIXTURES, f"{name}.nir"),
        preset=settings["preset"],
        v_width=v_width,
        w_width=w_width,
        **settings["options"],
    )
    run = run_network(model.network, data["input"])
    rows = []
    for k, node in enumerate(data["layers"]):
        ours = run.spikes[model.nodes[str(node)]]
        theirs = data[f"spikes_{k}"]
        rows.append((str(node), jaccard(theirs, ours), int(theirs.sum()), int(ours.sum())))
    return rows, model.warnings


def table():
    """The Markdown table of every fixture's agreement, at :data:`WIDE` and :data:`DEFAULT`."""
    lines = [
        f"| fixture | options | versions | hidden, output at {WIDE[0]}/{WIDE[1]} bits "
        f"| hidden, output at {DEFAULT[0]}/{DEFAULT[1]} bits "
        f"| spikes hidden, output (framework : spikeforge at {WIDE[0]}/{WIDE[1]}) |",
        "|---|---|---|---|---|---|",
    ]
    for name in fixture_names():
        data, settings = load_fixture(name)
        wide, _ = agreement(name, *WIDE)
        default, _ = agreement(name, *DEFAULT)
        versions = json.loads(str(data["versions"]))
        framework = {k: v for k, v in versions.items() if k not in ("torch", "nir", "nirtorch")}
        options = "".join(f" --{k.replace('_', '-')} {v}" for k, v in settings["options"].items())
        counts = ", ".join(f"{theirs} : {ours}" for _, _, theirs, ours in wide)
        lines.append(
            f"| `{name}` | `--from {settings['preset']}{options}` "
            f"| {', '.join(f'{k} {v}' for k, v in framework.items())}, nir {versions['nir']} "
            f"| {wide[0][1]:.3f}, {wide[-1][1]:.3f} | {default[0][1]:.3f}, {default[-1][1]:.3f} "
            f"| {counts} |"
        )
    return "\n".join(lines)


def main(argv=None):
    argparse.ArgumentParser(description=__doc__.split("\n\n")[0]).parse_args(argv)
    print(table())
    return 0


if __name__ == "__main__":
    sys.exit(main())
