// Icarus testbench of the neuron array (spikeforge.sim.native_icarus): runs a whole batch with
// no Python per cycle, as native_array.cpp does under Verilator.
//
// The input file (plusarg +in=FILE) holds the words of spikeforge.sim.native's input file, one
// hexadecimal word a line, read with $fscanf as the run goes. The output file (+out=FILE) gets
// one line per event: "S run step population index", "T run step population row mask v..."
// (the raw, unsigned fields of v) and "C run step cycles". With +waves=FILE the signals are
// dumped (VCD, or FST under `vvp -fst`) from the start of step waves_from to that of waves_to.
//
// The port widths come as defines: SPIKE_IN_W, SPIKE_OUT_W, CFG_W and, with TRACE, TRACE_W.
// The drive follows the cocotb test spikeforge/sim/cocotb_array.py: inputs change at the
// falling clock edge, handshakes are sampled a nanosecond before the rising one.

`timescale 1ns / 1ps

module spikeforge_native_tb;
  reg clk = 0;
  reg rst = 1;
  reg start = 0;
  reg reset_state = 0;
  reg spike_in__valid = 0;
  reg [`SPIKE_IN_W-1:0] spike_in__payload = 0;
  wire spike_in__ready;
  wire spike_out__valid;
  reg spike_out__ready = 0;
  wire [`SPIKE_OUT_W-1:0] spike_out__payload;
  reg cfg__valid = 0;
  reg [`CFG_W-1:0] cfg__payload = 0;
  wire cfg__ready;
  wire busy, done;
  wire [31:0] cycles, timestep;
`ifdef TRACE
  wire trace_out__valid;
  reg trace_out__ready = 0;
  wire [`TRACE_W-1:0] trace_out__payload;
`endif

  spikeforge_array dut (
    .clk(clk), .rst(rst), .start(start), .reset_state(reset_state),
    .spike_in__valid(spike_in__valid), .spike_in__payload(spike_in__payload),
    .spike_in__ready(spike_in__ready),
    .spike_out__valid(spike_out__valid), .spike_out__ready(spike_out__ready),
    .spike_out__payload(spike_out__payload),
    .cfg__valid(cfg__valid), .cfg__payload(cfg__payload), .cfg__ready(cfg__ready),
`ifdef TRACE
    .trace_out__valid(trace_out__valid), .trace_out__ready(trace_out__ready),
    .trace_out__payload(trace_out__payload),
`endif
    .busy(busy), .done(done), .cycles(cycles), .timestep(timestep)
  );

  always #5 clk = ~clk;

  integer in_fd, out_fd, status, seed;
  reg [63:0] word;
  reg [63:0] h [0:16];  // the header, in the order of spikeforge.sim.native._HEADER
  integer run_, step_, global_step, n, k, lane, waited;
  reg [31:0] stall;
  reg dumping = 0;
  reg [8 * 1024 - 1:0] path;
  reg waves = 0;

  // Wide enough for every payload: trace_out's is at most 3 + 8 + 8 + 8 * 32 bits.
  function [63:0] field(input [1023:0] value, input integer offset, input integer width);
    field = (value >> offset) & ((64'd1 << width) - 1);
  endfunction

  task next_word;
    begin
      status = $fscanf(in_fd, "%h\n", word);
      if (status != 1) begin
        $display("the input file ended early");
        $finish_and_return(2);
      end
    end
  endtask

  // The consumers choose ready at the falling edge and take an item a nanosecond before the
  // rising one, when valid and ready are both high.
  function ready_draw(input dummy);
    ready_draw = stall == 0 || $unsigned($random(seed)) >= stall;
  endfunction

  always @(negedge clk) begin
    spike_out__ready <= ready_draw(0);
`ifdef TRACE
    trace_out__ready <= ready_draw(0);
