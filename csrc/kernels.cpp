// colja CPU kernels (see colja_kernels.h and colja/kernels/__init__.py for
// the array contracts; the *_ref functions there are the specification).
//
// Only light headers are included here (ATen/Parallel.h, c10/util/Half.h) so
// that this translation unit compiles in a few seconds; all tensor handling
// lives in bindings.cpp.
//
// SIMD: one small vector abstraction (VF, W lanes) with three backends:
//   AVX-512F (W=16), AVX2+FMA (W=8), portable scalar (W=8, plain loops).
// The backend is picked by the compiler flags (-march=native on the build
// machine); define COLJA_DISABLE_AVX512 to force the AVX2 path.

#include "colja_kernels.h"

#include <ATen/Parallel.h>
#include <c10/util/Half.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <vector>

#if defined(__AVX2__) || defined(__AVX512F__) || defined(__SSE__)
#include <immintrin.h>
#endif

namespace colja {

std::string Status::message() const {
  switch (code) {
    case StatusCode::kOk:
      return "ok";
    case StatusCode::kCodeOutOfRange:
      return "codes[" + std::to_string(where) + "] = " + std::to_string(value) +
             " is out of range for the number of centroids";
    case StatusCode::kPidOutOfRange:
      return "pids[" + std::to_string(where) + "] = " + std::to_string(value) +
             " is out of range [0, n_docs) with n_docs = len(doc_offsets) - 1";
    case StatusCode::kBadOffsets:
      return "doc_offsets is not a non-decreasing prefix sum within [0, N] at passage " +
             std::to_string(where) + " (offset value " + std::to_string(value) + ")";
  }
  return "unknown error";
}

namespace {

// ---------------------------------------------------------------------------
// Vector abstraction
// ---------------------------------------------------------------------------
#if defined(__AVX512F__) && !defined(COLJA_DISABLE_AVX512)
#define COLJA_SIMD_NAME "avx512"
constexpr int W = 16;
using VF = __m512;
inline VF vzero() { return _mm512_setzero_ps(); }
inline VF vset1(float x) { return _mm512_set1_ps(x); }
inline VF vload(const float* p) { return _mm512_loadu_ps(p); }
// first n lanes from p (n in [0, W]), the others 0; masked lanes are not read
inline VF vload_n(const float* p, int n) {
  return _mm512_maskz_loadu_ps(static_cast<__mmask16>((1u << n) - 1u), p);
}
inline void vstore(float* p, VF v) { _mm512_storeu_ps(p, v); }
inline VF vadd(VF a, VF b) { return _mm512_add_ps(a, b); }
inline VF vmax(VF a, VF b) { return _mm512_max_ps(a, b); }
inline VF vmul(VF a, VF b) { return _mm512_mul_ps(a, b); }
inline VF vfma(VF a, VF b, VF c) { return _mm512_fmadd_ps(a, b, c); }
inline VF vload_half(const uint16_t* p) {
  return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
}
inline void prefetch(const void* p) { _mm_prefetch(static_cast<const char*>(p), _MM_HINT_T0); }

#elif defined(__AVX2__) && defined(__FMA__)
#define COLJA_SIMD_NAME "avx2"
constexpr int W = 8;
using VF = __m256;
alignas(64) const int32_t kMaskTable[16] = {-1, -1, -1, -1, -1, -1, -1, -1,
                                            0,  0,  0,  0,  0,  0,  0,  0};
inline VF vzero() { return _mm256_setzero_ps(); }
inline VF vset1(float x) { return _mm256_set1_ps(x); }
inline VF vload(const float* p) { return _mm256_loadu_ps(p); }
inline VF vload_n(const float* p, int n) {
  const __m256i m = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(kMaskTable + 8 - n));
  return _mm256_maskload_ps(p, m);
}
inline void vstore(float* p, VF v) { _mm256_storeu_ps(p, v); }
inline VF vadd(VF a, VF b) { return _mm256_add_ps(a, b); }
inline VF vmax(VF a, VF b) { return _mm256_max_ps(a, b); }
inline VF vmul(VF a, VF b) { return _mm256_mul_ps(a, b); }
inline VF vfma(VF a, VF b, VF c) { return _mm256_fmadd_ps(a, b, c); }
#if defined(__F16C__)
inline VF vload_half(const uint16_t* p) {
  return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}
#else
inline VF vload_half(const uint16_t* p) {
  alignas(32) float t[8];
  for (int i = 0; i < 8; ++i) t[i] = c10::detail::fp16_ieee_to_fp32_value(p[i]);
  return _mm256_load_ps(t);
}
#endif
inline void prefetch(const void* p) { _mm_prefetch(static_cast<const char*>(p), _MM_HINT_T0); }

#else
#define COLJA_SIMD_NAME "scalar"
constexpr int W = 8;
struct VF {
  float v[8];
};
inline VF vzero() {
  VF r;
  for (int i = 0; i < W; ++i) r.v[i] = 0.f;
  return r;
}
inline VF vset1(float x) {
  VF r;
  for (int i = 0; i < W; ++i) r.v[i] = x;
  return r;
}
inline VF vload(const float* p) {
  VF r;
  for (int i = 0; i < W; ++i) r.v[i] = p[i];
  return r;
}
inline VF vload_n(const float* p, int n) {
  VF r;
  for (int i = 0; i < W; ++i) r.v[i] = i < n ? p[i] : 0.f;
  return r;
}
inline void vstore(float* p, VF a) {
  for (int i = 0; i < W; ++i) p[i] = a.v[i];
}
inline VF vadd(VF a, VF b) {
  for (int i = 0; i < W; ++i) a.v[i] += b.v[i];
  return a;
}
inline VF vmax(VF a, VF b) {
  for (int i = 0; i < W; ++i) a.v[i] = a.v[i] > b.v[i] ? a.v[i] : b.v[i];
  return a;
}
inline VF vmul(VF a, VF b) {
  for (int i = 0; i < W; ++i) a.v[i] *= b.v[i];
  return a;
}
inline VF vfma(VF a, VF b, VF c) {
  for (int i = 0; i < W; ++i) c.v[i] = std::fma(a.v[i], b.v[i], c.v[i]);
  return c;
}
inline VF vload_half(const uint16_t* p) {
  VF r;
  for (int i = 0; i < W; ++i) r.v[i] = c10::detail::fp16_ieee_to_fp32_value(p[i]);
  return r;
}
inline void prefetch(const void*) {}
#endif

inline float half_to_float(uint16_t h) { return c10::detail::fp16_ieee_to_fp32_value(h); }

// Sum of the first n lanes of v, in lane order.
inline float hsum_n(VF v, int n) {
  alignas(64) float t[W];
  vstore(t, v);
  float s = 0.f;
  for (int i = 0; i < n; ++i) s += t[i];
  return s;
}

inline int64_t round_up(int64_t x, int64_t a) { return (x + a - 1) / a * a; }

constexpr float kNormEps = 1e-12f;  // torch.nn.functional.normalize's eps
constexpr float kMissing = -9999.0f;  // PLAID's "no kept centroid" score

// ---------------------------------------------------------------------------
// Errors found inside parallel loops: the first one wins.
// ---------------------------------------------------------------------------
struct ErrorSlot {
  std::atomic<int> set{0};
  Status status;
  void record(StatusCode c, int64_t where, int64_t value) {
    int expected = 0;
    if (set.compare_exchange_strong(expected, 1)) {
      status.code = c;
      status.where = where;
      status.value = value;
    }
  }
  Status get() const { return set.load() ? status : Status{}; }
};

// Token range of passage pid (validated). Returns false (and records the
// error) when pid or its offsets are invalid.
inline bool passage_range(const Passages& ps, int64_t i, int64_t N, int64_t* b, int64_t* e,
                          int64_t* pid_out, ErrorSlot& err) {
  const int64_t pid = ps.pids ? ps.pids[i] : i;
  *pid_out = pid;
  if (pid < 0 || pid >= ps.n_docs) {
    err.record(StatusCode::kPidOutOfRange, i, pid);
    return false;
  }
  const int64_t lo = ps.offsets[pid], hi = ps.offsets[pid + 1];
  if (lo < 0 || hi < lo || hi > N) {
    err.record(StatusCode::kBadOffsets, pid, hi < lo ? hi : lo);
    return false;
  }
  *b = lo;
  *e = hi;
  return true;
}

// ---------------------------------------------------------------------------
// Residual bit layout (ColBERTv2): bucket bits LSB first, dims in order,
// packed MSB first. Byte p holds dims p*G .. p*G+G-1 with G = 8/nbits.
// ---------------------------------------------------------------------------
inline int bucket_of(int byte, int d, int nbits) {
  int b = 0;
  for (int i = 0; i < nbits; ++i) b |= ((byte >> (7 - d * nbits - i)) & 1) << i;
  return b;
}

// wt[v*G + d] = bucket_weights[bucket of dim d in byte value v]
std::vector<float> weight_table(const float* bw, int nbits) {
  const int G = 8 / nbits;
  std::vector<float> wt(256 * G);
  for (int v = 0; v < 256; ++v)
    for (int d = 0; d < G; ++d) wt[v * G + d] = bw[bucket_of(v, d, nbits)];
  return wt;
}

template <int G>
inline void expand_row(const uint8_t* bytes, int64_t P, const float* wt, float* out) {
  for (int64_t p = 0; p < P; ++p) std::memcpy(out + p * G, wt + bytes[p] * G, G * sizeof(float));
}

inline void expand_row_dispatch(int nbits, const uint8_t* bytes, int64_t P, const float* wt,
                                float* out) {
  switch (nbits) {
    case 1: expand_row<8>(bytes, P, wt, out); break;
    case 2: expand_row<4>(bytes, P, wt, out); break;
    default: expand_row<2>(bytes, P, wt, out); break;
  }
}

// x[j] += centroid[j] for j < dim; returns sum of squares of the result.
template <bool HALF>
inline float add_centroid_sumsq(const void* crow, int64_t dim, float* x) {
  VF ss = vzero();
  int64_t j = 0;
  for (; j + W <= dim; j += W) {
    VF c = HALF ? vload_half(static_cast<const uint16_t*>(crow) + j)
                : vload(static_cast<const float*>(crow) + j);
    VF v = vadd(vload(x + j), c);
    vstore(x + j, v);
    ss = vfma(v, v, ss);
  }
  float tail = 0.f;
  for (; j < dim; ++j) {
    const float c = HALF ? half_to_float(static_cast<const uint16_t*>(crow)[j])
                         : static_cast<const float*>(crow)[j];
    x[j] += c;
    tail += x[j] * x[j];
  }
  return hsum_n(ss, W) + tail;
}

inline void scale_row(const float* x, int64_t dim, float s, float* out) {
  const VF vs = vset1(s);
  int64_t j = 0;
  for (; j + W <= dim; j += W) vstore(out + j, vmul(vload(x + j), vs));
  for (; j < dim; ++j) out[j] = x[j] * s;
}

// Decompress one vector into x (dim floats, normalised). Returns its norm.
inline float decompress_one(int32_t code, const uint8_t* bytes, int64_t P,
                            const Centroids& cent, int64_t dim, const float* wt, int nbits,
                            float* x) {
  expand_row_dispatch(nbits, bytes, P, wt, x);
  const float ss =
      cent.half
          ? add_centroid_sumsq<true>(static_cast<const uint16_t*>(cent.data) + code * dim, dim, x)
          : add_centroid_sumsq<false>(static_cast<const float*>(cent.data) + code * dim, dim, x);
  return std::sqrt(ss);
}

// ---------------------------------------------------------------------------
// Dense micro-kernel: MR token rows x (NR*W) query lanes, K = dim.
// Qt is the query matrix transposed and zero padded: Qt[j*ldq + k].
// EPI: score = (q.r + cst[code][k]) * inv_norm (the packed decompress path).
// ---------------------------------------------------------------------------
constexpr int NR = 2;
#if defined(COLJA_SIMD_AVX512_MR)
constexpr int MR = COLJA_SIMD_AVX512_MR;
#else
constexpr int MR = (W == 16) ? 12 : 6;
#endif
constexpr int QB = NR * W;           // query lanes per block
constexpr int64_t kTokBlock = 192;   // token rows staged per block (multiple of MR)

template <bool EPI>
inline void dense_tile(const float* Qt, int64_t ldq, int64_t dim, const float* const* rows,
                       const float* const* crow, const float* inv, int n0, int n1, VF* mx) {
  VF acc[MR][NR];
  for (int r = 0; r < MR; ++r)
    for (int v = 0; v < NR; ++v) acc[r][v] = vzero();
  const float* rr[MR];
  for (int r = 0; r < MR; ++r) rr[r] = rows[r];
  for (int64_t j = 0; j < dim; ++j) {
    const float* q = Qt + j * ldq;
    const VF q0 = vload(q);
    const VF q1 = vload(q + W);
    for (int r = 0; r < MR; ++r) {
      const VF d = vset1(rr[r][j]);
      acc[r][0] = vfma(d, q0, acc[r][0]);
      acc[r][1] = vfma(d, q1, acc[r][1]);
    }
  }
  for (int r = 0; r < MR; ++r) {
    VF a0 = acc[r][0], a1 = acc[r][1];
    if (EPI) {
      const VF s = vset1(inv[r]);
      a0 = vmul(vadd(a0, vload_n(crow[r], n0)), s);
      a1 = vmul(vadd(a1, vload_n(crow[r] + W, n1)), s);
    }
    mx[0] = vmax(mx[0], a0);
    mx[1] = vmax(mx[1], a1);
  }
}

struct DenseCtx {
  const float* Qt;  // [dim][ldq]
  int64_t ldq;      // Lq rounded up to QB
  int64_t dim;
  int64_t Lq;
};

// Transposed, zero-padded copy of Q [Lq, dim] -> [dim, ldq].
std::vector<float> transpose_queries(const float* Q, int64_t Lq, int64_t dim, int64_t ldq) {
  std::vector<float> Qt(static_cast<size_t>(dim * ldq), 0.f);
  for (int64_t k = 0; k < Lq; ++k)
    for (int64_t j = 0; j < dim; ++j) Qt[j * ldq + k] = Q[k * dim + j];
  return Qt;
}

// Update running maxima mxbuf[0..ldq) with nt token rows.
// EPI: crow[i] points at cst row of token i (length Lq), inv[i] its 1/norm.
template <bool EPI>
void dense_block(const DenseCtx& ctx, int64_t nt, const float* const* rows,
                 const float* const* crow, const float* inv, float* mxbuf) {
  if (nt <= 0) return;
  for (int64_t kb = 0; kb < ctx.ldq; kb += QB) {
    VF mx[NR] = {vload(mxbuf + kb), vload(mxbuf + kb + W)};
    const int n0 = static_cast<int>(std::max<int64_t>(0, std::min<int64_t>(W, ctx.Lq - kb)));
    const int n1 = static_cast<int>(std::max<int64_t>(0, std::min<int64_t>(W, ctx.Lq - kb - W)));
    for (int64_t t0 = 0; t0 < nt; t0 += MR) {
      const float* rr[MR];
      const float* cr[MR];
      float iv[MR];
      for (int r = 0; r < MR; ++r) {
        // rows past the end repeat the last row: max() is unaffected
        const int64_t idx = std::min<int64_t>(t0 + r, nt - 1);
        rr[r] = rows[idx];
        if (EPI) {
          cr[r] = n0 > 0 ? crow[idx] + kb : crow[idx];
          iv[r] = inv[idx];
        } else {
          cr[r] = nullptr;
          iv[r] = 1.f;
        }
      }
      dense_tile<EPI>(ctx.Qt + kb, ctx.ldq, ctx.dim, rr, cr, iv, n0, n1, mx);
    }
    vstore(mxbuf + kb, mx[0]);
    vstore(mxbuf + kb + W, mx[1]);
  }
}

inline void fill_neg_inf(float* p, int64_t n) {
  std::fill(p, p + n, -std::numeric_limits<float>::infinity());
}

inline float sum_first(const float* p, int64_t n) {
  float s = 0.f;
  for (int64_t k = 0; k < n; ++k) s += p[k];
  return s;
}

// ---------------------------------------------------------------------------
// centroid_interaction: running max of cst rows over a passage's codes.
// ---------------------------------------------------------------------------
constexpr int kCiChunk = 64;  // query lanes per pass over the tokens
constexpr int kCiMaxNV = kCiChunk / W;
constexpr int kPrefetch = 8;  // tokens ahead

template <int NV, bool KEEP>
float ci_chunk(const float* base, int64_t C, int64_t Lq, int nlast, const int32_t* codes,
               int64_t b, int64_t e, const uint8_t* keep, ErrorSlot& err) {
  alignas(64) float missing[NV * W];
  if (KEEP) std::fill(missing, missing + NV * W, kMissing);
  VF mx[NV];
  for (int v = 0; v < NV; ++v) mx[v] = vset1(kMissing);
  for (int64_t t = b; t < e; ++t) {
#if !defined(COLJA_NO_PREFETCH)
    if (t + kPrefetch < e) {
      const int32_t c2 = codes[t + kPrefetch];
      if (c2 >= 0 && c2 < C) {
        const float* r2 = base + static_cast<int64_t>(c2) * Lq;
        prefetch(r2);
        if (NV * W > 16) prefetch(r2 + 16);
        if (NV * W > 32) prefetch(r2 + 32);
        if (NV * W > 48) prefetch(r2 + 48);
      }
    }
#endif
    const int32_t c = codes[t];
    if (c < 0 || c >= C) {
      err.record(StatusCode::kCodeOutOfRange, t, c);
      continue;
    }
    const float* row = base + static_cast<int64_t>(c) * Lq;
    if (KEEP) {  // branchless select: pruned codes read a row of -9999 (mispredicts cost more)
      const uintptr_t sel = uintptr_t{0} - static_cast<uintptr_t>(keep[c] != 0);
      row = reinterpret_cast<const float*>((reinterpret_cast<uintptr_t>(row) & sel) |
                                           (reinterpret_cast<uintptr_t>(missing) & ~sel));
    }
    for (int v = 0; v < NV - 1; ++v) mx[v] = vmax(mx[v], vload(row + v * W));
    mx[NV - 1] = vmax(mx[NV - 1], vload_n(row + (NV - 1) * W, nlast));
  }
  alignas(64) float buf[NV * W];
  for (int v = 0; v < NV; ++v) vstore(buf + v * W, mx[v]);
  return sum_first(buf, (NV - 1) * W + nlast);
}

using CiFn = float (*)(const float*, int64_t, int64_t, int, const int32_t*, int64_t, int64_t,
                       const uint8_t*, ErrorSlot&);

template <bool KEEP>
CiFn ci_fn(int nv) {
  switch (nv) {
    case 1: return ci_chunk<1, KEEP>;
    case 2: return ci_chunk<2, KEEP>;
    case 3: return ci_chunk<(3 <= kCiMaxNV ? 3 : 1), KEEP>;
    case 4: return ci_chunk<(4 <= kCiMaxNV ? 4 : 1), KEEP>;
    case 5: return ci_chunk<(5 <= kCiMaxNV ? 5 : 1), KEEP>;
    case 6: return ci_chunk<(6 <= kCiMaxNV ? 6 : 1), KEEP>;
    case 7: return ci_chunk<(7 <= kCiMaxNV ? 7 : 1), KEEP>;
    default: return ci_chunk<(8 <= kCiMaxNV ? 8 : 1), KEEP>;
  }
}

inline float ci_score(const float* cst, int64_t C, int64_t Lq, const int32_t* codes, int64_t b,
                      int64_t e, const uint8_t* keep, ErrorSlot& err) {
  float total = 0.f;
  for (int64_t kb = 0; kb < Lq; kb += kCiChunk) {
    const int64_t len = std::min<int64_t>(kCiChunk, Lq - kb);
    const int nv = static_cast<int>((len + W - 1) / W);
    const int nlast = static_cast<int>(len - (nv - 1) * W);
    CiFn fn = keep ? ci_fn<true>(nv) : ci_fn<false>(nv);
    total += fn(cst + kb, C, Lq, nlast, codes, b, e, keep, err);
  }
  return total;
}

void ci_many(const float* cst, int64_t C, int64_t Lq, const int32_t* codes, int64_t N,
             const Passages& ps, const uint8_t* keep, float* out, ErrorSlot& err) {
  at::parallel_for(0, ps.m, 16, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) {
      int64_t b = 0, e = 0, pid = 0;
      if (!passage_range(ps, i, N, &b, &e, &pid, err)) {
        out[i] = 0.f;
        continue;
      }
      out[i] = ci_score(cst, C, Lq, codes, b, e, keep, err);
    }
  });
}

