"""Train a tiny spiking network in snnTorch, export it as NIR, run it on spikeforge.

Needs ``torch`` and ``snntorch`` (``pip install torch snntorch``; tried with snnTorch 1.0.0 and
nir 1.0.8); spikeforge itself does not. The task: 4 input channels fire at random rates and the
network tells whether channels 0-1 or 2-3 fire more. See docs/nir.md for the mapping; in short,
``spikeforge import --from snntorch`` knows snnTorch's ``dt = 1e-4`` and its default reset: by
subtraction, one step late (``reset_delay=True``, spikeforge's ``reset_timing: "next"``). A net
trained with ``reset_delay=False`` would need ``reset_timing="same"``: the NIR file does not
record it. snnTorch 1.0 exports only per-neuron ``beta`` and ``threshold`` tensors, and needs
``ignore_dims=[0]`` for the batch dimension.

Run it from the repository root (``tools/make_framework_fixtures.py --example`` runs it too)::

    python examples/snntorch_to_spikeforge.py

It prints the quantization report and the accuracy of snnTorch and of the fixed-point network on
the same test spikes, and writes ``snntorch_tiny.nir`` and ``snntorch_tiny.json`` to the current
folder (``spikeforge simulate snntorch_tiny.json ...`` runs it on the hardware back-ends).
"""

import sys

import numpy as np

try:
    import snntorch as snn
    import torch
    from snntorch import surrogate, utils
    from snntorch.export_nir import export_to_nir
except ImportError:
    sys.exit("this example needs torch and snntorch: pip install torch snntorch")

import nir

from spikeforge.gen.network import save_network
from spikeforge.gen.nir_import import import_nir
from spikeforge.sim.network_golden import run_network
from spikeforge.sim.quant_report import format_report, quantization_report

STEPS = 25
N_IN, N_HID, N_OUT = 4, 8, 2


def make_data(rng, n):
    """Spike trains ``(n, STEPS, N_IN)`` and labels: 1 if channels 2-3 fire faster."""
    labels = rng.integers(0, 2, n)
    rates = rng.uniform(0.05, 0.3, (n, N_IN))
    rows = np.arange(n)
    rates[rows, 2 * labels] += 0.3
    rates[rows, 2 * labels + 1] += 0.3
    spikes = (rng.random((n, STEPS, N_IN)) < rates[:, None, :]).astype(np.uint8)
    return spikes, labels


def leaky(n, **options):
    """A ``Leaky`` layer of ``n`` neurons with per-neuron ``beta`` and ``threshold`` (what
    snnTorch 1.0's NIR export needs) and snnTorch's default reset."""
    return snn.Leaky(
        beta=torch.full((n,), 0.875),
        threshold=torch.ones(n),
        init_hidden=True,
        spike_grad=surrogate.fast_sigmoid(),
        **options,
    )


def build():
    return torch.nn.Sequential(
        torch.nn.Linear(N_IN, N_HID),
        leaky(N_HID),
        torch.nn.Linear(N_HID, N_OUT),
        leaky(N_OUT, output=True),
    )


def counts(net, spikes):
    """Output spike counts ``(n, N_OUT)`` of the snnTorch network."""
    utils.reset(net)
    total = 0
    for t in range(STEPS):
        spk, _ = net(torch.as_tensor(spikes[:, t], dtype=torch.float32))
        total = total + spk
    return total


def main():
    rng = np.random.default_rng(0)
    torch.manual_seed(0)
    train_x, train_y = make_data(rng, 512)
    test_x, test_y = make_data(rng, 200)
    net = build()
    optimizer = torch.optim.Adam(net.parameters(), lr=2e-2)
    for _epoch in range(30):
        for start in range(0, len(train_x), 64):
            out = counts(net, train_x[start : start + 64])
            target = torch.as_tensor(train_y[start : start + 64])
            loss = torch.nn.functional.cross_entropy(out, target)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    with torch.no_grad():
        torch_acc = (counts(net, test_x).argmax(1).numpy() == test_y).mean()

    graph = export_to_nir(net, torch.zeros(1, N_IN), ignore_dims=[0])
    nir.write("snntorch_tiny.nir", graph)
    model = import_nir("snntorch_tiny.nir", preset="snntorch")
    for line in model.warnings:
        print(f"warning: {line}")
    save_network(model.network, "snntorch_tiny.json")
    print(format_report(quantization_report(model, test_x, "the test set")))

    run = run_network(model.network, test_x)
    out_name = model.network.lif_populations[-1].name
    fixed = run.spikes[out_name].sum(axis=1)
    # Ties (equal counts) count as wrong, as argmax would pick class 0 for them.
    fixed_acc = ((fixed.argmax(1) == test_y) & (fixed[:, 0] != fixed[:, 1])).mean()
    print(f"test accuracy: snnTorch {torch_acc:.1%}, spikeforge fixed point {fixed_acc:.1%}")


if __name__ == "__main__":
    main()