`endif
  end

  always @(negedge clk) begin
    #4;
    if (spike_out__valid && spike_out__ready)
      $fwrite(out_fd, "S %0d %0d %0d %0d\n", run_, step_, field(spike_out__payload, 0, h[7]),
              field(spike_out__payload, h[7], h[8]));
`ifdef TRACE
    if (trace_out__valid && trace_out__ready) begin
      $fwrite(out_fd, "T %0d %0d %0d %0d %0d", run_, step_, field(trace_out__payload, 0, h[7]),
              field(trace_out__payload, h[7], h[9]),
              field(trace_out__payload, h[7] + h[9], h[10]));
      for (lane = 0; lane < h[10]; lane = lane + 1)
        $fwrite(out_fd, " %0d",
                field(trace_out__payload, h[7] + h[9] + h[10] + lane * h[11], h[11]));
      $fwrite(out_fd, "\n");
    end
`endif
  end

  // Cycles until `what` holds a nanosecond before a rising edge, then that edge; bounded.
  task wait_for(input integer what);
    reg met;
    begin
      waited = 0;
      met = 0;
      while (!met) begin
        #4;
        case (what)
          0: met = !busy;
          1: met = cfg__ready;
          2: met = spike_in__ready;
          default: met = done;
        endcase
        @(negedge clk);
        waited = waited + 1;
        if (!met && waited >= h[6]) begin
          $display("run %0d step %0d: no %s within %0d cycles", run_, step_,
                   what == 0 ? "end of reset_state" : what == 1 ? "cfg ready" :
                   what == 2 ? "spike_in ready" : "done", h[6]);
          $finish_and_return(3);
        end
      end
    end
  endtask

  task waves_at(input integer step);
    begin
      if (waves && !dumping && step >= h[15] && step < h[16]) begin
        $dumpon;
        dumping = 1;
      end else if (dumping && step >= h[16]) begin
        $dumpoff;
        dumping = 0;
      end
    end
  endtask

  integer b, t, w, data_words;
  initial begin
    if (!$value$plusargs("in=%s", path)) $finish_and_return(2);
    in_fd = $fopen(path, "r");
    if (!$value$plusargs("out=%s", path)) $finish_and_return(2);
    out_fd = $fopen(path, "w");
    if (in_fd == 0 || out_fd == 0) begin
      $display("cannot open the input or the output file");
      $finish_and_return(2);
    end
    for (k = 0; k <= 16; k = k + 1) begin
      next_word;
      h[k] = word;
    end
    seed = h[4];
    stall = h[5];
    run_ = 0;
    step_ = 0;
    if ($value$plusargs("waves=%s", path)) begin
      waves = 1;
      $dumpfile(path);
      $dumpvars(0, dut);
      $dumpoff;
      waves_at(0);
    end
    @(negedge clk);
    @(negedge clk);
    rst = 0;
    @(negedge clk);
    data_words = (h[14] + 63) / 64;
    for (n = 0; n < h[3]; n = n + 1) begin
      cfg__payload = 0;
      next_word;
      cfg__payload = cfg__payload | word[1:0];
      next_word;
      // mem (2 bits), lane (LANE_WIDTH = 4 bits, spikeforge.hdl.array_ports), addr, data.
      cfg__payload = cfg__payload | (word[3:0] << 2);
      next_word;
      cfg__payload = cfg__payload | (word << 6);
      for (w = 0; w < data_words; w = w + 1) begin
        next_word;
        cfg__payload = cfg__payload | ({{`CFG_W{1'b0}}, word} << (6 + h[13] + 64 * w));
      end
      cfg__valid = 1;
      wait_for(1);
    end
    cfg__valid = 0;
    for (b = 0; b < h[1]; b = b + 1) begin
      if (b) begin
        reset_state = 1;
        @(negedge clk);
        reset_state = 0;
        wait_for(0);
      end
      run_ = b;
      for (t = 0; t < h[2]; t = t + 1) begin
        step_ = t;
        global_step = b * h[2] + t;
        waves_at(global_step);
        start = 1;
        @(negedge clk);
        start = 0;
        next_word;
        n = word;
        for (k = 0; k <= n; k = k + 1) begin
          if (k < n) begin
            next_word;
            spike_in__payload = word;
          end else begin
            spike_in__payload = 1 << h[12];
          end
          spike_in__valid = 1;
          wait_for(2);
        end
        spike_in__valid = 0;
        wait_for(3);
        $fwrite(out_fd, "C %0d %0d %0d\n", b, t, cycles);
      end
    end
    waves_at(h[1] * h[2]);
    $fclose(out_fd);
    $finish;
  end
endmodule
