// Native testbench of the neuron array (spikeforge.sim.native): runs a whole batch with no
// Python per cycle.
//
// Usage: native_array IN.bin OUT.bin [WAVES]
//
// IN.bin and OUT.bin are little-endian int64 words, written and read by spikeforge/sim/native.py
// (which documents the layout). The drive follows the cocotb test spikeforge/sim/cocotb_array.py
// cycle for cycle: inputs change after the falling clock edge, handshakes are sampled before the
// rising one, items of spike_in follow each other back to back, and the batch's elements follow
// each other on one array with a reset_state pulse between them.
//
// Verilator escapes the double underscore of Amaranth's port names (spike_in__valid) as ___05F.
//
// Compiled with -DSPIKEFORGE_TRACE when the array has trace_out, and -DSPIKEFORGE_WAVES_FST or
// -DSPIKEFORGE_WAVES_VCD (with Verilator's matching --trace option) to dump waveforms.

#include <cstdint>
#include <cstdio>
#include <algorithm>
#include <cstdlib>
#include <memory>
#include <random>
#include <vector>

#include "Vspikeforge_array.h"
#include "verilated.h"
#if defined(SPIKEFORGE_WAVES_FST)
#include "verilated_fst_c.h"
typedef VerilatedFstC Waves;
#elif defined(SPIKEFORGE_WAVES_VCD)
#include "verilated_vcd_c.h"
typedef VerilatedVcdC Waves;
#endif

namespace {

const int64_t MAGIC = 0x53464e41;  // "SFNA"
const int EXIT_STUCK = 3;

enum Header {
    H_MAGIC, H_BATCH, H_STEPS, H_WRITES, H_SEED, H_STALL, H_MAX_WAIT, H_POP_WIDTH,
    H_INDEX_WIDTH, H_ROW_WIDTH, H_LANES, H_V_WIDTH, H_IN_INDEX_WIDTH, H_CFG_ADDR_WIDTH,
    H_CFG_DATA_WIDTH, H_WAVES_FROM, H_WAVES_TO, H_WORDS
};

uint64_t mask(int width) { return width >= 64 ? ~uint64_t(0) : (uint64_t(1) << width) - 1; }

// Bit fields of a port: Verilator gives a port of up to 64 bits an integer type and a wider one
// a VlWide of 32-bit words.
template <class T>
uint64_t get_bits(const T& word, int offset, int width) {
    if (offset >= 64) return 0;
    return (uint64_t(word) >> offset) & mask(width);
}

template <std::size_t N>
uint64_t get_bits(const VlWide<N>& word, int offset, int width) {
    uint64_t value = 0;
    for (int i = 0; i < width; i++) {
        int bit = offset + i;
        if (word.at(bit / 32) >> (bit % 32) & 1) value |= uint64_t(1) << i;
    }
    return value;
}

template <class T>
void set_bits(T& word, int offset, int width, uint64_t value) {
    if (offset < 64) word |= T((value & mask(width)) << offset);
}

template <std::size_t N>
void set_bits(VlWide<N>& word, int offset, int width, uint64_t value) {
    for (int i = 0; i < width; i++) {
        int bit = offset + i;
        if (value >> i & 1) word.at(bit / 32) |= EData(1) << (bit % 32);
    }
}

template <class T>
void clear(T& word) { word = 0; }

template <std::size_t N>
void clear(VlWide<N>& word) {
    for (std::size_t i = 0; i < N; i++) word.at(i) = 0;
}

int64_t sign_extend(uint64_t value, int width) {
    if (width < 64 && value >> (width - 1) & 1) value |= ~mask(width);
    return int64_t(value);
}

std::vector<int64_t> read_words(const char* path) {
    FILE* file = std::fopen(path, "rb");
    if (!file) {
        std::fprintf(stderr, "cannot open %s\n", path);
        std::exit(2);
    }
    std::vector<int64_t> words;
    int64_t chunk[4096];
    size_t n;
    while ((n = std::fread(chunk, sizeof(int64_t), 4096, file)) > 0)
        words.insert(words.end(), chunk, chunk + n);
    std::fclose(file);
    return words;
}

class Bench {
  public:
    Bench(const std::vector<int64_t>& in, const char* waves_path)
        : in_(in), rng_(uint64_t(in[H_SEED])), top_(new Vspikeforge_array) {
        h_ = in.data();
        stall_ = uint64_t(h_[H_STALL]);
#if defined(SPIKEFORGE_WAVES_FST) || defined(SPIKEFORGE_WAVES_VCD)
        if (waves_path) {
            Verilated::traceEverOn(true);
            waves_.reset(new Waves);
            top_->trace(waves_.get(), 99);
            waves_->open(waves_path);
        }
#else
        (void)waves_path;
#endif
    }

