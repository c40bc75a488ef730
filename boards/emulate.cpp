// The virtual board of `spikeforge emulate`: a board top compiled by Verilator, served on a
// pseudo-terminal. Python (spikeforge/boards/emulate.py) generates the Verilog of the top and
// builds this file with it; the model is the module `board`.
//
// Two wirings, chosen at compile time:
//   bit level (default): the board top itself, the harness drives its UART `rx` pin and reads its
//     `tx` pin, 8N1 at `--divisor` clock cycles per bit, as a USB-serial bridge would;
//   byte level (-DSPIKEFORGE_BYTE_LEVEL): the top's host link with its byte streams, one byte per
//     handshake, no UART in between.
//
// The harness opens the pseudo-terminal itself, prints the name of its slave side on stdout and
// keeps a slave descriptor open (so the master never reads EIO between two clients, and the raw
// mode stays set). Bytes from the host go through the fault injector to the board, bytes from
// the board through the fault injector to the host; nothing is dropped on the way except by an
// injected fault. The simulation runs while the link has work (bytes pending or on a line, a
// step running, or less than `--quiet` cycles since the last of these: the board's byte timeout
// and answer fit in that time), never faster than the board's real clock (`--clock-hz`), and
// sleeps in poll() once the link is idle: then only the LED counters would change.
//
// Arguments: --divisor N --quiet CYCLES --clock-hz HZ [--fault-ppm P --seed S --delay-max CYCLES]
//            [--waves FILE --waves-from STEP --waves-to STEP]
// SIGINT and SIGTERM end it; it then prints one line of figures on stderr and exits 0.

#include <cerrno>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <deque>
#include <random>
#include <string>
#include <vector>

#include <fcntl.h>
#include <poll.h>
#include <sys/prctl.h>
#include <termios.h>
#include <unistd.h>

#include "Vboard.h"
#include "verilated.h"
#if defined(SPIKEFORGE_WAVES_FST)
#include "verilated_fst_c.h"
typedef VerilatedFstC Trace;
#define SPIKEFORGE_WAVE_TRACE 1
#elif defined(SPIKEFORGE_WAVES_VCD)
#include "verilated_vcd_c.h"
typedef VerilatedVcdC Trace;
#define SPIKEFORGE_WAVE_TRACE 1
#endif