// ---------------------------------------------------------------------------
// maxsim_packed, LUT path.
// lut[(p*256 + v)*Lqp + k] = sum over dims d of byte p of Q[k, p*G+d] * bw[bucket(v, d)]
// ---------------------------------------------------------------------------
// Query lanes per pass over a passage's tokens (32 measured better than 16).
constexpr int kLutChunk = 32;
// LUT scratch kept per calling thread between calls (larger tables are freed).
constexpr size_t kKeepScratchFloats = (size_t{2} << 20) / sizeof(float);
constexpr int kLutMaxNV = kLutChunk / W;

// Qt: queries transposed and zero padded, Qt[j*Lqp + k].
void build_lut(const float* Qt, int64_t dim, const float* bw, int nbits, int64_t P, int64_t Lqp,
               float* lut) {
  (void)dim;
  const int G = 8 / nbits;
  const int Gh = G / 2;  // dims in the high nibble (bits 7..4)
  // nibble weight tables: wh[u*G + d] for d < Gh, wl[u*G + d] for d >= Gh
  float wh[16 * 8], wl[16 * 8];
  for (int u = 0; u < 16; ++u)
    for (int d = 0; d < G; ++d) {
      wh[u * G + d] = d < Gh ? bw[bucket_of(u << 4, d, nbits)] : 0.f;
      wl[u * G + d] = d >= Gh ? bw[bucket_of(u, d, nbits)] : 0.f;
    }
  at::parallel_for(0, P, 4, [&](int64_t lo, int64_t hi) {
    std::vector<float> H(16 * Lqp), L(16 * Lqp);
    for (int64_t p = lo; p < hi; ++p) {
      const float* q = Qt + p * G * Lqp;  // rows of the G dims of byte p
      for (int u = 0; u < 16; ++u) {
        float* h = H.data() + u * Lqp;
        float* l = L.data() + u * Lqp;
        for (int64_t k = 0; k < Lqp; k += W) {
          VF sh = vzero(), sl = vzero();
          for (int d = 0; d < Gh; ++d) sh = vfma(vset1(wh[u * G + d]), vload(q + d * Lqp + k), sh);
          for (int d = Gh; d < G; ++d) sl = vfma(vset1(wl[u * G + d]), vload(q + d * Lqp + k), sl);
          vstore(h + k, sh);
          vstore(l + k, sl);
        }
      }
      float* lp = lut + p * 256 * Lqp;
      for (int v = 0; v < 256; ++v) {
        const float* h = H.data() + (v >> 4) * Lqp;
        const float* l = L.data() + (v & 15) * Lqp;
        float* row = lp + v * Lqp;
        for (int64_t k = 0; k < Lqp; k += W) vstore(row + k, vadd(vload(h + k), vload(l + k)));
      }
    }
  });
}