    ~Bench() {
#if defined(SPIKEFORGE_WAVES_FST) || defined(SPIKEFORGE_WAVES_VCD)
        if (waves_) waves_->close();
#endif
        top_->final();
    }

    // Runs the batch; false (with a message on stderr) when a bounded wait runs out.
    bool run() {
        const int64_t batch = h_[H_BATCH], steps = h_[H_STEPS];
        cycles_.assign(size_t(batch * steps), 0);
        top_->clk = 0;
        top_->start = 0;
        top_->spike_in___05Fvalid = 0;
        top_->cfg___05Fvalid = 0;
        top_->reset_state = 0;
        top_->rst = 1;
        choose_ready();
        edge();
        edge();
        top_->rst = 0;
        edge();
        size_t at = H_WORDS;
        if (!write_cfg(at)) return false;
        for (int64_t b = 0; b < batch; b++) {
            if (b) {
                top_->reset_state = 1;
                edge();
                top_->reset_state = 0;
                if (!wait_for([this] { return !top_->busy; }, "end of reset_state")) return false;
            }
            run_ = b;
            for (int64_t t = 0; t < steps; t++) {
                step_ = t;
                global_step_ = b * steps + t;
                if (!run_step(at)) return false;
                cycles_[size_t(b * steps + t)] = int64_t(top_->cycles);
            }
        }
        global_step_ = batch * steps;
        return true;
    }

    void write(const char* path) const {
        const int64_t lanes = h_[H_LANES];
        std::vector<int64_t> out = {int64_t(spikes_.size() / 4), int64_t(traces_.size() / (5 + lanes)),
                                    lanes};
        out.insert(out.end(), spikes_.begin(), spikes_.end());
        out.insert(out.end(), traces_.begin(), traces_.end());
        out.insert(out.end(), cycles_.begin(), cycles_.end());
        FILE* file = std::fopen(path, "wb");
        if (!file || std::fwrite(out.data(), sizeof(int64_t), out.size(), file) != out.size()) {
            std::fprintf(stderr, "cannot write %s\n", path);
            std::exit(2);
        }
        std::fclose(file);
    }

  private:
    // The rest of the current cycle: the rising edge takes the items whose valid and ready are
    // both high, then the falling edge, after which the consumers choose their next ready.
    // `settled`: the inputs have not changed since the last eval (wait_for has just sampled).
    void edge(bool settled = false) {
        if (!settled) top_->eval();
        if (top_->spike_out___05Fvalid && top_->spike_out___05Fready) record_spike();
#ifdef SPIKEFORGE_TRACE
        if (top_->trace_out___05Fvalid && top_->trace_out___05Fready) record_trace();
#endif
        top_->clk = 1;
        top_->eval();
        dump();
        top_->clk = 0;
#if defined(SPIKEFORGE_WAVES_FST) || defined(SPIKEFORGE_WAVES_VCD)
        // Only a waveform shows the falling edge on its own; otherwise the next cycle's first
        // eval takes it together with the new inputs (every register is on the rising edge),
        // which halves the evals per cycle.
        top_->eval();
#endif
        dump();
        choose_ready();
    }

    void choose_ready() {
        top_->spike_out___05Fready = ready();
#ifdef SPIKEFORGE_TRACE
        top_->trace_out___05Fready = ready();
#endif
    }

    // Ready with probability 1 - stall; stall is a fraction of 2**32.
    uint8_t ready() { return stall_ == 0 || (rng_() & 0xffffffffu) >= stall_; }

    void dump() {
        time_ += 5;
#if defined(SPIKEFORGE_WAVES_FST) || defined(SPIKEFORGE_WAVES_VCD)
        if (waves_ && global_step_ >= h_[H_WAVES_FROM] && global_step_ < h_[H_WAVES_TO])
            waves_->dump(time_);
#endif
    }

    // Cycles until `condition` holds in a cycle (sampled before its rising edge), bounded.
    template <class Condition>
    bool wait_for(Condition condition, const char* what) {
        for (int64_t n = 0; n < h_[H_MAX_WAIT]; n++) {
            top_->eval();
            bool met = condition();
            edge(true);
            if (met) return true;
        }
        std::fprintf(stderr, "run %lld step %lld: no %s within %lld cycles\n", (long long)run_,
                     (long long)step_, what, (long long)h_[H_MAX_WAIT]);
        return false;
    }

