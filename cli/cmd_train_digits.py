"""``spikeforge train-digits``: train the spiking digit classifier of ``docs/digits.md``."""

import os

from ..spec.errors import SpikeforgeError
from ..spec.files import check_output_dir, check_outputs
from ..spec.limits import check_int
from . import train_digits

__all__ = ["add_parser"]


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "train-digits",
        help="train the spiking 8x8 digit classifier (needs scikit-learn)",
        description="Train the spiking classifier of the scikit-learn 8x8 digits with the "
        "fixed-point golden model in the loop, and write digits_net.json and "
        "digits_test.npz. The defaults reproduce the network shipped with spikeforge.",
    )
    parser.add_argument(
        "-o",
        "--output",
        default=".",
        help="folder to write the two files to (default: the current folder)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=train_digits.DEFAULT_SEED,
        help=f"seed of the initial weights and batch order (default {train_digits.DEFAULT_SEED})",
    )
    parser.add_argument(
        "--epochs",
        type=int,
        default=train_digits.DEFAULT_EPOCHS,
        help=f"passes over the training digits, 1 to 1000 (default {train_digits.DEFAULT_EPOCHS})",
    )
    parser.set_defaults(func=run)


def run(args):
    seed = check_int("--seed", args.seed, 0, (1 << 32) - 1, error=SpikeforgeError)
    epochs = check_int("--epochs", args.epochs, 1, 1000, error=SpikeforgeError)
    check_output_dir("-o", args.output)
    # A new folder is made by the save; only files already there can collide with anything.
    if os.path.isdir(args.output):
        check_outputs([("-o", path, None) for path in train_digits.output_paths(args.output)])
    net, report = train_digits.train(seed=seed, epochs=epochs, log=print)
    # Compared before saving: -o may point at the shipped files themselves.
    same = net == train_digits.shipped_network()
    net_path, test_path = train_digits.save(net, args.output)
    print(
        f"held-out accuracy over {report['test_size']} digits, {report['steps']} steps: "
        f"{100 * report['accuracy_fixed']:.2f}% fixed point (golden model), "
        f"{100 * report['accuracy_float']:.2f}% floating point; "
        f"trained in {report['seconds']:.1f} s on {report['train_size']} digits"
    )
    print(
        f"wrote {net_path} and {test_path}; the network is "
        f"{'identical to' if same else 'different from'} the one shipped with spikeforge"
    )
    return 0