// A 64-byte aligned scratch buffer kept per calling thread (the LUT is rebuilt
// for every query; reusing the pages avoids page faults on each call).
struct AlignedScratch {
  float* ptr = nullptr;
  size_t cap = 0;
  ~AlignedScratch() { std::free(ptr); }
  float* get(size_t n) {
    if (n > cap) {
      std::free(ptr);
      const size_t bytes = (n * sizeof(float) + 63) / 64 * 64;
      ptr = static_cast<float*>(std::aligned_alloc(64, bytes));
      cap = ptr ? n : 0;
    }
    return ptr;
  }
  void release_if_larger(size_t n) {
    if (cap > n) {
      std::free(ptr);
      ptr = nullptr;
      cap = 0;
    }
  }
};

template <int NV>
float lut_chunk(const float* lut, int64_t Lqp, int64_t P, const float* cst_kb, int64_t C,
                int64_t Lq, int nlast, const int32_t* codes, const uint8_t* residuals,
                const float* norms, int64_t b, int64_t e, ErrorSlot& err) {
  constexpr int S = NV <= 2 ? 4 : 2;  // independent accumulator sets (hide add latency)
  VF mx[NV];
  for (int v = 0; v < NV; ++v) mx[v] = vset1(-std::numeric_limits<float>::infinity());
  const int64_t stride = 256 * Lqp;
  for (int64_t t = b; t < e; ++t) {
    const int32_t c = codes[t];
    if (c < 0 || c >= C) {
      err.record(StatusCode::kCodeOutOfRange, t, c);
      continue;
    }
    const uint8_t* r = residuals + t * P;
    const float* crow = cst_kb + static_cast<int64_t>(c) * Lq;
    VF a[S][NV];
    for (int v = 0; v < NV - 1; ++v) a[0][v] = vload(crow + v * W);
    a[0][NV - 1] = vload_n(crow + (NV - 1) * W, nlast);
    for (int s = 1; s < S; ++s)
      for (int v = 0; v < NV; ++v) a[s][v] = vzero();
    int64_t p = 0;
    const float* lp = lut;
    for (; p + S <= P; p += S, lp += S * stride) {
      for (int s = 0; s < S; ++s) {
        const float* row = lp + s * stride + static_cast<int64_t>(r[p + s]) * Lqp;
        for (int v = 0; v < NV; ++v) a[s][v] = vadd(a[s][v], vload(row + v * W));
      }
    }
    for (; p < P; ++p, lp += stride) {
      const float* row = lp + static_cast<int64_t>(r[p]) * Lqp;
      for (int v = 0; v < NV; ++v) a[0][v] = vadd(a[0][v], vload(row + v * W));
    }
    for (int s = 1; s < S; ++s)
      for (int v = 0; v < NV; ++v) a[0][v] = vadd(a[0][v], a[s][v]);
    const VF inv = vset1(1.f / std::max(norms[t], kNormEps));
    for (int v = 0; v < NV; ++v) mx[v] = vmax(mx[v], vmul(a[0][v], inv));
  }
  alignas(64) float buf[NV * W];
  for (int v = 0; v < NV; ++v) vstore(buf + v * W, mx[v]);
  return sum_first(buf, (NV - 1) * W + nlast);
}

