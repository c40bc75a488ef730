"""How each framework's NIR graphs are meant (``docs/nir.md``, "Framework conventions").

A NIR graph carries the parameters of the continuous equations, not the discrete step its framework
runs. :class:`Preset` holds what ``spikeforge import --from FRAMEWORK`` needs to run a graph as its
framework runs it: the step ``dt`` the export assumed, how a time constant becomes the decay per
step, the gain from an input to the membrane (or synaptic current), the reset and its timing, the
threshold comparison and whether a neuron may emit several spikes per step. :data:`PRESETS` has
one per framework; ``nir`` is the NIR specification's forward-Euler reading.
"""

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["Preset", "PRESETS", "PRESET_NAMES"]


@dataclass(frozen=True)
class Preset:
    """The discrete-time convention of one framework.

    Attributes
    ----------
    name : str
    dt : float or None
        The step the framework's export assumes, used when the graph has no ``dt`` metadata and
        no ``--dt`` is given; None: the step must be given.
    decay : {"euler", "exp"}
        ``dt/tau`` (forward Euler) or ``1 - exp(-dt/tau)`` (exact exponential decay per step).
    tau_times_dt : bool
        The export wrote ``tau = dt / tau_inv``, i.e. ``dt * tau`` (Norse 1.1.0): a ``tau``
        below ``dt`` is read as ``tau / dt``.
    if_gain : {"dt", "jump"}
        IF input: NIR's ``dt r``, or ``r`` (added to the membrane as is).
    lif_gain : {"ratio", "jump", "one"}
        LIF and LI input: NIR's ``(dt/tau) r``, ``r``, or 1 (Rockpool ignores its exported
        ``r``).
    syn_gain : {"nir", "membrane", "jump", "decayed"}
        CubaLIF and CubaLI input: NIR's ``(dt r / tau_mem) (dt w_in / tau_syn)``;
        ``membrane``: ``(dt r / tau_mem) w_in``, the input jumps into the current (Norse);
        ``jump``: ``r w_in`` (Lava); ``decayed``: ``w_in exp(-dt/tau_syn)``, the input decays
        with the current in its own step (Rockpool).
    reset_mode : str
        ``zero`` or ``subtract``, unless ``--reset-mode`` or node metadata says otherwise.
    reset_timing : str
        ``"same"``: the reset acts in the step that fires (NIR); ``"next"``: in the next step,
        after the decay of the unreset membrane (snnTorch's ``reset_delay=True``).
    threshold : {">", ">="}
    multi_spike : bool
        A neuron may emit ``floor(v / v_th)`` spikes in one step.
    """

    name: str
    dt: float | None = None
    decay: str = "euler"
    tau_times_dt: bool = False
    if_gain: str = "dt"
    lif_gain: str = "ratio"
    syn_gain: str = "nir"
    reset_mode: str = "zero"
    reset_timing: str = "same"
    threshold: str = ">"
    multi_spike: bool = False

    def ratio(self, dt, tau):
        """The decay per step of time constant ``tau`` (seconds) at step ``dt``."""
        if self.tau_times_dt and dt > tau:
            tau = tau / dt
        if self.decay == "exp":
            return -math.expm1(-dt / tau)
        return dt / tau

    def gain(self, kind, dt, p, ratio, syn_ratio):
        """Per-neuron factor from a node's summed input to what it adds per step.

        Parameters
        ----------
        kind : str
            ``LIF``, ``IF``, ``LI``, ``CubaLIF`` or ``CubaLI``.
        dt : float
        p : dict of str to ndarray
            The node's parameters, one value per neuron.
        ratio, syn_ratio : float
            :meth:`ratio` of ``tau`` (``tau_mem``) and of ``tau_syn`` (CubaLIF and CubaLI).
        """
        if kind == "IF":
            return p["r"] if self.if_gain == "jump" else dt * p["r"]
        if kind in ("LIF", "LI"):
            return {"ratio": ratio * p["r"], "jump": p["r"], "one": np.ones_like(p["r"])}[
                self.lif_gain
            ]
        return {
            "nir": ratio * p["r"] * syn_ratio * p["w_in"],
            "membrane": ratio * p["r"] * p["w_in"],
            "jump": p["r"] * p["w_in"],
            "decayed": (1 - syn_ratio) * p["w_in"],
        }[self.syn_gain]


PRESETS = {
    p.name: p
    for p in (
        Preset("nir"),
        # snntorch/export_nir.py: tau = dt/(1-beta), r = tau/dt, w_in = tau_syn/dt with
        # dt = 1e-4, so NIR's gains are 1; Leaky subtracts the threshold one step late.
        Preset("snntorch", dt=1e-4, reset_mode="subtract", reset_timing="next"),
        # norse/torch/utils/export_nir.py (dt = 0.001) writes tau = dt / tau_inv; LIFCell adds
        # its input to the current as a jump, IAFCell to the membrane.
        Preset("norse", dt=1e-3, tau_times_dt=True, if_gain="jump", syn_gain="membrane"),
        # sinabs/layers/iaf.py: v += x, spikes = floor(v / v_th) for v > 0, v -= spikes v_th.
        Preset(
            "sinabs",
            dt=1.0,
            decay="exp",
            if_gain="jump",
            lif_gain="jump",
            reset_mode="subtract",
            threshold=">=",
            multi_spike=True,
        ),
        # rockpool/nn/modules/torch/lif_torch.py (dt = 1e-3): isyn = beta (isyn + x),
        # v = alpha v + isyn, alpha = exp(-dt/tau_mem), multi-spike on v >= v_th.
        Preset(
            "rockpool",
            dt=1e-3,
            decay="exp",
            lif_gain="one",
            syn_gain="decayed",
            reset_mode="subtract",
            threshold=">=",
            multi_spike=True,
        ),
        # Lava's CUBA LIF: u = u (1 - du) + a_in, v = v (1 - dv) + u + bias, s = v > vth, v <- 0.
        Preset("lava", if_gain="jump", lif_gain="jump", syn_gain="jump"),
    )
}
PRESET_NAMES = tuple(PRESETS)
