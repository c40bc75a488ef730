"""The weight memories of an array kept outside the Amaranth design, for Verilog of big networks.

A ``Memory`` passes its initial contents through Amaranth and Yosys one bit at a time: about 11 s
and 1 GB of Python objects per million 8-bit words, so a network of 16 million weights cannot be
converted. With ``NeuronArray(plan, external_weights=NAME)`` each lane's weights are instead an
instance of the Verilog module ``NAME<lane>``, which ``spikeforge.gen.output`` writes itself
from the plan, its contents inline or in a ``$readmemh`` file.

The module behaves as the array's ``Memory`` of that lane with one synchronous read port and
one write port: the read data is the word at ``rd_addr`` of the previous clock edge, before a
write at that edge (not transparent); a write stores ``wr_data`` at ``wr_addr`` while ``wr_en``
is high.
"""

from types import SimpleNamespace

from amaranth.hdl import ClockSignal, Instance, Signal, signed

from .arith import bits_for

__all__ = ["ExternalWeights"]


class ExternalWeights:
    """The ports of one lane's external weight memory, named like a ``Memory``'s ports.

    Parameters
    ----------
    module : str
        Name of the Verilog module.
    depth, w_width : int
        Words and signed word width.

    Attributes
    ----------
    read : namespace of ``addr``, ``data``
    write : namespace of ``addr``, ``data``, ``en``
    """

    def __init__(self, module, depth, w_width):
        self.module = module
        addr_width = bits_for(depth - 1)
        self.read = SimpleNamespace(
            addr=Signal(addr_width, name=f"{module}_rd_addr"),
            data=Signal(signed(w_width), name=f"{module}_rd_data"),
        )
        self.write = SimpleNamespace(
            addr=Signal(addr_width, name=f"{module}_wr_addr"),
            data=Signal(signed(w_width), name=f"{module}_wr_data"),
            en=Signal(name=f"{module}_wr_en"),
        )

    def instance(self):
        """The ``Instance`` of the module, connected to the ports."""
        return Instance(
            self.module,
            i_clk=ClockSignal(),
            i_rd_addr=self.read.addr,
            o_rd_data=self.read.data,
            i_wr_en=self.write.en,
            i_wr_addr=self.write.addr,
            i_wr_data=self.write.data,
        )
