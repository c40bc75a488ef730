// Event-driven convolution sums of the golden model: the compiled form of
// ConvDelivery.add in golden_conv.py (docs/network.md, "Convolutions").
//
// Built by golden_conv_native.py with the system C++ compiler and called through
// ctypes on NumPy arrays. Every addition is done in an unsigned type: into the
// accumulators in that of their width, so that it wraps modulo 2**bits exactly as
// NumPy's integer additions do (signed overflow would be undefined behaviour in C++);
// a row's sums in that type too, or in 16 bits where none can leave int16's range.

#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

namespace {

// Geometry, in the order golden_conv_native.py packs it.
struct Geometry {
    int64_t n_in, n_out;      // source neurons, target neurons
    int64_t hp, wp;           // pooled input rows and columns
    int64_t out_c, ho, wo;    // output channels, rows and columns
    int64_t kh, kw;           // kernel rows and columns
    int64_t cg, og;           // input and output channels per group
    int64_t runs;             // 1: stride and dilation 1 along x and one group
};

// dst[j] += src[j] for j < n. Blocks of a fixed 8 additions, which the compiler vectorises
// at -O2 (its cheap cost model leaves loops of unknown length scalar).
template <typename U>
inline void add_block(U* __restrict dst, const U* __restrict src, int64_t n) {
    int64_t j = 0;
    for (; j + 8 <= n; j += 8)
        for (int k = 0; k < 8; ++k) dst[j + k] += src[j + k];
    for (; j < n; ++j) dst[j] += src[j];
}

// The sums of one spike: its weights added at every output position that one of its taps
// reaches (see add_rows for the arrays). Sums are kept output-channel last, so that a tap
// adds og contiguous weights to og contiguous sums. Reached positions are marked (a store,
// not a branch).
template <typename U>
inline void add_spike(U* sums, const Geometry& g, const int32_t* at, const U* w,
                      const int32_t* tap_y, const int32_t* tap_x, uint8_t* reached) {
    const int64_t c = at[0], y = at[1], x = at[2], first = at[3];
    if (c < 0) return;
    for (int64_t ky = 0; ky < g.kh; ++ky) {
        const int32_t oy = tap_y[ky * g.hp + y];
        if (oy < 0) continue;
        // The weights of kernel row ky, columns in reverse order.
        const U* row = w + (c * g.kh + ky) * g.kw * g.og;
        if (g.runs) {
            // Output column x + p - kx of tap kx: the row's taps that reach an output reach
            // consecutive ones, whose sums (all channels) are one block, as are the weights.
            int64_t lo = 0, hi = g.kw - 1;
            while (lo <= hi && tap_x[lo * g.wp + x] < 0) ++lo;
            while (hi >= lo && tap_x[hi * g.wp + x] < 0) --hi;
            if (lo > hi) continue;
            const int64_t p = oy * g.wo + tap_x[hi * g.wp + x];
            std::memset(reached + p, 1, hi - lo + 1);
            add_block(sums + p * g.out_c, row + (g.kw - 1 - hi) * g.og, (hi - lo + 1) * g.og);
            continue;
        }
        for (int64_t kx = 0; kx < g.kw; ++kx) {
            const int32_t ox = tap_x[kx * g.wp + x];
            if (ox < 0) continue;
            const int64_t p = oy * g.wo + ox;
            reached[p] = 1;
            add_block(sums + p * g.out_c + first, row + (g.kw - 1 - kx) * g.og, g.og);
        }
    }
}

// A sum of the narrower sum type, sign-extended to the accumulator's (unsigned) type.
template <typename U, typename V>
inline U widen(V v) {
    using S = typename std::make_signed<V>::type;
    using T = typename std::make_signed<U>::type;
    return static_cast<U>(static_cast<T>(static_cast<S>(v)));
}

// out (channel first) += sums (channel last) at every position: the positions four at a
// time, whose sums stay in cache while each channel's four outputs are written.
template <typename U, typename V>
void move_all(U* out, const V* sums, const Geometry& g) {
    const int64_t positions = g.ho * g.wo;
    int64_t p = 0;
    for (; p + 4 <= positions; p += 4)
        for (int64_t o = 0; o < g.out_c; ++o)
            for (int k = 0; k < 4; ++k)
                out[o * positions + p + k] += widen<U>(sums[(p + k) * g.out_c + o]);
    for (; p < positions; ++p)
        for (int64_t o = 0; o < g.out_c; ++o)
            out[o * positions + p] += widen<U>(sums[p * g.out_c + o]);
}

// out (channel first) += sums (channel last), clearing the sums and marks for the next row;
// taps: how many taps the row's spikes have (an upper bound of the positions reached).
template <typename U, typename V>
void move_sums(U* out, V* sums, const Geometry& g, uint8_t* reached, int64_t taps) {
    const int64_t positions = g.ho * g.wo;
    if (taps > positions) {
        move_all(out, sums, g);
        std::memset(sums, 0, sizeof(V) * g.n_out);
        std::memset(reached, 0, positions);
    } else {
        for (int64_t p = 0; p < positions; ++p) {
            if (!reached[p]) continue;
            for (int64_t o = 0; o < g.out_c; ++o) {
                out[o * positions + p] += widen<U>(sums[p * g.out_c + o]);
                sums[p * g.out_c + o] = 0;
            }
            reached[p] = 0;
        }
    }
}

// acc[r] += the sums of spikes[r], for every row r.
//
// where[4 n .. 4 n + 3]: the input channel, pooled row and pooled column of source n,
// and the first output channel of its group (channel -1 where its spike falls beyond
// the last whole pool window: a sum pool is linear, a spike acts at its window's
// position). weights[((c * kh + ky) * kw + kw - 1 - kx) * og + j]: the weight from input
// channel c to output channel (c / cg) * og + j at tap (ky, kx). tap_y[ky * hp + y]: the
// output row that tap ky of pooled row y reaches, or -1; tap_x likewise for columns.
// scratch: n_out sums, zero on entry and on return. Sums and weights are of type S: that
// of the accumulators, or int16 where every partial sum of a target fits it (the caller
// checks), which halves the work of the additions.
template <typename T, typename S>
void add_rows(T* acc, const uint8_t* spikes, int64_t rows, const Geometry& g,
              const int32_t* where, const S* weights, const int32_t* tap_y,
              const int32_t* tap_x, S* scratch) {
    using U = typename std::make_unsigned<T>::type;
    using V = typename std::make_unsigned<S>::type;
    V* sums = reinterpret_cast<V*>(scratch);
    const V* w = reinterpret_cast<const V*>(weights);
    std::vector<uint8_t> reached(g.ho * g.wo, 0);
    for (int64_t r = 0; r < rows; ++r) {
        const uint8_t* row = spikes + r * g.n_in;
        int64_t n = 0, count = 0;
        // Eight neurons at a time (a bool is one byte, 0 or 1): the lowest set bit of the
        // word gives the next spike, without a branch per silent neuron.
        for (; n + 8 <= g.n_in; n += 8) {
            uint64_t word;
            std::memcpy(&word, row + n, 8);
            while (word) {
                const int bit = __builtin_ctzll(word);
                word &= word - 1;
                const int64_t m = n + bit / 8;
                add_spike(sums, g, where + 4 * m, w, tap_y, tap_x, reached.data());
                ++count;
            }
        }
        for (; n < g.n_in; ++n) {
            if (!row[n]) continue;
            add_spike(sums, g, where + 4 * n, w, tap_y, tap_x, reached.data());
            ++count;
        }
        if (count)
            move_sums(reinterpret_cast<U*>(acc + r * g.n_out), sums, g, reached.data(),
                      count * g.kh * g.kw);
    }
}

}  // namespace

// One entry point per accumulator type and sum type; geometry holds the 12 fields of
// Geometry.
#define SPIKEFORGE_CONV_ADD(NAME, T, S)                                                \
    extern "C" void NAME(T* acc, const uint8_t* spikes, int64_t rows,                  \
                         const int64_t* geometry, const int32_t* where,               \
                         const S* weights, const int32_t* tap_y, const int32_t* tap_x, \
                         S* scratch) {                                                 \
        Geometry g;                                                                    \
        std::memcpy(&g, geometry, sizeof g);                                           \
        add_rows<T, S>(acc, spikes, rows, g, where, weights, tap_y, tap_x, scratch);   \
    }

SPIKEFORGE_CONV_ADD(conv_add_int16_int16, int16_t, int16_t)
SPIKEFORGE_CONV_ADD(conv_add_int32_int16, int32_t, int16_t)
SPIKEFORGE_CONV_ADD(conv_add_int32_int32, int32_t, int32_t)
SPIKEFORGE_CONV_ADD(conv_add_int64_int16, int64_t, int16_t)
SPIKEFORGE_CONV_ADD(conv_add_int64_int64, int64_t, int64_t)