using LutFn = float (*)(const float*, int64_t, int64_t, const float*, int64_t, int64_t, int,
                        const int32_t*, const uint8_t*, const float*, int64_t, int64_t,
                        ErrorSlot&);

LutFn lut_fn(int nv) {
  switch (nv) {
    case 1: return lut_chunk<1>;
    case 2: return lut_chunk<2>;
    case 3: return lut_chunk<(3 <= kLutMaxNV ? 3 : 1)>;
    default: return lut_chunk<(4 <= kLutMaxNV ? 4 : 1)>;
  }
}

}  // namespace

const char* simd_name() { return COLJA_SIMD_NAME; }

// ---------------------------------------------------------------------------
// Public kernels
// ---------------------------------------------------------------------------
Status decompress(const int32_t* codes, const uint8_t* residuals, int64_t n,
                  const Centroids& cent, int64_t dim, const float* bucket_weights, int nbits,
                  float* out, float* norms) {
  ErrorSlot err;
  if (n == 0) return Status{};
  const int64_t P = dim * nbits / 8;
  const std::vector<float> wt = weight_table(bucket_weights, nbits);
  at::parallel_for(0, n, 64, [&](int64_t lo, int64_t hi) {
    std::vector<float> x(static_cast<size_t>(dim));
    for (int64_t i = lo; i < hi; ++i) {
      const int32_t c = codes[i];
      if (c < 0 || c >= cent.C) {
        err.record(StatusCode::kCodeOutOfRange, i, c);
        if (norms) norms[i] = 0.f;
        if (out) std::fill(out + i * dim, out + (i + 1) * dim, 0.f);
        continue;
      }
      const float nrm = decompress_one(c, residuals + i * P, P, cent, dim, wt.data(), nbits, x.data());
      if (norms) norms[i] = nrm;
      if (out) scale_row(x.data(), dim, 1.f / std::max(nrm, kNormEps), out + i * dim);
    }
  });
  return err.get();
}

