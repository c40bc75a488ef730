"""The host side of the host link: a driver for a board running a network, and a simulated board.

:class:`HostDriver` talks to a board over anything with pyserial's ``read(n)``/``write(data)``
(``serial.Serial`` from :func:`open_port`, or :class:`SimulatedBoard`, which runs the board's
host-link logic in Amaranth's simulator). Every command is a frame (``docs/host-link.md``)
answered by one frame; an error frame, a corrupted response or silence is retried a bounded
number of times, then :class:`HostLinkError` says what went wrong in one line.

CFG writes and steps are pipelined: the driver sends frames while the board works on earlier
ones, as many as its receive buffer holds, and checks the answers in order. A STEP names the
timestep it runs from, so the board never runs one out of order; one whose response got lost
may still have run, so the driver asks for the status first, and for the last response again
(LAST) instead of running the step a second time.
"""

import collections

import numpy as np
import serial
from amaranth.sim import Simulator

from ..gen.compile import runtime_writes
from ..gen.spike_io import check_input_spikes
from ..hdl.array import CfgMemory
from ..hdl.host_link import HostLink, HostLinkUART
from ..sim.array_amaranth import ArrayRecorder, collect_runs, input_events
from ..spec import protocol as p
from ..spec.errors import SpikeforgeError, ToolError

__all__ = ["HostDriver", "HostLinkError", "SimulatedBoard", "open_port", "DEFAULT_BAUD"]

DEFAULT_BAUD = 115200
# Frames sent in one pipelined batch, at most: a clean batch costs one round trip at its end, a
# damaged one is sent again (CFG writes) or makes the driver find out where the board is (STEPs).
CFG_BATCH = 256
STEP_BATCH = 64


class HostLinkError(ToolError):
    """The board did not answer a command correctly within the retries."""


def open_port(device, baud=DEFAULT_BAUD, timeout=0.5):
    """Open a serial port with pyserial; a missing port is a one-line error."""
    try:
        return serial.Serial(device, baud, timeout=timeout)
    except (serial.SerialException, OSError) as error:
        detail = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise SpikeforgeError(f"cannot open serial port {device!r}: {detail}") from None