    bool write_cfg(size_t& at) {
        const int addr_width = int(h_[H_CFG_ADDR_WIDTH]), data_width = int(h_[H_CFG_DATA_WIDTH]);
        const int64_t data_words = (data_width + 63) / 64;
        for (int64_t n = 0; n < h_[H_WRITES]; n++) {
            clear(top_->cfg___05Fpayload);
            set_bits(top_->cfg___05Fpayload, 0, 2, uint64_t(in_[at]));
            // mem (2 bits), lane (LANE_WIDTH = 4 bits, spikeforge.hdl.array_ports), addr, data.
            set_bits(top_->cfg___05Fpayload, 2, 4, uint64_t(in_[at + 1]));
            set_bits(top_->cfg___05Fpayload, 6, addr_width, uint64_t(in_[at + 2]));
            for (int64_t w = 0; w < data_words; w++) {
                int width = int(std::min<int64_t>(64, data_width - 64 * w));
                set_bits(top_->cfg___05Fpayload, 6 + addr_width + int(64 * w), width,
                         uint64_t(in_[at + 3 + w]));
            }
            at += 3 + data_words;
            top_->cfg___05Fvalid = 1;
            if (!wait_for([this] { return top_->cfg___05Fready; }, "cfg ready")) return false;
        }
        top_->cfg___05Fvalid = 0;
        return true;
    }

    bool put(uint64_t payload) {
        top_->spike_in___05Fpayload = payload;
        top_->spike_in___05Fvalid = 1;
        return wait_for([this] { return top_->spike_in___05Fready; }, "spike_in ready");
    }

    bool run_step(size_t& at) {
        top_->start = 1;
        edge();
        top_->start = 0;
        const int64_t events = in_[at++];
        for (int64_t n = 0; n < events; n++)
            if (!put(uint64_t(in_[at++]))) return false;
        if (!put(uint64_t(1) << h_[H_IN_INDEX_WIDTH])) return false;
        top_->spike_in___05Fvalid = 0;
        // `cycles` is registered at the clock edge that ends the `done` cycle, which
        // wait_for has run.
        return wait_for([this] { return top_->done; }, "done");
    }

    void record_spike() {
        const int pw = int(h_[H_POP_WIDTH]);
        uint64_t word = top_->spike_out___05Fpayload;
        spikes_.insert(spikes_.end(), {run_, step_, int64_t(get_bits(word, 0, pw)),
                                       int64_t(get_bits(word, pw, int(h_[H_INDEX_WIDTH])))});
    }

#ifdef SPIKEFORGE_TRACE
    void record_trace() {
        const int pw = int(h_[H_POP_WIDTH]), rw = int(h_[H_ROW_WIDTH]);
        const int lanes = int(h_[H_LANES]), vw = int(h_[H_V_WIDTH]);
        const auto& word = top_->trace_out___05Fpayload;
        traces_.insert(traces_.end(), {run_, step_, int64_t(get_bits(word, 0, pw)),
                                       int64_t(get_bits(word, pw, rw)),
                                       int64_t(get_bits(word, pw + rw, lanes))});
        for (int l = 0; l < lanes; l++)
            traces_.push_back(sign_extend(get_bits(word, pw + rw + lanes + l * vw, vw), vw));
    }
#endif

    const std::vector<int64_t>& in_;
    const int64_t* h_;
    std::mt19937_64 rng_;
    uint64_t stall_;
    std::unique_ptr<Vspikeforge_array> top_;
#if defined(SPIKEFORGE_WAVES_FST) || defined(SPIKEFORGE_WAVES_VCD)
    std::unique_ptr<Waves> waves_;
#endif
    uint64_t time_ = 0;
    int64_t run_ = 0, step_ = 0, global_step_ = 0;
    std::vector<int64_t> spikes_, traces_, cycles_;
};

}  // namespace

int main(int argc, char** argv) {
    if (argc < 3) {
        std::fprintf(stderr, "usage: %s IN.bin OUT.bin [WAVES]\n", argv[0]);
        return 2;
    }
    std::vector<int64_t> in = read_words(argv[1]);
    if (in.size() < H_WORDS || in[H_MAGIC] != MAGIC) {
        std::fprintf(stderr, "%s is not an input file of this harness\n", argv[1]);
        return 2;
    }
    int status;
    {
        Bench bench(in, argc > 3 ? argv[3] : nullptr);
        status = bench.run() ? 0 : EXIT_STUCK;
        if (!status) bench.write(argv[2]);
    }
    return status;
}