Status candidate_pids(const float* cst, int64_t C, int64_t Lq, int64_t n, const int32_t* ivf,
                      const int64_t* ivf_offsets, int64_t n_docs, int64_t* out, int64_t* out_count) {
  *out_count = 0;
  n = std::min(n, C);
  if (n <= 0 || Lq == 0) return Status{};
  // Top n rows per column in one pass over the rows: best[j * Lq + k] is column k's j-th best.
  // A strictly greater score displaces, so among equal scores the smaller row index stays first.
  std::vector<float> best(static_cast<size_t>(n * Lq), -std::numeric_limits<float>::infinity());
  std::vector<int64_t> rows(static_cast<size_t>(n * Lq), -1);
  float* last = best.data() + (n - 1) * Lq;
  for (int64_t c = 0; c < C; ++c) {
    const float* row = cst + c * Lq;
    for (int64_t k = 0; k < Lq; ++k) {
      const float v = row[k];
      if (!(v > last[k])) continue;  // the common case (NaN included: never selected)
      int64_t j = n - 1;
      while (j > 0 && v > best[(j - 1) * Lq + k]) {
        best[j * Lq + k] = best[(j - 1) * Lq + k];
        rows[j * Lq + k] = rows[(j - 1) * Lq + k];
        --j;
      }
      best[j * Lq + k] = v;
      rows[j * Lq + k] = c;
    }
  }
  // The selected cells, each once; then their passages, sorted and unique.
  std::vector<int64_t> cells;
  cells.reserve(static_cast<size_t>(n * Lq));
  for (int64_t r : rows)
    if (r >= 0) cells.push_back(r);
  std::sort(cells.begin(), cells.end());
  cells.erase(std::unique(cells.begin(), cells.end()), cells.end());
  int64_t total = 0;
  for (int64_t c : cells) {
    const int64_t b = ivf_offsets[c], e = ivf_offsets[c + 1];
    if (b < 0 || e < b || e > ivf_offsets[C]) return Status{StatusCode::kBadOffsets, c, b};
    total += e - b;
  }
  if (total == 0) return Status{};
  std::vector<int64_t> pids;
  pids.reserve(static_cast<size_t>(total));
  for (int64_t c : cells)
    for (int64_t i = ivf_offsets[c]; i < ivf_offsets[c + 1]; ++i) {
      const int64_t pid = ivf[i];
      if (pid < 0 || pid >= n_docs) return Status{StatusCode::kPidOutOfRange, i, pid};
      pids.push_back(pid);
    }
  if (total * 16 < n_docs) {  // few: sort them
    std::sort(pids.begin(), pids.end());
    const auto end = std::unique(pids.begin(), pids.end());
    std::copy(pids.begin(), end, out);
    *out_count = end - pids.begin();
  } else {  // many: mark them
    std::vector<uint8_t> seen(static_cast<size_t>(n_docs), 0);
    for (int64_t pid : pids) seen[pid] = 1;
    int64_t m = 0;
    for (int64_t pid = 0; pid < n_docs; ++pid)
      if (seen[pid]) out[m++] = pid;
    *out_count = m;
  }
  return Status{};
}