namespace {

volatile std::sig_atomic_t stop_requested = 0;

void on_signal(int) { stop_requested = 1; }

struct Options {
    uint64_t divisor = 0;  // 0: byte level
    uint64_t quiet = 1000000;
    double clock_hz = 12e6;
    uint64_t fault_ppm = 0;
    uint64_t seed = 0;
    uint64_t delay_max = 0;
    std::string waves;
    int64_t waves_from = 0;
    int64_t waves_to = -1;  // -1: to the end
};

[[noreturn]] void fail(const std::string& what) {
    std::fprintf(stderr, "emulator: %s\n", what.c_str());
    std::exit(1);
}

Options parse(int argc, char** argv) {
    Options o;
    for (int i = 1; i < argc; i += 2) {
        std::string key = argv[i];
        if (i + 1 >= argc) fail("missing value of " + key);
        const char* value = argv[i + 1];
        if (key == "--divisor") o.divisor = std::strtoull(value, nullptr, 10);
        else if (key == "--quiet") o.quiet = std::strtoull(value, nullptr, 10);
        else if (key == "--clock-hz") o.clock_hz = std::strtod(value, nullptr);
        else if (key == "--fault-ppm") o.fault_ppm = std::strtoull(value, nullptr, 10);
        else if (key == "--seed") o.seed = std::strtoull(value, nullptr, 10);
        else if (key == "--delay-max") o.delay_max = std::strtoull(value, nullptr, 10);
        else if (key == "--waves") o.waves = value;
        else if (key == "--waves-from") o.waves_from = std::strtoll(value, nullptr, 10);
        else if (key == "--waves-to") o.waves_to = std::strtoll(value, nullptr, 10);
        else fail("unknown argument " + key);
    }
    return o;
}

double now_seconds() {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

// A byte on the virtual wire, held back until `due` (a delay fault).
struct WireByte {
    uint8_t value;
    uint64_t due;
};

// Drops, flips and delays bytes at `ppm` per million, each kind a third of the faults. One
// generator per direction, so that the faults of one direction do not depend on the traffic of
// the other (mt19937_64's output is fixed by the C++ standard: the same seed, the same faults).
class FaultInjector {
  public:
    FaultInjector(uint64_t ppm, uint64_t seed, uint64_t delay_max)
        : ppm_(ppm), delay_max_(delay_max), rng_(seed) {}

    // Puts `value`, sent at `cycle`, on `wire` unless it is dropped.
    void send(std::deque<WireByte>& wire, uint8_t value, uint64_t cycle) {
        uint64_t due = cycle;
        if (ppm_ && rng_() % 1000000 < ppm_) {
            switch (rng_() % 3) {
                case 0:
                    dropped++;
                    return;
                case 1:
                    value ^= static_cast<uint8_t>(1u << (rng_() % 8));
                    flipped++;
                    break;
                default:
                    due += 1 + rng_() % (delay_max_ ? delay_max_ : 1);
                    delayed++;
            }
        }
        // A late byte holds back the ones behind it: the wire keeps their order.
        if (!wire.empty() && wire.back().due > due) due = wire.back().due;
        wire.push_back({value, due});
    }

    uint64_t dropped = 0, flipped = 0, delayed = 0;

  private:
    uint64_t ppm_, delay_max_;
    std::mt19937_64 rng_;
};

// The pseudo-terminal: master side for the harness, slave side named for the host.
struct Pty {
    int master = -1;
    int slave = -1;
    std::string name;

    void open_raw() {
        master = posix_openpt(O_RDWR | O_NOCTTY);
        if (master < 0 || grantpt(master) != 0 || unlockpt(master) != 0)
            fail(std::string("cannot open a pseudo-terminal: ") + std::strerror(errno));
        const char* slave_name = ptsname(master);
        if (!slave_name) fail("ptsname failed");
        name = slave_name;
        slave = ::open(slave_name, O_RDWR | O_NOCTTY);
        if (slave < 0) fail("cannot open " + name + ": " + std::strerror(errno));
        termios t;
        if (tcgetattr(slave, &t) != 0) fail("tcgetattr failed");
        cfmakeraw(&t);  // no echo, no line editing, no newline translation: a serial line
        if (tcsetattr(slave, TCSANOW, &t) != 0) fail("tcsetattr failed");
        fcntl(master, F_SETFL, fcntl(master, F_GETFL) | O_NONBLOCK);
    }

    // Appends what the host wrote; false when nothing was there.
    bool read_into(std::vector<uint8_t>& out) {
        uint8_t buffer[4096];
        ssize_t n = ::read(master, buffer, sizeof buffer);
        if (n <= 0) return false;
        out.insert(out.end(), buffer, buffer + n);
        return true;
    }

    // Writes as much of `pending` as the terminal takes; the rest stays for later.
    void write_from(std::vector<uint8_t>& pending) {
        if (pending.empty()) return;
        ssize_t n = ::write(master, pending.data(), pending.size());
        if (n > 0) pending.erase(pending.begin(), pending.begin() + n);
    }

    // Waits up to `ms` milliseconds for host bytes, room for `pending` bytes, or a signal.
    void wait(int ms, bool pending = false) {
        pollfd fd = {master, static_cast<short>(POLLIN | (pending ? POLLOUT : 0)), 0};
        poll(&fd, 1, ms);
    }
};

class Harness {
  public:
    Harness(const Options& o, Vboard* top)
        : o_(o), top_(top), to_board_faults_(o.fault_ppm, o.seed, o.delay_max),
          to_host_faults_(o.fault_ppm, o.seed ^ 0x9E3779B97F4A7C15ull, o.delay_max) {}

    void reset() {
        top_->rst = 1;
        for (int i = 0; i < 4; i++) tick();
        top_->rst = 0;
    }

    void serve(Pty& pty) {
        std::vector<uint8_t> from_host;
        bool idle = false;
        double wall_ref = now_seconds();
        uint64_t cycle_ref = cycle_;
        while (!stop_requested) {
            if (idle) {
                pty.wait(200, !to_pty_.empty());
            } else if ((cycle_ & 1023) == 0) {
                // Not faster than the board's clock: its timeouts are real time to the host.
                double ahead = (cycle_ - cycle_ref) / o_.clock_hz - (now_seconds() - wall_ref);
                if (ahead > 0.001) pty.wait(static_cast<int>(ahead * 1000));
            }
            if ((cycle_ & 255) == 0 || idle) {
                if (pty.read_into(from_host)) {
                    for (uint8_t b : from_host) to_board_faults_.send(to_board_, b, cycle_);
                    bytes_in_ += from_host.size();
                    from_host.clear();
                }
                while (!to_host_.empty() && to_host_.front().due <= cycle_) {
                    to_pty_.push_back(to_host_.front().value);
                    to_host_.pop_front();
                }
                pty.write_from(to_pty_);
                bool was_idle = idle;
                // Bytes the terminal does not take yet (no client reads) wait without the model.
                idle = to_board_.empty() && to_host_.empty() && cycle_ - last_activity_ > o_.quiet;
                if (was_idle && !idle) {
                    wall_ref = now_seconds();
                    cycle_ref = cycle_;
                    last_activity_ = cycle_;
                }
                if (idle) continue;
            }
            cycle();
        }
#ifdef SPIKEFORGE_WAVE_TRACE
        if (trace_) trace_->close();
#endif
        std::fprintf(stderr,
                     "emulator: %llu cycles, %llu steps, %llu bytes to the board, %llu from it; "
                     "faults to the board %llu dropped, %llu flipped, %llu delayed; to the host "
                     "%llu dropped, %llu flipped, %llu delayed\n",
                     (unsigned long long)cycle_, (unsigned long long)steps_,
                     (unsigned long long)bytes_in_, (unsigned long long)bytes_out_,
                     (unsigned long long)to_board_faults_.dropped,
                     (unsigned long long)to_board_faults_.flipped,
                     (unsigned long long)to_board_faults_.delayed,
                     (unsigned long long)to_host_faults_.dropped,
                     (unsigned long long)to_host_faults_.flipped,
                     (unsigned long long)to_host_faults_.delayed);
    }

#ifdef SPIKEFORGE_WAVE_TRACE
    void open_waves() {
        if (o_.waves.empty()) return;
        Verilated::traceEverOn(true);
        trace_ = new Trace;
        top_->trace(trace_, 99);
        trace_->open(o_.waves.c_str());
    }
#endif

  private:
    // One clock cycle: inputs set while the clock is low, handshakes decided before the edge.
    void cycle() {
#ifdef SPIKEFORGE_BYTE_LEVEL
        top_->tx_ready = 1;
        bool have = !to_board_.empty() && to_board_.front().due <= cycle_;
        top_->rx_valid = have;
        if (have) top_->rx_data = to_board_.front().value;
        top_->clk = 0;
        top_->eval();
        bool rx_taken = have && top_->rx_ready;
        bool tx_given = top_->tx_valid;
        uint8_t tx_byte = top_->tx_data;
        if (rx_taken || tx_given) last_activity_ = cycle_;
        edge();
        if (rx_taken) to_board_.pop_front();
        if (tx_given) from_board(tx_byte);
#else
        drive_rx();
        top_->clk = 0;
        top_->eval();
        edge();
        sample_tx();
#endif
        if (top_->busy) last_activity_ = cycle_;
        if (top_->step) step_started();
    }

    void edge() {
#ifdef SPIKEFORGE_WAVE_TRACE
        // Time in picoseconds (the trace's unit) at the board's clock: a rising edge each period.
        uint64_t period = static_cast<uint64_t>(1e12 / o_.clock_hz + 0.5);
        if (trace_ && tracing_) trace_->dump(cycle_ * period + period / 2);
#endif
        top_->clk = 1;
        top_->eval();
#ifdef SPIKEFORGE_WAVE_TRACE
        if (trace_ && tracing_) trace_->dump((cycle_ + 1) * period);
#endif
        cycle_++;
    }

    void tick() {
        top_->clk = 0;
        top_->eval();
        edge();
    }

    void step_started() {
        // Steps count from 0 at the start of the emulator; the window is [from, to), from the
        // start of step `from` to the start of step `to`.
        int64_t step = static_cast<int64_t>(steps_++);
        if (window_) tracing_ = step >= o_.waves_from && (o_.waves_to < 0 || step < o_.waves_to);
    }

    void from_board(uint8_t value) {
        bytes_out_++;
        to_host_faults_.send(to_host_, value, cycle_);
    }

#ifndef SPIKEFORGE_BYTE_LEVEL
    // The host's UART transmitter: start bit, 8 data bits LSB first, stop bit.
    void drive_rx() {
        if (rx_bits_left_ == 0) {
            if (to_board_.empty() || to_board_.front().due > cycle_) {
                top_->uart_rx = 1;
                return;
            }
            rx_frame_ = (1u << 9) | (static_cast<unsigned>(to_board_.front().value) << 1);
            to_board_.pop_front();
            rx_bits_left_ = 10;
            rx_timer_ = 0;
        }
        last_activity_ = cycle_;
        top_->uart_rx = rx_frame_ & 1;
        if (++rx_timer_ == o_.divisor) {
            rx_timer_ = 0;
            rx_frame_ >>= 1;
            rx_bits_left_--;
        }
    }

    // The host's UART receiver: the middle of each bit after a falling edge.
    void sample_tx() {
        bool line = top_->uart_tx;
        if (tx_timer_ == 0) {
            if (line) return;
            tx_timer_ = 1;  // start bit seen in this cycle
            tx_byte_ = 0;
            last_activity_ = cycle_;
            return;
        }
        last_activity_ = cycle_;
        uint64_t t = tx_timer_++;
        uint64_t half = o_.divisor / 2;
        if (t >= half && (t - half) % o_.divisor == 0) {
            uint64_t bit = (t - half) / o_.divisor;  // 0 start, 1..8 data, 9 stop
            if (bit >= 1 && bit <= 8) tx_byte_ |= static_cast<uint8_t>(line << (bit - 1));
            if (bit == 9) {
                if (line) from_board(tx_byte_);
                tx_timer_ = 0;
            }
        }
    }

    unsigned rx_frame_ = 0;
    unsigned rx_bits_left_ = 0;
    uint64_t rx_timer_ = 0;
    uint64_t tx_timer_ = 0;
    uint8_t tx_byte_ = 0;
#endif

    const Options& o_;
    Vboard* top_;
    FaultInjector to_board_faults_, to_host_faults_;
    std::deque<WireByte> to_board_, to_host_;
    std::vector<uint8_t> to_pty_;
    uint64_t cycle_ = 0;
    uint64_t last_activity_ = 0;
    uint64_t steps_ = 0;
    uint64_t bytes_in_ = 0, bytes_out_ = 0;
    bool window_ = o_.waves_from > 0 || o_.waves_to >= 0;
    bool tracing_ = !window_;
#ifdef SPIKEFORGE_WAVE_TRACE
    Trace* trace_ = nullptr;
#endif
};

}  // namespace

int main(int argc, char** argv) {
    Options options = parse(argc, argv);
    struct sigaction action = {};
    action.sa_handler = on_signal;
    sigaction(SIGINT, &action, nullptr);
    sigaction(SIGTERM, &action, nullptr);
    signal(SIGPIPE, SIG_IGN);
    // Stop with the Python process that started this one, however that ended.
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() == 1) return 0;

    VerilatedContext context;
    Vboard top(&context);
    Harness harness(options, &top);
#ifdef SPIKEFORGE_WAVE_TRACE
    harness.open_waves();
#endif
    harness.reset();
    Pty pty;
    pty.open_raw();
    std::printf("%s\n", pty.name.c_str());
    std::fflush(stdout);
    harness.serve(pty);
    top.final();
    return 0;
}