class HostDriver:
    """Commands of the host link over a serial port.

    Parameters
    ----------
    port : file-like
        ``read(n)`` returns up to ``n`` bytes, fewer (or none) when its timeout passes;
        ``write(data)``. The port's timeout must be longer than the board's byte timeout (the
        board answers an error only after the line has been quiet that long).
    retries : int
        Attempts after the first for every command.
    """

    def __init__(self, port, *, retries=4):
        self.port = port
        self.retries = retries
        self.attempts = 0  # frames sent, retries included
        self.recovered = 0  # commands that needed a retry
        self._identity = None
        self._timestep = None  # the board's timestep, once known
        self._plan = None  # the plan last checked against the board or loaded

    # --- framing -------------------------------------------------------------------------------
    def _read_frame(self):
        """One response frame, or raises FrameError (bad CRC, silence, garbage)."""
        decoder = p.FrameDecoder()
        while True:
            buffered = decoder.buffer
            if len(buffered) >= 4 and buffered[0] == p.SYNC:
                needed = 6 + (buffered[2] | buffered[3] << 8) - len(buffered)
            else:
                needed = 4 - len(buffered) if buffered[:1] == bytes([p.SYNC]) else 1
            data = self.port.read(max(needed, 1))
            if not data:
                what = "a truncated response" if decoder.pending() else "no response"
                raise p.FrameError(f"{what} (timeout)", p.ERR_TIMEOUT)
            frames = decoder.feed(data)
            if frames:
                return frames[0]

    def _drain(self):
        # Read until the line stays quiet for one port timeout: the rest of a broken frame, and
        # the board's error frame, which follows its own quiet time.
        while self.port.read(256):
            pass

    def _command(self, command, payload=b"", *, expect, before_retry=None):
        last = None
        for attempt in range(self.retries + 1):
            if attempt:
                self.recovered += attempt == 1
                self._drain()
                if before_retry is not None:
                    command, payload = before_retry(command, payload)
            self.attempts += 1
            self.port.write(p.encode_frame(command, payload))
            try:
                code, data = self._read_frame()
            except p.FrameError as error:
                last = str(error)
                continue
            if code == p.RSP_ERROR and len(data) == 2:
                last = f"board answered error {data[0]}: {p.ERRORS.get(data[0], 'unknown')}"
                continue
            if code != expect:
                last = f"unexpected response code 0x{code:02x}"
                continue
            return data
        raise HostLinkError(
            f"host link: command 0x{command:02x} failed after {self.retries + 1} attempts ({last})"
        )

    # --- commands ------------------------------------------------------------------------------
    def identify(self):
        """The design's identity: ``network_hash``, ``lanes``, widths, sizes (``protocol``)."""
        data = self._command(p.CMD_IDENTIFY, expect=p.RESPONSE | p.CMD_IDENTIFY)
        self._identity = p.decode_identity(data)
        return dict(self._identity)

    def status(self):
        """``busy``, ``modified``, ``runtime_weights``, ``weights_unloaded``, ``timestep``,
        ``cycles`` and the link's error counters."""
        return p.decode_status(self._command(p.CMD_STATUS, expect=p.RESPONSE | p.CMD_STATUS))

    def reset(self):
        """Network state back to initial (membranes, refractory counters, timestep)."""
        self._command(p.CMD_RESET, expect=p.RESPONSE | p.CMD_RESET)
        self._timestep = 0

    def step(self, input_indices):
        """Run one timestep with the given input indices spiking.

        Returns
        -------
        spikes : list of (population, index)
            Output spikes in the order the array produced them.
        cycles : int
            Clock cycles of the step.
        """
        return self._steps([sorted(int(i) for i in input_indices)])[0]

    def _steps(self, steps, *, from_reset=False):
        """Run ``steps`` (lists of input indices, ascending) from the board's timestep; a list
        of ``(spikes, cycles)``, one per step.

        The STEP frames are pipelined in batches of up to :data:`STEP_BATCH`, each naming the
        timestep it runs from, so that the board refuses any frame behind one it missed and
        never runs a step out of order. After a batch with anything wrong the driver asks for
        the status: when the board is one step past the last response it got, it asks for that
        response again (LAST); further past (responses lost behind it) it resets the board and
        runs the steps again, ``from_reset`` (the first step at timestep 0); then the next batch
        is half as long. Single frames that fail more than ``retries`` times in a row end in
        :class:`HostLinkError`.
        """
        if self._timestep is None:
            self._timestep = self.status()["timestep"]
        base = 0 if from_reset else self._timestep  # the timestep of steps[0]
        outputs = []
        batch = STEP_BATCH
        failures = 0
        while len(outputs) < len(steps):
            first = self._timestep - base  # the next step the board runs
            n = min(batch, len(steps) - first)
            payloads = [p.encode_step(base + first + i, steps[first + i]) for i in range(n)]
            answers, problem = self._pipeline(p.CMD_STEP, payloads)
            for i, data in enumerate(answers, first):
                try:
                    cycles, done, spikes = p.decode_step(data)
                except p.FrameError as error:
                    problem = str(error)
                    break
                if done != (base + i + 1) & 0xFFFFFFFF:
                    problem = f"step response for timestep {done}, expected {base + i + 1}"
                    break
                self._timestep = base + i + 1
                if i == len(outputs):  # not a step run again after a reset
                    outputs.append((spikes, cycles))
            if problem is None:
                batch = min(2 * n, STEP_BATCH)
                failures = 0
                continue
            failures, batch = self._failed(p.CMD_STEP, problem, failures, n)
            self._recover_steps(base, outputs, from_reset)
        return outputs

    def _failed(self, command, problem, failures, size):
        """After a damaged batch of ``size`` frames of ``command``: count it, end in
        :class:`HostLinkError` when single frames failed more than ``retries`` times in a
        row, drain the line. Returns the failures in a row and the next batch's size (half)."""
        self.recovered += 1
        failures += size == 1
        if failures > self.retries:
            raise HostLinkError(
                f"host link: command 0x{command:02x} failed after {failures} attempts ({problem})"
            )
        self._drain()
        return failures, max(size // 2, 1)

    def _stream(self, steps, report, neurons, *, from_reset):
        """Run ``steps`` (lists of input indices, ascending) from timestep 0 (``from_reset``)
        or the board's, in STEPS frames, reporting the populations ``report`` (numbers); a
        list of ``(spikes, cycles)``, one per step, the spikes as ``(population, index)``
        (``neurons``: that pair for each neuron number).

        Each frame holds as many steps as fit the board's STEPS buffer, 255 and half the
        receive buffer, in the shorter encoding; the next frame goes out once the previous one's first
        response came (its bytes have left the receive buffer). After anything wrong the
        driver drains the line, asks STATUS where the board is and resumes there, or, when
        responses were lost behind which steps ran, resets and runs from the first step
        again (``from_reset``); frames are half as long after each failure, and a frame of
        one step that fails more than ``retries`` times in a row ends in
        :class:`HostLinkError`.
        """
        identity = self._identity or self.identify()
        if self._timestep is None:
            self._timestep = self.status()["timestep"]
        base = 0 if from_reset else self._timestep
        outputs = []
        limit = p.STEPS_MAX
        failures = 0
        while len(outputs) < len(steps):
            problem = self._stream_attempt(steps, report, neurons, identity, base, outputs, limit)
            if problem is None:
                continue
            failures, limit = self._failed(p.CMD_STEPS, problem, failures, limit)
            self._recover_steps(base, outputs, from_reset, last=False)
        return outputs

    def _stream_attempt(self, steps, report, neurons, identity, base, outputs, limit):
        # STEPS frames from the board's timestep on, until every step is answered (None) or
        # something went wrong (what, in a phrase).
        n_in, populations = identity["n_inputs"], identity["populations"]
        first = done = self._timestep - base  # the next step to send, to be answered
        flight = collections.deque()  # per frame sent: [bytes, steps, steps answered]
        while done < len(steps):
            while first < len(steps):
                n, lists = self._pack(steps, first, limit, identity)
                payload = p.encode_steps(
                    base + first, steps[first : first + n], n_in, populations, report, lists
                )
                frame = p.encode_frame(p.CMD_STEPS, payload)
                # The frames not answered at all may still be in the receive buffer.
                waiting = sum(f[0] for f in flight if f[2] == 0)
                if flight and waiting + len(frame) > p.RX_BUFFER:
                    break
                self.port.write(frame)
                self.attempts += 1
                flight.append([len(frame), n, 0])
                first += n
            try:
                code, data = self._read_frame()
                if code == p.RSP_ERROR and len(data) == 2:
                    return f"board answered error {data[0]}: {p.ERRORS.get(data[0], 'unknown')}"
                if code != p.RESPONSE | p.CMD_STEPS:
                    return f"unexpected response code 0x{code:02x}"
                timestep, cycles, spikes = p.decode_steps_response(data)
            except p.FrameError as error:
                return str(error)
            if timestep != (base + done + 1) & 0xFF:
                return (
                    f"step response for timestep {timestep} (low byte), expected {base + done + 1}"
                )
            if any(n >= len(neurons) for n in spikes):
                return "step response with a neuron number out of range"
            self._timestep = base + done + 1
            if done == len(outputs):  # not a step run again after a reset
                outputs.append(([neurons[n] for n in spikes], cycles))
            done += 1
            flight[0][2] += 1
            if flight[0][2] == flight[0][1]:
                flight.popleft()
                limit = min(2 * limit, p.STEPS_MAX)
        return None

    @staticmethod
    def _pack(steps, first, limit, identity):
        """How many steps from ``first`` one STEPS frame takes, and whether as index lists:
        as many as fit the board's buffer, ``limit`` and half the receive buffer (two frames
        wait there while one runs: the host has a frame's time to send the next), in the
        encoding with fewer bytes a step."""
        capacity = identity["steps_buffer"]
        width = (identity["n_inputs"] + 7) // 8
        room = p.RX_BUFFER // 2 - 6 - p.steps_head_length(identity["populations"])
        most = min(limit, len(steps) - first)
        n_map = min(most, capacity // max(width, 1), room // max(width, 1))
        n_list = entries = 0
        while n_list < most:
            more = entries + len(steps[first + n_list]) + 1
            if more > capacity or 2 * more > room:
                break
            entries = more
            n_list += 1
        if n_list and (n_map == 0 or 2 * entries * n_map < width * n_map * n_list):
            return n_list, True
        if n_map:
            return n_map, False
        raise HostLinkError(
            f"host link: step {first} has {len(steps[first])} input spikes, more than a "
            f"STEPS frame holds ({min(capacity, room // 2) - 1})"
        )

    def _recover_steps(self, base, outputs, from_reset, last=True):
        # After a damaged batch: where the board is, and the response of its last step when that
        # one is lost.
        ran = self.status()["timestep"] - base
        self._timestep = base + ran
        if 0 <= ran <= len(outputs):
            return
        if last and ran == len(outputs) + 1:
            data = self._command(p.CMD_LAST, expect=p.RESPONSE | p.CMD_STEP)
            cycles, done, spikes = p.decode_step(data)
            if done == (base + ran) & 0xFFFFFFFF:
                outputs.append((spikes, cycles))
                return
        elif from_reset and ran > 0:
            self.reset()
            return
        self._timestep = None
        raise HostLinkError(
            f"host link: the board is at timestep {base + ran}, expected {base + len(outputs)}"
        )

    def write_cfg(self, mem, lane, addr, data):
        """One runtime write of the array's ``cfg`` port."""
        self._command(
            p.CMD_CFG, self._cfg_payload(mem, lane, addr, data), expect=p.RESPONSE | p.CMD_CFG
        )

    def _cfg_payload(self, mem, lane, addr, data):
        # A CFG payload, checked against the board's identity.
        if self._identity is None:
            self.identify()
        identity = self._identity
        last_mem = max(CfgMemory)
        for name, value, high in [
            ("memory code", mem, last_mem),
            ("lane", lane, identity["lanes"] - 1),
            ("address", addr, (1 << identity["cfg_addr_width"]) - 1),
            ("data", data, (1 << identity["cfg_data_width"]) - 1),
        ]:
            if not isinstance(value, (int, np.integer)) or not 0 <= value <= high:
                raise SpikeforgeError(
                    f"cfg write {name} must be an integer in [0, {high}] "
                    f"for the board's design, not {value!r}"
                )
        data_bytes = (identity["cfg_data_width"] + 7) // 8
        return p.encode_cfg(mem, lane, addr, data, data_bytes)

    def _pipeline(self, command, payloads):
        """Send frames of ``command`` without waiting for each answer, as many as the board's
        receive buffer holds (``protocol.RX_BUFFER`` bytes of frames not answered yet; one
        longer frame alone).

        Returns the payloads of the responses, in order, up to the first error frame, bad
        response or silence, and what that was (None when every frame was answered). The board
        answers each frame at most once, so as many responses as frames means every frame was
        executed: a frame the board never saw (its SYNC lost) leaves one missing.
        """
        expect = p.RESPONSE | command
        frames = [p.encode_frame(command, payload) for payload in payloads]
        unanswered = collections.deque()  # sizes of the frames sent and not answered
        answers = []
        sent = 0
        while len(answers) < len(frames):
            while sent < len(frames) and (
                not unanswered or sum(unanswered) + len(frames[sent]) <= p.RX_BUFFER
            ):
                self.port.write(frames[sent])
                self.attempts += 1
                unanswered.append(len(frames[sent]))
                sent += 1
            try:
                code, data = self._read_frame()
            except p.FrameError as error:
                return answers, str(error)
            if code == p.RSP_ERROR and len(data) == 2:
                return (
                    answers,
                    f"board answered error {data[0]}: {p.ERRORS.get(data[0], 'unknown')}",
                )
            if code != expect:
                return answers, f"unexpected response code 0x{code:02x}"
            answers.append(data)
            unanswered.popleft()
        return answers, None

    def _write_cfgs(self, payloads):
        """CFG frames pipelined in batches of up to :data:`CFG_BATCH`. A write is idempotent, so
        a batch with anything wrong is sent again, in halves, down to single frames with the
        retries of one command; each clean batch doubles the next."""
        batch = CFG_BATCH
        done = 0
        while done < len(payloads):
            n = min(batch, len(payloads) - done)
            if n == 1:
                self._command(p.CMD_CFG, payloads[done], expect=p.RESPONSE | p.CMD_CFG)
            elif self._pipeline(p.CMD_CFG, payloads[done : done + n])[1] is not None:
                self.recovered += 1
                self._drain()
                batch = n // 2
                continue
            done += n
            batch = min(2 * n, CFG_BATCH)

    def check_plan(self, plan):
        """Raise a one-line error unless the board's array has ``plan``'s layout."""
        identity = self.identify()
        expected = {
            "lanes": plan.lanes,
            "v_width": plan.v_width,
            "w_width": plan.w_width,
            "acc_width": plan.acc_width,
            "n_inputs": plan.n_inputs,
            "slots": plan.slots,
            "weight_words": plan.weight_words,
            "populations": len(plan.populations),
            "neurons": sum(q.size for q in plan.lif_populations),
        }
        wrong = [
            f"{name} {identity[name]} (network: {value})"
            for name, value in expected.items()
            if identity[name] != value
        ]
        if not wrong and identity["layout_hash"] != plan.layout_hash():
            # Same sizes, but the cores' decays, the projections, the refractory width or the
            # bias memory (biases that differ within a population) differ.
            wrong = [
                f"layout_hash {identity['layout_hash']} (network: {plan.layout_hash()}: "
                f"other decays, projections, t_ref range or per-neuron biases)"
            ]
        if wrong:
            raise SpikeforgeError(
                f"the board's design has another layout than the network: "
                f"{', '.join(wrong)}; rebuild with spikeforge build"
            )
        self._plan = plan
        return identity

    def load(self, plan, memories=("weights", "bias", "params")):
        """Load ``plan``'s weights, biases and parameters (or only ``memories`` of them) into
        the board (same layout).

        Every weight word of every lane is written, zeros too: a design with runtime weights
        (SPRAM) holds undefined weights until then, and takes them in bursts of as many as
        a CFG frame's data holds. The frames are pipelined (:meth:`_write_cfgs`): the line, not
        the round trips, sets the time. Returns the number of CFG writes.
        """
        identity = self.check_plan(plan)
        burst = 1
        if self.status()["runtime_weights"]:
            burst = identity["cfg_data_width"] // identity["w_width"]
        payloads = [
            self._cfg_payload(*write)
            for write in runtime_writes(plan, memories, weight_burst=burst)
        ]
        self._write_cfgs(payloads)
        return len(payloads)

    def run(self, spikes, plan=None, populations=None):
        """Run input spikes on the board, like ``spikeforge simulate``.

        The network state is reset before the run (and before every batch entry). A design
        with runtime weights that holds none yet (status ``weights_unloaded``: no CFG write
        since configuration) gets ``plan`` loaded first, so that it never steps on undefined
        weights.

        Parameters
        ----------
        spikes : array of 0/1, shape (T, n_in) or (B, T, n_in)
        plan : ArrayPlan, optional
            The network as compiled for the board's lanes (to name and size the outputs);
            default: the plan of the last :meth:`check_plan` or :meth:`load`.
        populations : list of str, optional
            The LIF populations whose spikes the board reports (default all); the others are
            absent from the result. Fewer spikes on the line, faster runs.

        Returns
        -------
        NetworkRun
            Spikes of the LIF populations reported and ``cycles`` per step.
        """
        plan = plan if plan is not None else self._plan
        if plan is None:
            raise HostLinkError(
                "host link: run needs the network: call check_plan(plan) or "
                "load(plan) first, or pass plan"
            )
        inputs = check_input_spikes(spikes, plan.n_inputs)
        names = [q.name for q in plan.lif_populations]
        if populations is None:
            populations = names
        for name in populations:
            if name not in names:
                raise SpikeforgeError(
                    f"populations must name LIF populations of the network "
                    f"({', '.join(names)}), not {name!r}"
                )
        report = [n for n, q in enumerate(plan.populations) if q.name in populations]
        neurons = [
            (n, i) for n, q in enumerate(plan.populations) if not q.is_input for i in range(q.size)
        ]
        if self.status()["weights_unloaded"]:
            # The bitstream holds the biases and parameters of the network it was built from.
            identity = self._identity or self.identify()
            built = identity["network_hash"] == plan.network_hash
            self.load(plan, ("weights",) if built else ("weights", "bias", "params"))
        batched = inputs.ndim == 3
        if not batched:
            inputs = inputs[np.newaxis]
        runs = []
        for entry in inputs:
            self.reset()
            recorder = ArrayRecorder(plan, entry.shape[0])
            steps = [list(input_events(step_spikes)) for step_spikes in entry]
            if (self._identity or self.identify())["steps_buffer"]:
                results = self._stream(steps, report, neurons, from_reset=True)
            else:
                results = self._steps(steps, from_reset=True)
            for t, (out, cycles) in enumerate(results):
                recorder.cycles[t] = cycles
                for population, index in out:
                    recorder.spike(t, population, index)
            if recorder.errors:
                raise HostLinkError(f"host link: {recorder.errors[0]}")
            for name in set(names) - set(populations):
                del recorder.spikes[name], recorder.v[name]
            runs.append(recorder)
        return collect_runs(runs, batched, False)


class SimulatedBoard:
    """A board in Amaranth's simulator behind a serial-port interface.

    Runs :class:`~spikeforge.hdl.host_link.HostLink` directly on byte streams, or, with
    ``divisor``, :class:`~spikeforge.hdl.host_link.HostLinkUART` with bit-level serial lines
    (the host side is a software 8N1 UART at the same divisor).

    Parameters
    ----------
    plan : ArrayPlan
    stages : int
    divisor : int, optional
        Clock cycles per UART bit; None drives the byte streams.
    timeout : int
        The link's byte timeout in cycles.
    read_cycles : int
        What a read's timeout is in simulated cycles: ``read(n)`` returns early with what it has
        after this many cycles without ``n`` bytes.
    runtime_weights : bool
        A board built with ``--weights spram``: the weights start at zero (the simulator's
        model of the store) and STATUS reports them unloaded until the first CFG write.
    steps : bool
        The link takes STEPS frames (``HostLink(steps=...)``); without, the driver runs by
        STEP frames.
    """

    def __init__(
        self,
        plan,
        *,
        stages=4,
        divisor=None,
        timeout=None,
        read_cycles=None,
        runtime_weights=False,
        steps=True,
    ):

        byte_cycles = 1 if divisor is None else 10 * divisor
        if timeout is None:
            timeout = 16 * max(byte_cycles, 4)
        if divisor is None:
            self.dut = HostLink(
                plan, stages=stages, timeout=timeout, runtime_weights=runtime_weights, steps=steps
            )
            self.link = self.dut
        else:
            self.dut = HostLinkUART(
                plan,
                divisor,
                stages=stages,
                timeout=timeout,
                runtime_weights=runtime_weights,
                steps=steps,
            )
            self.link = self.dut.link
        self.divisor = divisor
        # Long enough for the board's error flush, the slowest step and a full-size response.
        self.read_cycles = read_cycles or (
            2 * timeout
            + 2 * plan.max_step_cycles(stages)
            + 2 * byte_cycles * (16 + 3 * self.link.neurons)
        )
        self.cycles = 0
        self._to_board = collections.deque()
        self._from_board = bytearray()
        self._sim = Simulator(self.dut)
        self._period = 1e-6
        self._sim.add_clock(self._period)
        if divisor is None:
            self._sim.add_testbench(self._feed_bytes, background=True)
            self._sim.add_testbench(self._take_bytes, background=True)
        else:
            self._sim.add_testbench(self._feed_line, background=True)
            self._sim.add_testbench(self._take_line, background=True)

    # --- testbenches ---------------------------------------------------------------------------
    async def _feed_bytes(self, ctx):
        rx = self.dut.rx
        while True:
            if not self._to_board:
                ctx.set(rx.valid, 0)
                await ctx.tick()
                continue
            ctx.set(rx.payload, self._to_board.popleft())
            ctx.set(rx.valid, 1)
            # Not `tick().until()`: these testbenches never end, and closing a coroutine that
            # waits inside `until` raises when the simulator is collected.
            while not (await ctx.tick().sample(rx.ready))[2]:
                pass
            ctx.set(rx.valid, 0)

    async def _take_bytes(self, ctx):
        tx = self.dut.tx
        ctx.set(tx.ready, 1)
        while True:
            _, _, valid, payload = await ctx.tick().sample(tx.valid, tx.payload)
            if valid:
                self._from_board.append(payload)

    async def _feed_line(self, ctx):
        while True:
            if not self._to_board:
                await ctx.tick()
                continue
            byte = self._to_board.popleft()
            for level in [0, *((byte >> i) & 1 for i in range(8)), 1]:
                ctx.set(self.dut.rx, level)
                await ctx.tick().repeat(self.divisor)

    async def _take_line(self, ctx):
        divisor = self.divisor
        while True:
            if (await ctx.tick().sample(self.dut.tx))[2]:
                continue
            # Middle of the start bit, then the middle of each data bit.
            await ctx.tick().repeat(divisor // 2)
            byte = 0
            for bit in range(8):
                await ctx.tick().repeat(divisor)
                byte |= ctx.get(self.dut.tx) << bit
            await ctx.tick().repeat(divisor)
            if ctx.get(self.dut.tx):
                self._from_board.append(byte)

    # --- serial-port interface -----------------------------------------------------------------
    def _advance(self, cycles):
        self.cycles += cycles
        self._sim.run_until(self.cycles * self._period)

    def write(self, data):
        """Queue bytes to the board."""
        self._to_board.extend(bytes(data))
        return len(data)

    def read(self, size=1):
        """Up to ``size`` bytes from the board; fewer after ``read_cycles`` simulated cycles."""
        waited = 0
        chunk = 64 if self.divisor is None else 10 * self.divisor
        while len(self._from_board) < size and waited < self.read_cycles:
            self._advance(chunk)
            waited += chunk
        data = bytes(self._from_board[:size])
        del self._from_board[:size]
        return data
