"""``spikeforge train-digits``: train the spiking digit classifier of ``docs/digits.md``."""

import os

from ..spec.errors import SpikeforgeError
from ..spec.files import check_output_dir, check_outputs
from ..spec.limits import check_int
from . import train_digits, train_digits_conv

__all__ = ["add_parser"]


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "train-digits",
        help="train the spiking 8x8 digit classifier (needs scikit-learn)",
        description="Train the spiking classifier of the scikit-learn 8x8 digits with the "
        "fixed-point golden model in the loop, and write digits_net.json and "
        "digits_test.npz (with --conv: the convolutional classifier, digits_conv_net.json). "
        "The defaults reproduce the networks shipped with spikeforge.",
    )
    parser.add_argument(
        "-o",
        "--output",
        default=".",
        help="folder to write the files to (default: the current folder)",
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
        default=None,
        help=f"passes over the training digits, 1 to 1000 (default {train_digits.DEFAULT_EPOCHS}, "
        f"{train_digits_conv.DEFAULT_EPOCHS} with --conv)",
    )
    parser.add_argument(
        "--conv",
        action="store_true",
        help="train the convolutional classifier: 1x8x8 pixels -> 3x3 conv2d, padding 1 -> "
        "C x 8 x 8 LIF -> 2x2 sum pool -> 10 LIF (docs/digits.md)",
    )
    parser.add_argument(
        "--channels",
        type=int,
        default=None,
        help=f"with --conv: feature maps of the conv layer, 1 to 16 "
        f"(default {train_digits_conv.DEFAULT_CHANNELS})",
    )
    parser.set_defaults(func=run)


def run(args):
    seed = check_int("--seed", args.seed, 0, (1 << 32) - 1, error=SpikeforgeError)
    trainer = train_digits_conv if args.conv else train_digits
    epochs = trainer.DEFAULT_EPOCHS if args.epochs is None else args.epochs
    epochs = check_int("--epochs", epochs, 1, 1000, error=SpikeforgeError)
    options = {}
    if args.channels is not None:
        if not args.conv:
            raise SpikeforgeError("--channels needs --conv: the dense classifier has no channels")
        options["channels"] = check_int("--channels", args.channels, 1, 16, error=SpikeforgeError)
    check_output_dir("-o", args.output)
    paths = (
        [train_digits_conv.output_path(args.output)]
        if args.conv
        else train_digits.output_paths(args.output)
    )
    # A new folder is made by the save; only files already there can collide with anything.
    if os.path.isdir(args.output):
        check_outputs([("-o", path, None) for path in paths])
    net, report = trainer.train(seed=seed, epochs=epochs, log=print, **options)
    # Compared before saving: -o may point at the shipped files themselves.
    same = net == trainer.shipped_network()
    if args.conv:
        paths = [train_digits_conv.save(net, args.output)]
    else:
        paths = train_digits.save(net, args.output)
    print(
        f"held-out accuracy over {report['test_size']} digits, {report['steps']} steps: "
        f"{100 * report['accuracy_fixed']:.2f}% fixed point (golden model), "
        f"{100 * report['accuracy_float']:.2f}% floating point; "
        f"trained in {report['seconds']:.1f} s on {report['train_size']} digits"
    )
    print(
        f"wrote {' and '.join(paths)}; the network is "
        f"{'identical to' if same else 'different from'} the one shipped with spikeforge"
    )
    return 0