Status centroid_interaction(const float* cst, int64_t C, int64_t Lq, const int32_t* codes,
                            int64_t N, const Passages& ps, const uint8_t* keep, float* out) {
  ErrorSlot err;
  ci_many(cst, C, Lq, codes, N, ps, keep, out, err);
  return err.get();
}

Status filter_candidates(const float* cst, int64_t C, int64_t Lq, const int32_t* codes,
                         int64_t N, const Passages& ps, const uint8_t* keep, int64_t ndocs,
                         int64_t nfinal, int64_t* out_pids, float* out_scores,
                         int64_t* out_count) {
  ErrorSlot err;
  *out_count = 0;
  const int64_t m = ps.m;
  if (m == 0 || ndocs <= 0 || nfinal <= 0) return Status{};
  // Stage 2: approximate scores with pruned centroids.
  std::vector<float> s2(static_cast<size_t>(m));
  ci_many(cst, C, Lq, codes, N, ps, keep, s2.data(), err);
  if (err.set.load()) return err.get();

  auto key = [](float s) { return std::isnan(s) ? -std::numeric_limits<float>::infinity() : s; };
  // Stage 2 selection: top ndocs by (score desc, pid asc).
  std::vector<int64_t> idx(static_cast<size_t>(m));
  for (int64_t i = 0; i < m; ++i) idx[i] = i;
  const int64_t n2 = std::min(ndocs, m);
  if (n2 < m) {
    std::nth_element(idx.begin(), idx.begin() + n2, idx.end(), [&](int64_t a, int64_t b) {
      const float sa = key(s2[a]), sb = key(s2[b]);
      if (sa != sb) return sa > sb;
      return ps.pids[a] < ps.pids[b];
    });
  }
  std::vector<int64_t> pids3(static_cast<size_t>(n2));
  for (int64_t i = 0; i < n2; ++i) pids3[i] = ps.pids[idx[i]];
  std::sort(pids3.begin(), pids3.end());  // better locality for stage 3
  // Stage 3: exact centroid scores (no pruning).
  Passages ps3{ps.offsets, ps.n_docs, pids3.data(), n2};
  std::vector<float> s3(static_cast<size_t>(n2));
  ci_many(cst, C, Lq, codes, N, ps3, nullptr, s3.data(), err);
  if (err.set.load()) return err.get();
  std::vector<int64_t> ord(static_cast<size_t>(n2));
  for (int64_t i = 0; i < n2; ++i) ord[i] = i;
  const int64_t nf = std::min(nfinal, n2);
  std::partial_sort(ord.begin(), ord.begin() + nf, ord.end(), [&](int64_t a, int64_t b) {
    const float sa = key(s3[a]), sb = key(s3[b]);
    if (sa != sb) return sa > sb;
    return pids3[a] < pids3[b];
  });
  for (int64_t i = 0; i < nf; ++i) {
    out_pids[i] = pids3[ord[i]];
    out_scores[i] = s3[ord[i]];
  }
  *out_count = nf;
  return Status{};
}

