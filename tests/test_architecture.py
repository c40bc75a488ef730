"""The shape of the code (docs/architecture.md): layers that import only downward, and lint.

The layering contract lives in ``pyproject.toml`` (``[tool.importlinter]``); ``lint-imports``
checks it on a copy of the seven layer folders assembled as the package ``spikeforge``, so that
the check reads this tree whether spikeforge is installed editable, normally, or not at all.
"""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# Bottom to top: a layer may import only the layers before it.
LAYERS = ("spec", "hdl", "gen", "sim", "boards", "bench", "cli")


def lint_imports(tmp_path, plant=None):
    """Run ``lint-imports`` on a copy of the layers; ``plant`` adds a line to one file first.

    Returns ``(exit status, output)``.
    """
    package = tmp_path / "spikeforge"
    for layer in LAYERS:
        shutil.copytree(ROOT / layer, package / layer, ignore=shutil.ignore_patterns("data"))
    # A regular package here wins over the installed namespace package on the path.
    (package / "__init__.py").write_text('"""spikeforge, as copied for the layering check."""\n')
    if plant is not None:
        path, line = plant
        target = package / path
        target.write_text(target.read_text() + line)
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "from importlinter.cli import lint_imports_command; lint_imports_command()",
        ],
        cwd=ROOT,
        env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    return result.returncode, result.stdout + result.stderr


def test_layers_import_only_downward(tmp_path):
    status, output = lint_imports(tmp_path)
    assert status == 0, output
    assert "Contracts: 1 kept, 0 broken." in output


@pytest.mark.parametrize(
    "path, line",
    [
        ("hdl/arith.py", "from ..gen import network\n"),
        ("spec/limits.py", "from spikeforge.cli import main\n"),
        ("gen/compile.py", "from ..bench import suite\n"),
    ],
)
def test_an_upward_import_breaks_the_contract(tmp_path, path, line):
    # The check above would pass on an empty tree too: an import planted against the
    # direction must fail it.
    status, output = lint_imports(tmp_path, plant=(path, line))
    assert status == 1, output
    assert "Contracts: 0 kept, 1 broken." in output


def test_every_layer_is_a_package_in_pyproject():
    text = (ROOT / "pyproject.toml").read_text()
    for layer in LAYERS:
        assert f'"spikeforge.{layer}" = "{layer}"' in text
        assert f'    "spikeforge.{layer}",\n' in text  # the contract names it


@pytest.mark.parametrize("command", [["check"], ["format", "--check"]], ids=["check", "format"])
def test_ruff(command):
    result = subprocess.run(
        [sys.executable, "-m", "ruff", *command, "."],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
