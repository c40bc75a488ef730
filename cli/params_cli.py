"""Command-line options for one population's neuron parameters (``docs/neuron.md``)."""

from ..spec.errors import SpikeforgeError
from ..spec.params import NeuronParams

__all__ = ["add_neuron_arguments", "neuron_params_from_args", "neuron_options_given", "parse_decay"]


# The fields of NeuronParams that are options of their own.
_FIELDS = (
    "v_width",
    "v_th",
    "v_reset",
    "v_rest",
    "v_peak",
    "t_ref",
    "bias",
    "reset_mode",
    "decay",
    "syn_decay",
)


# The defaults of the options. The parser's own defaults are None, so that an option given is
# told from one left out (a command refuses those that do not apply).
_DEFAULTS = {
    "v_width": 16,
    "v_th": 1024,
    "v_reset": 0,
    "v_rest": 0,
    "v_peak": None,
    "t_ref": 2,
    "bias": 0,
    "reset_mode": "zero",
    "decay": "4",
    "syn_decay": None,
}


def add_neuron_arguments(parser):
    group = parser.add_argument_group("neuron parameters (docs/neuron.md)")
    group.add_argument(
        "--v-width", type=int, default=None, help="membrane width, 2 to 32 (default 16)"
    )
    group.add_argument("--v-th", type=int, default=None, help="threshold (default 1024)")
    group.add_argument("--v-reset", type=int, default=None, help="reset value (default 0)")
    group.add_argument("--v-rest", type=int, default=None, help="resting potential (default 0)")
    group.add_argument(
        "--v-peak",
        type=int,
        default=None,
        help="trace value of a spike (default: the largest membrane value)",
    )
    group.add_argument(
        "--t-ref", type=int, default=None, help="refractory steps, 0 to 65535 (default 2)"
    )
    group.add_argument("--bias", type=int, default=None, help="constant input per step (default 0)")
    group.add_argument("--reset-mode", default=None, help="zero or subtract (default zero)")
    group.add_argument(
        "--decay",
        default=None,
        help="comma-separated signed shift terms, e.g. 4 or 3,-6 (default 4); 'none' for no leak",
    )
    group.add_argument(
        "--syn-decay",
        default=None,
        help="make the neuron current-based: the decay of its synaptic current, "
        "shift terms like --decay ('none': the current never decays); "
        "default: a plain LIF neuron",
    )


def parse_decay(text, option="--decay"):
    """``"3,-6"`` -> ``(3, -6)``; ``"none"`` or ``""`` -> ``()``."""
    if text.strip().lower() in ("", "none"):
        return ()
    try:
        return tuple(int(term) for term in text.split(","))
    except ValueError:
        raise SpikeforgeError(
            f"{option} must be comma-separated integers such as 4 or 3,-6, not {text!r}"
        ) from None


def neuron_options_given(args):
    """The neuron options given on the command line, as ``--v-th`` etc."""
    return ["--" + name.replace("_", "-") for name in _FIELDS if getattr(args, name) is not None]


def neuron_params_from_args(args):
    """The :class:`NeuronParams` of the neuron options; a refused value names its option.

    Raises
    ------
    SpikeforgeError
        A value out of its range, or values inconsistent together.
    """
    values = {
        name: _DEFAULTS[name] if getattr(args, name) is None else getattr(args, name)
        for name in _FIELDS
    }
    values["decay"] = parse_decay(values["decay"])
    if values["syn_decay"] is not None:
        values["syn_decay"] = parse_decay(values["syn_decay"], "--syn-decay")
    try:
        return NeuronParams(**values)
    except (TypeError, ValueError) as error:
        # The parameter checks name the field ("v_th must be ..."); the user typed the option.
        message = str(error)
        field = message.split(" ", 1)[0]
        if field in _FIELDS:
            message = "--" + field.replace("_", "-") + message[len(field) :]
        raise SpikeforgeError(message) from None