Status maxsim_packed(const float* Q, int64_t Lq, int64_t dim, const float* cst, int64_t C,
                     const int32_t* codes, const uint8_t* residuals, const float* norms,
                     int64_t N, const float* bucket_weights, int nbits, const Passages& ps,
                     int64_t lut_max_bytes, float* out, bool* used_lut) {
  ErrorSlot err;
  const int64_t P = dim * nbits / 8;
  const int64_t Lqp = round_up(std::max<int64_t>(Lq, 1), W);
  const int64_t lut_bytes = Lqp * P * 256 * static_cast<int64_t>(sizeof(float));
  const bool use_lut = lut_bytes <= lut_max_bytes;
  if (used_lut) *used_lut = use_lut;
  if (ps.m == 0) return Status{};
  if (Lq == 0) {
    std::fill(out, out + ps.m, 0.f);
    return Status{};
  }

  if (use_lut) {
    thread_local AlignedScratch scratch;
    const size_t lut_floats = static_cast<size_t>(P * 256 * Lqp);
    float* lut = scratch.get(lut_floats);
    if (!lut) throw std::bad_alloc();
    {
      const std::vector<float> Qt = transpose_queries(Q, Lq, dim, Lqp);
      build_lut(Qt.data(), dim, bucket_weights, nbits, P, Lqp, lut);
    }
    const float* L = lut;
    at::parallel_for(0, ps.m, 4, [&](int64_t lo, int64_t hi) {
      for (int64_t i = lo; i < hi; ++i) {
        int64_t b = 0, e = 0, pid = 0;
        if (!passage_range(ps, i, N, &b, &e, &pid, err) || b == e) {
          out[i] = 0.f;
          continue;
        }
        float total = 0.f;
        for (int64_t kb = 0; kb < Lq; kb += kLutChunk) {
          const int64_t len = std::min<int64_t>(kLutChunk, Lq - kb);
          const int nv = static_cast<int>((len + W - 1) / W);
          const int nlast = static_cast<int>(len - (nv - 1) * W);
          total += lut_fn(nv)(L + kb, Lqp, P, cst + kb, C, Lq, nlast, codes, residuals, norms,
                              b, e, err);
        }
        out[i] = total;
      }
    });
    scratch.release_if_larger(kKeepScratchFloats);
    return err.get();
  }

  // Decompress-then-dot path: residual part through the dense micro-kernel,
  // centroid part and 1/norm in its epilogue.
  const int64_t ldq = round_up(Lq, QB);
  const std::vector<float> Qt = transpose_queries(Q, Lq, dim, ldq);
  const DenseCtx ctx{Qt.data(), ldq, dim, Lq};
  const std::vector<float> wt = weight_table(bucket_weights, nbits);
  at::parallel_for(0, ps.m, 1, [&](int64_t lo, int64_t hi) {
    std::vector<float> buf(static_cast<size_t>(kTokBlock * dim));
    std::vector<const float*> rows(kTokBlock), crow(kTokBlock);
    std::vector<float> inv(kTokBlock), mxbuf(static_cast<size_t>(ldq));
    for (int64_t i = lo; i < hi; ++i) {
      int64_t b = 0, e = 0, pid = 0;
      if (!passage_range(ps, i, N, &b, &e, &pid, err) || b == e) {
        out[i] = 0.f;
        continue;
      }
      fill_neg_inf(mxbuf.data(), ldq);
      for (int64_t t0 = b; t0 < e; t0 += kTokBlock) {
        const int64_t t1 = std::min(e, t0 + kTokBlock);
        int64_t nt = 0;
        for (int64_t t = t0; t < t1; ++t) {
          const int32_t c = codes[t];
          if (c < 0 || c >= C) {
            err.record(StatusCode::kCodeOutOfRange, t, c);
            continue;
          }
          float* x = buf.data() + nt * dim;
          expand_row_dispatch(nbits, residuals + t * P, P, wt.data(), x);
          rows[nt] = x;
          crow[nt] = cst + static_cast<int64_t>(c) * Lq;
          inv[nt] = 1.f / std::max(norms[t], kNormEps);
          ++nt;
        }
        dense_block<true>(ctx, nt, rows.data(), crow.data(), inv.data(), mxbuf.data());
      }
      out[i] = sum_first(mxbuf.data(), Lq);
    }
  });
  return err.get();
}

Status maxsim_dense(const float* Q, int64_t Lq, int64_t dim, const void* D, bool d_half,
                    int64_t N, const Passages& ps, float* out) {
  ErrorSlot err;
  if (ps.m == 0) return Status{};
  if (Lq == 0) {
    std::fill(out, out + ps.m, 0.f);
    return Status{};
  }
  const int64_t ldq = round_up(Lq, QB);
  const std::vector<float> Qt = transpose_queries(Q, Lq, dim, ldq);
  const DenseCtx ctx{Qt.data(), ldq, dim, Lq};
  at::parallel_for(0, ps.m, 1, [&](int64_t lo, int64_t hi) {
    std::vector<float> buf(d_half ? static_cast<size_t>(kTokBlock * dim) : 0);
    std::vector<const float*> rows(kTokBlock);
    std::vector<float> mxbuf(static_cast<size_t>(ldq));
    for (int64_t i = lo; i < hi; ++i) {
      int64_t b = 0, e = 0, pid = 0;
      if (!passage_range(ps, i, N, &b, &e, &pid, err) || b == e) {
        out[i] = 0.f;
        continue;
      }
      fill_neg_inf(mxbuf.data(), ldq);
      for (int64_t t0 = b; t0 < e; t0 += kTokBlock) {
        const int64_t nt = std::min(e, t0 + kTokBlock) - t0;
        if (d_half) {
          const uint16_t* src = static_cast<const uint16_t*>(D) + t0 * dim;
          const int64_t total = nt * dim;
          float* dst = buf.data();
          int64_t j = 0;
          for (; j + W <= total; j += W) vstore(dst + j, vload_half(src + j));
          for (; j < total; ++j) dst[j] = half_to_float(src[j]);
          for (int64_t r = 0; r < nt; ++r) rows[r] = dst + r * dim;
        } else {
          const float* src = static_cast<const float*>(D) + t0 * dim;
          for (int64_t r = 0; r < nt; ++r) rows[r] = src + r * dim;
        }
        dense_block<false>(ctx, nt, rows.data(), nullptr, nullptr, mxbuf.data());
      }
      out[i] = sum_first(mxbuf.data(), Lq);
    }
  });
  return err.get();
}

Status maxsim_decompress(const float* Q, int64_t Lq, int64_t dim, const Centroids& cent,
                         const int32_t* codes, const uint8_t* residuals, int64_t N,
                         const float* bucket_weights, int nbits, const Passages& ps,
                         float* out) {
  ErrorSlot err;
  if (ps.m == 0) return Status{};
  if (Lq == 0) {
    std::fill(out, out + ps.m, 0.f);
    return Status{};
  }
  const int64_t P = dim * nbits / 8;
  const int64_t ldq = round_up(Lq, QB);
  const std::vector<float> Qt = transpose_queries(Q, Lq, dim, ldq);
  const DenseCtx ctx{Qt.data(), ldq, dim, Lq};
  const std::vector<float> wt = weight_table(bucket_weights, nbits);
  at::parallel_for(0, ps.m, 1, [&](int64_t lo, int64_t hi) {
    std::vector<float> buf(static_cast<size_t>(kTokBlock * dim)), x(static_cast<size_t>(dim));
    std::vector<const float*> rows(kTokBlock);
    std::vector<float> mxbuf(static_cast<size_t>(ldq));
    for (int64_t i = lo; i < hi; ++i) {
      int64_t b = 0, e = 0, pid = 0;
      if (!passage_range(ps, i, N, &b, &e, &pid, err) || b == e) {
        out[i] = 0.f;
        continue;
      }
      fill_neg_inf(mxbuf.data(), ldq);
      for (int64_t t0 = b; t0 < e; t0 += kTokBlock) {
        const int64_t t1 = std::min(e, t0 + kTokBlock);
        int64_t nt = 0;
        for (int64_t t = t0; t < t1; ++t) {
          const int32_t c = codes[t];
          if (c < 0 || c >= cent.C) {
            err.record(StatusCode::kCodeOutOfRange, t, c);
            continue;
          }
          float* row = buf.data() + nt * dim;
          const float nrm =
              decompress_one(c, residuals + t * P, P, cent, dim, wt.data(), nbits, x.data());
          scale_row(x.data(), dim, 1.f / std::max(nrm, kNormEps), row);
          rows[nt++] = row;
        }
        dense_block<false>(ctx, nt, rows.data(), nullptr, nullptr, mxbuf.data());
      }
      out[i] = sum_first(mxbuf.data(), Lq);
    }
  });
  return err.get();
}

}  // namespace colja
