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
#include <numeric>
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
// where a > b (ordered): x, else y; and whether a > b in any lane
inline VF vselect_gt(VF a, VF b, VF x, VF y) {
  return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(a, b, _CMP_GT_OQ), y, x);
}
inline bool vany_gt(VF a, VF b) { return _mm512_cmp_ps_mask(a, b, _CMP_GT_OQ) != 0; }
inline bool vany_ge(VF a, VF b) { return _mm512_cmp_ps_mask(a, b, _CMP_GE_OQ) != 0; }

#elif defined(__AVX2__) && defined(__FMA__)
#define COLJA_SIMD_NAME "avx2"
constexpr int W = 8;
using VF = __m256;
alignas(64) const int32_t kMaskTable[16] = {-1, -1, -1, -1, -1, -1, -1, -1,
                                            0,  0,  0,  0,  0,  0,  0,  0};
inline VF vzero() { return _mm256_setzero_ps(); }
inline VF vselect_gt(VF a, VF b, VF x, VF y) { return _mm256_blendv_ps(y, x, _mm256_cmp_ps(a, b, _CMP_GT_OQ)); }
inline bool vany_gt(VF a, VF b) { return _mm256_movemask_ps(_mm256_cmp_ps(a, b, _CMP_GT_OQ)) != 0; }
inline bool vany_ge(VF a, VF b) { return _mm256_movemask_ps(_mm256_cmp_ps(a, b, _CMP_GE_OQ)) != 0; }
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
inline VF vselect_gt(VF a, VF b, VF x, VF y) {
  for (int i = 0; i < W; ++i) y.v[i] = a.v[i] > b.v[i] ? x.v[i] : y.v[i];
  return y;
}
inline bool vany_gt(VF a, VF b) {
  for (int i = 0; i < W; ++i)
    if (a.v[i] > b.v[i]) return true;
  return false;
}
inline bool vany_ge(VF a, VF b) {
  for (int i = 0; i < W; ++i)
    if (a.v[i] >= b.v[i]) return true;
  return false;
}
#endif

inline float half_to_float(uint16_t h) { return c10::detail::fp16_ieee_to_fp32_value(h); }

// ---------------------------------------------------------------------------
// int16 vectors (VI, 2*W lanes) for the approximate scorer: load, add and the
// conversion of each half to a float vector.
// ---------------------------------------------------------------------------
constexpr int IW = 2 * W;
#if defined(__AVX512F__) && defined(__AVX512BW__) && !defined(COLJA_DISABLE_AVX512)
using VI = __m512i;
inline VI vi_zero() { return _mm512_setzero_si512(); }
inline VI vi_load(const int16_t* p) { return _mm512_loadu_si512(p); }
inline VI vi_add(VI a, VI b) { return _mm512_add_epi16(a, b); }
inline VI vi_load8(const int8_t* p) {  // IW int8, sign-extended
  return _mm512_cvtepi8_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
}
inline VF vi_lo(VI a) { return _mm512_cvtepi32_ps(_mm512_cvtepi16_epi32(_mm512_castsi512_si256(a))); }
inline VF vi_hi(VI a) {
  return _mm512_cvtepi32_ps(_mm512_cvtepi16_epi32(_mm512_extracti64x4_epi64(a, 1)));
}
#elif (!defined(__AVX512F__) || defined(COLJA_DISABLE_AVX512)) && defined(__AVX2__) && \
    defined(__FMA__)  // the AVX2 float path (W = 8)
using VI = __m256i;
inline VI vi_zero() { return _mm256_setzero_si256(); }
inline VI vi_load(const int16_t* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }
inline VI vi_add(VI a, VI b) { return _mm256_add_epi16(a, b); }
inline VI vi_load8(const int8_t* p) {
  return _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}
inline VF vi_lo(VI a) { return _mm256_cvtepi32_ps(_mm256_cvtepi16_epi32(_mm256_castsi256_si128(a))); }
inline VF vi_hi(VI a) { return _mm256_cvtepi32_ps(_mm256_cvtepi16_epi32(_mm256_extracti128_si256(a, 1))); }
#else
struct VI {
  int16_t v[IW];
};
inline VI vi_zero() {
  VI r;
  for (int i = 0; i < IW; ++i) r.v[i] = 0;
  return r;
}
inline VI vi_load(const int16_t* p) {
  VI r;
  std::memcpy(r.v, p, sizeof(r.v));
  return r;
}
inline VI vi_add(VI a, VI b) {  // wraps like the SIMD adds (the tables never overflow)
  for (int i = 0; i < IW; ++i) a.v[i] = static_cast<int16_t>(static_cast<uint16_t>(a.v[i]) + static_cast<uint16_t>(b.v[i]));
  return a;
}
inline VI vi_load8(const int8_t* p) {
  VI r;
  for (int i = 0; i < IW; ++i) r.v[i] = p[i];
  return r;
}
inline VF vi_half(const VI& a, int o) {
  alignas(64) float f[W];
  for (int i = 0; i < W; ++i) f[i] = static_cast<float>(a.v[o + i]);
  return vload(f);
}
inline VF vi_lo(VI a) { return vi_half(a, 0); }
inline VF vi_hi(VI a) { return vi_half(a, W); }
#endif

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

// Lane maxima summed per kCiChunk lanes, in ci_score's order (so every interaction path gives the same float).
inline float lane_sum(const float* mx, int64_t Lq) {
  float total = 0.f;
  for (int64_t kb = 0; kb < Lq; kb += kCiChunk) total += sum_first(mx + kb, std::min<int64_t>(kCiChunk, Lq - kb));
  return total;
}
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

// Pruned interaction (keep given): usually ~1 % of the centroids are kept, so
// their rows are packed into a small table, and a token whose centroid is
// pruned costs a bit test in a C/8-byte mask (L1 resident). Same numbers as
// ci_score (a max is exact; lanes are summed in the same order).
struct KeptRows {
  std::vector<uint64_t> bits;  // bit c: centroid c kept
  std::vector<int32_t> slot;   // row of centroid c in rows (kept ones only)
  std::vector<float> rows;     // [n_kept, Lqp], padded with kMissing
  int64_t Lqp = 0;
};

KeptRows kept_rows(const float* cst, int64_t C, int64_t Lq, const uint8_t* keep) {
  KeptRows kr;
  kr.Lqp = round_up(std::max<int64_t>(Lq, 1), W);
  kr.bits.assign(static_cast<size_t>((C + 63) / 64), 0);
  kr.slot.assign(static_cast<size_t>(C), 0);
  int32_t n = 0;
  for (int64_t c = 0; c < C; ++c)
    if (keep[c]) {
      kr.bits[c >> 6] |= uint64_t{1} << (c & 63);
      kr.slot[c] = n++;
      kr.rows.resize(static_cast<size_t>(n) * kr.Lqp, kMissing);
      std::copy(cst + c * Lq, cst + (c + 1) * Lq, kr.rows.end() - kr.Lqp);
    }
  return kr;
}

// NV: vectors per row when Lqp <= 4*W (the maxima stay in registers), else 0.
template <int NV>
float ci_pruned_one(const KeptRows& kr, int64_t C, int64_t Lq, const int32_t* codes, int64_t b,
                    int64_t e, float* mxbuf, ErrorSlot& err) {
  const uint64_t* bits = kr.bits.data();
  const int32_t* slot = kr.slot.data();
  const float* rows = kr.rows.data();
  const int64_t Lqp = kr.Lqp;
  VF mx[NV > 0 ? NV : 1];
  if (NV > 0) {
    for (int v = 0; v < NV; ++v) mx[v] = vset1(kMissing);
  } else {
    std::fill(mxbuf, mxbuf + Lqp, kMissing);
  }
  for (int64_t t = b; t < e; ++t) {
    const int32_t c = codes[t];
    if (c < 0 || c >= C) {
      err.record(StatusCode::kCodeOutOfRange, t, c);
      continue;
    }
    if (!((bits[c >> 6] >> (c & 63)) & 1)) continue;
    const float* row = rows + static_cast<int64_t>(slot[c]) * Lqp;
    if (NV > 0) {
      for (int v = 0; v < NV; ++v) mx[v] = vmax(mx[v], vload(row + v * W));
    } else {
      for (int64_t k = 0; k < Lqp; k += W) vstore(mxbuf + k, vmax(vload(mxbuf + k), vload(row + k)));
    }
  }
  if (NV > 0)
    for (int v = 0; v < NV; ++v) vstore(mxbuf + v * W, mx[v]);
  return lane_sum(mxbuf, Lq);
}

void ci_pruned_many(const float* cst, int64_t C, int64_t Lq, const int32_t* codes, int64_t N,
                    const Passages& ps, const uint8_t* keep, float* out, ErrorSlot& err) {
  const KeptRows kr = kept_rows(cst, C, Lq, keep);
  const int nv = static_cast<int>(kr.Lqp / W);
  using Fn = float (*)(const KeptRows&, int64_t, int64_t, const int32_t*, int64_t, int64_t, float*, ErrorSlot&);
  const Fn fn = nv == 1 ? ci_pruned_one<1> : nv == 2 ? ci_pruned_one<2> : nv == 3 ? ci_pruned_one<3>
              : nv == 4 ? ci_pruned_one<4> : ci_pruned_one<0>;
  at::parallel_for(0, ps.m, 16, [&](int64_t lo, int64_t hi) {
    std::vector<float> mx(static_cast<size_t>(kr.Lqp));
    for (int64_t i = lo; i < hi; ++i) {
      int64_t b = 0, e = 0, pid = 0;
      if (!passage_range(ps, i, N, &b, &e, &pid, err)) {
        out[i] = 0.f;
        continue;
      }
      out[i] = fn(kr, C, Lq, codes, b, e, mx.data(), err);
    }
  });
}

void ci_many(const float* cst, int64_t C, int64_t Lq, const int32_t* codes, int64_t N,
             const Passages& ps, const uint8_t* keep, float* out, ErrorSlot& err) {
  if (keep) {
    ci_pruned_many(cst, C, Lq, codes, N, ps, keep, out, err);
    return;
  }
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

// Nibble tables of the residual part of one packed byte position: for nibble
// value u and query lane k, out[u*Lqp + k] (u < 16: the high nibble's dims) and
// out[(16 + u)*Lqp + k] (the low nibble's dims) = sum over the nibble's dims d
// of Q[k, dim d] * bucket_weights[bucket of d]. Byte v scores
// out[v >> 4] + out[16 + (v & 15)].
struct NibbleWeights {
  int G = 0, Gh = 0;
  float wh[16 * 8], wl[16 * 8];  // wh[u*G + d] for d < Gh, wl[u*G + d] for d >= Gh
  NibbleWeights(const float* bw, int nbits) : G(8 / nbits), Gh(4 / nbits) {
    for (int u = 0; u < 16; ++u)
      for (int d = 0; d < G; ++d) {
        wh[u * G + d] = d < Gh ? bw[bucket_of(u << 4, d, nbits)] : 0.f;
        wl[u * G + d] = d >= Gh ? bw[bucket_of(u, d, nbits)] : 0.f;
      }
  }
  // q: the rows of Qt (queries transposed, zero padded: Qt[j*Lqp + k]) of the byte's G dims.
  void tables(const float* q, int64_t Lqp, float* out) const {
    for (int u = 0; u < 16; ++u) {
      float* h = out + u * Lqp;
      float* l = out + (16 + u) * Lqp;
      for (int64_t k = 0; k < Lqp; k += W) {
        VF sh = vzero(), sl = vzero();
        for (int d = 0; d < Gh; ++d) sh = vfma(vset1(wh[u * G + d]), vload(q + d * Lqp + k), sh);
        for (int d = Gh; d < G; ++d) sl = vfma(vset1(wl[u * G + d]), vload(q + d * Lqp + k), sl);
        vstore(h + k, sh);
        vstore(l + k, sl);
      }
    }
  }
};

// Qt: queries transposed and zero padded, Qt[j*Lqp + k].
void build_lut(const float* Qt, int64_t dim, const float* bw, int nbits, int64_t P, int64_t Lqp,
               float* lut) {
  (void)dim;
  const NibbleWeights nw(bw, nbits);
  at::parallel_for(0, P, 4, [&](int64_t lo, int64_t hi) {
    std::vector<float> HL(32 * Lqp);
    for (int64_t p = lo; p < hi; ++p) {
      nw.tables(Qt + p * nw.G * Lqp, Lqp, HL.data());
      float* lp = lut + p * 256 * Lqp;
      for (int v = 0; v < 256; ++v) {
        const float* h = HL.data() + (v >> 4) * Lqp;
        const float* l = HL.data() + (16 + (v & 15)) * Lqp;
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

// LQP: the table's row length when known at compile time (32: one multiply-free lookup per byte), or 0.
template <int NV, int LQP>
float lut_chunk(const float* lut, int64_t Lqp_, int64_t P, const float* cst_kb, int64_t C,
                int64_t Lq, int nlast, const int32_t* codes, const uint8_t* residuals,
                const float* norms, int64_t b, int64_t e, ErrorSlot& err) {
  constexpr int S = NV <= 2 ? 4 : 2;  // independent accumulator sets (hide add latency)
  const int64_t Lqp = LQP > 0 ? LQP : Lqp_;
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

template <int LQP>
LutFn lut_fn_q(int nv) {
  switch (nv) {
    case 1: return lut_chunk<1, LQP>;
    case 2: return lut_chunk<2, LQP>;
    case 3: return lut_chunk<(3 <= kLutMaxNV ? 3 : 1), LQP>;
    default: return lut_chunk<(4 <= kLutMaxNV ? 4 : 1), LQP>;
  }
}

LutFn lut_fn(int nv, int64_t Lqp) { return Lqp == 32 ? lut_fn_q<32>(nv) : lut_fn_q<0>(nv); }

// ---------------------------------------------------------------------------
// Approximate MaxSim with a proven error bound (maxsim_packed_topk).
//
// The residual part q.r of a token is summed from int8 nibble tables (per packed
// byte position: 16 rows for the high nibble's dims, 16 for the low nibble's, of
// 32 query lanes each: 32 KB for Lq = 32, so they stay in L1), widened to int16
// (64 entries of |x| <= 127 cannot overflow). Lane k's entries share one scale
// s_k and are each off by at most s_k/2, so a token's score in lane k is off by
// at most P*s_k/norm and a passage's MaxSim by at most sum_k P*s_k * max_t
// 1/norm_t (a max over tokens moves by no more than its arguments); the float
// rounding of both paths is added on top.
// ---------------------------------------------------------------------------
constexpr int kApproxLanes = 32;                // query lanes per pass over a passage
constexpr int kApproxNV = kApproxLanes / IW;    // int16 vectors per pass: 1 (AVX-512) or 2

struct ApproxTables {
  std::vector<int8_t> T;      // lane chunk c, byte p, nibble row u: T[((c*P + p)*32 + u)*32 + k % 32]
  std::vector<float> scale;   // [Lqp], 0 beyond Lq
  int64_t Lqp = 0;
  double err = 0;             // bound of sum_k |approx_k - exact_k| for 1/norm = 1
  bool ok = false;            // false: the tables cannot represent this query
};

float abs_max(const float* x, int64_t n) {
  VF m = vzero(), z = vzero();
  const VF neg = vset1(-1.f), zero = vzero();
  int64_t i = 0;
  for (; i + W <= n; i += W) {
    const VF v = vload(x + i);
    m = vmax(m, vmax(v, vmul(v, neg)));
    z = vadd(z, vmul(v, zero));
  }
  alignas(64) float buf[W];
  vstore(buf, m);
  float r = 0.f;
  for (int j = 0; j < W; ++j) r = std::max(r, buf[j]);
  for (; i < n; ++i) {
    if (std::isnan(x[i])) return x[i];
    r = std::max(r, std::fabs(x[i]));
  }
  vstore(buf, z);
  for (int j = 0; j < W; ++j) r += buf[j];  // NaN or inf anywhere: z says so (vmax would drop NaN)
  return r;
}

ApproxTables build_approx_tables(const float* Q, int64_t Lq, int64_t dim, const float* bw,
                                 int nbits, const float* cst, int64_t C, float cmax_hint) {
  ApproxTables tab;
  const int64_t P = dim * nbits / 8;
  if (2 * P * 127 > 32767) return tab;  // int16 sums of 2P entries must not overflow
  tab.Lqp = round_up(std::max<int64_t>(Lq, 1), kApproxLanes);
  const int64_t Lqp = tab.Lqp;
  const std::vector<float> Qt = transpose_queries(Q, Lq, dim, Lqp);
  const NibbleWeights nw(bw, nbits);
  std::vector<float> HL(static_cast<size_t>(P * 32 * Lqp));
  std::vector<float> mx(static_cast<size_t>(Lqp), 0.f);
  for (int64_t p = 0; p < P; ++p) {
    float* hl = HL.data() + p * 32 * Lqp;
    nw.tables(Qt.data() + p * nw.G * Lqp, Lqp, hl);
    for (int u = 0; u < 32; ++u)
      for (int64_t k = 0; k < Lq; ++k) mx[k] = std::max(mx[k], std::fabs(hl[u * Lqp + k]));
  }
  // the largest centroid score magnitude, for the float-rounding part of the bound
  // the largest |centroid score| (for the float-rounding slack): given by the caller, or found here
  const float cmax = cmax_hint >= 0.f ? cmax_hint : abs_max(cst, C * Lq);
  if (!std::isfinite(cmax)) return tab;
  tab.scale.assign(static_cast<size_t>(Lqp), 0.f);
  std::vector<float> inv(static_cast<size_t>(Lqp), 0.f);
  double err = 0.0, mag = 0.0;
  for (int64_t k = 0; k < Lq; ++k) {
    if (!std::isfinite(mx[k])) return tab;
    const float sk = mx[k] > 0 ? mx[k] / 127.f : 1.f;
    tab.scale[k] = sk;
    inv[k] = 1.f / sk;
    err += 1.01 * static_cast<double>(P) * sk;
    mag += cmax + 2.0 * static_cast<double>(P) * mx[k];
  }
  // float rounding: each path sums <= P + 8 terms per lane and Lq lanes per passage
  err += 2.4e-7 * (static_cast<double>(P) + 8.0 + static_cast<double>(Lq)) * mag + 1e-6;
  tab.err = err;
  tab.T.assign(static_cast<size_t>(P * 32 * Lqp), 0);
  for (int64_t row = 0; row < P * 32; ++row)
    for (int64_t k = 0; k < Lq; ++k) {
      const long q = std::lrintf(HL[row * Lqp + k] * inv[k]);
      tab.T[((k / kApproxLanes * P * 32) + row) * kApproxLanes + k % kApproxLanes] =
          static_cast<int8_t>(std::max(-127L, std::min(127L, q)));
    }
  tab.ok = true;
  return tab;
}

// T: the lane chunk's tables (rows of kApproxLanes int8). PT: P known at compile time
// (16, 32, 64: dim 128 at 1, 2, 4 bits; the lookups unroll), or 0.
template <int NVI, int PT>
float approx_chunk(const int8_t* T, int64_t P_, const float* cst_kb, int64_t C,
                   int64_t Lq, int nvalid, const float* scale_kb, const int32_t* codes,
                   const uint8_t* residuals, const float* norms, int64_t b, int64_t e,
                   float* maxinv, ErrorSlot& err) {
  constexpr int NF = 2 * NVI;
  constexpr int64_t R = kApproxLanes;  // row stride
  constexpr int64_t PS = 32 * R;       // byte position stride
  const int64_t P = PT > 0 ? PT : P_;
  VF mx[NF], sc[NF];
  int cnt[NF];
  for (int j = 0; j < NF; ++j) {
    cnt[j] = std::max(0, std::min(W, nvalid - j * W));
    sc[j] = vload(scale_kb + j * W);
    mx[j] = vset1(-std::numeric_limits<float>::infinity());
  }
  float mi = 0.f;
  for (int64_t t = b; t < e; ++t) {
#if !defined(COLJA_NO_PREFETCH)
    if (t + kPrefetch < e) {  // the centroid score rows are gathered from a table the size of L2
      const int32_t c2 = codes[t + kPrefetch];
      if (c2 >= 0 && c2 < C) {
        const float* r2 = cst_kb + static_cast<int64_t>(c2) * Lq;
        prefetch(r2);
        if (nvalid > 16) prefetch(r2 + 16);
      }
    }
#endif
    const int32_t c = codes[t];
    if (c < 0 || c >= C) {
      err.record(StatusCode::kCodeOutOfRange, t, c);
      continue;
    }
    const uint8_t* r = residuals + t * P;
    VI a[4][NVI];
    for (int s = 0; s < 4; ++s)
      for (int v = 0; v < NVI; ++v) a[s][v] = vi_zero();
    const int8_t* tp = T;
    int64_t p = 0;
#pragma GCC unroll 32
    for (; p + 2 <= P; p += 2, tp += 2 * PS) {
      const unsigned v0 = r[p], v1 = r[p + 1];
      const int8_t* h0 = tp + (v0 >> 4) * R;
      const int8_t* l0 = tp + (16 + (v0 & 15)) * R;
      const int8_t* h1 = tp + PS + (v1 >> 4) * R;
      const int8_t* l1 = tp + PS + (16 + (v1 & 15)) * R;
      for (int v = 0; v < NVI; ++v) {
        a[0][v] = vi_add(a[0][v], vi_load8(h0 + v * IW));
        a[1][v] = vi_add(a[1][v], vi_load8(l0 + v * IW));
        a[2][v] = vi_add(a[2][v], vi_load8(h1 + v * IW));
        a[3][v] = vi_add(a[3][v], vi_load8(l1 + v * IW));
      }
    }
    if (p < P) {
      const unsigned v0 = r[p];
      for (int v = 0; v < NVI; ++v) {
        a[0][v] = vi_add(a[0][v], vi_load8(tp + (v0 >> 4) * R + v * IW));
        a[1][v] = vi_add(a[1][v], vi_load8(tp + (16 + (v0 & 15)) * R + v * IW));
      }
    }
    const float inv = 1.f / std::max(norms[t], kNormEps);
    mi = std::max(mi, inv);
    const VF vinv = vset1(inv);
    const float* crow = cst_kb + static_cast<int64_t>(c) * Lq;
    for (int v = 0; v < NVI; ++v) {
      const VI sum = vi_add(vi_add(a[0][v], a[1][v]), vi_add(a[2][v], a[3][v]));
      const int j0 = 2 * v, j1 = 2 * v + 1;
      const VF c0 = cnt[j0] == W ? vload(crow + j0 * W) : vload_n(crow + j0 * W, cnt[j0]);
      const VF c1 = cnt[j1] == W ? vload(crow + j1 * W) : vload_n(crow + j1 * W, cnt[j1]);
      mx[j0] = vmax(mx[j0], vmul(vfma(vi_lo(sum), sc[j0], c0), vinv));
      mx[j1] = vmax(mx[j1], vmul(vfma(vi_hi(sum), sc[j1], c1), vinv));
    }
  }
  *maxinv = std::max(*maxinv, mi);
  alignas(64) float buf[NF * W];
  for (int j = 0; j < NF; ++j) vstore(buf + j * W, mx[j]);
  return sum_first(buf, nvalid);
}

#if defined(__AVX512VNNI__) && defined(__AVX512BW__) && !defined(COLJA_DISABLE_AVX512) && \
    !defined(COLJA_DISABLE_VNNI)
#define COLJA_APPROX_VNNI 1
// ---------------------------------------------------------------------------
// The same approximation with AVX512-VNNI (nbits = 2): a token's 4 dims per byte
// become 4 unsigned levels (bucket weight w = c0 + beta*(level - 128) + e,
// |e| <= e_max) and the query int8 (q = sigma_k*Qq + d, |d| <= sigma_k/2), so
// q.r = c0*sum_d q + beta*sigma_k*(sum_d level*Qq - 128*sum_d Qq) + error with
// |error| <= e_max*|q_k|_1 + beta*127*sigma_k/2*dim: one vpdpbusd scores 4 dims
// of 16 query lanes.
// ---------------------------------------------------------------------------
struct VnniTables {
  std::vector<int8_t> Qq;      // chunk c, byte p, half h: Qq[((c*P + p)*2 + h)*64 + lane*4 + j]
  int32_t levels[256];         // byte value -> 4 unsigned levels, dim order
  std::vector<float> A, B;     // per lane: score = (A + cst + B*dot) / norm
  double err = 0;
  int64_t Lqp = 0;
  bool ok = false;
};

VnniTables build_vnni_tables(const float* Q, int64_t Lq, int64_t dim, const float* bw,
                             const float* cst, int64_t C, float cmax_hint) {
  VnniTables vt;
  const int nbits = 2;
  const int64_t P = dim * nbits / 8;
  vt.Lqp = round_up(std::max<int64_t>(Lq, 1), kApproxLanes);
  const int64_t Lqp = vt.Lqp;
  float wmin = bw[0], wmax = bw[0];
  for (int b = 1; b < 4; ++b) {
    wmin = std::min(wmin, bw[b]);
    wmax = std::max(wmax, bw[b]);
  }
  if (!std::isfinite(wmin) || !std::isfinite(wmax)) return vt;
  const double c0 = 0.5 * (static_cast<double>(wmin) + wmax);
  const double beta = wmax > wmin ? (static_cast<double>(wmax) - wmin) / 254.0 : 1.0;
  int lev[4];
  double emax = 0.0;
  for (int b = 0; b < 4; ++b) {
    lev[b] = static_cast<int>(std::lround((bw[b] - c0) / beta));
    lev[b] = std::max(-127, std::min(127, lev[b]));
    emax = std::max(emax, std::fabs(bw[b] - (c0 + beta * lev[b])));
  }
  double levmax = 0.0;
  for (int b = 0; b < 4; ++b) levmax = std::max(levmax, static_cast<double>(std::abs(lev[b])));
  for (int v = 0; v < 256; ++v) {
    uint32_t word = 0;
    for (int d = 0; d < 4; ++d)
      word |= static_cast<uint32_t>(lev[bucket_of(v, d, nbits)] + 128) << (8 * d);
    vt.levels[v] = static_cast<int32_t>(word);
  }
  // the largest |centroid score| (for the float-rounding slack): given by the caller, or found here
  const float cmax = cmax_hint >= 0.f ? cmax_hint : abs_max(cst, C * Lq);
  if (!std::isfinite(cmax)) return vt;
  vt.Qq.assign(static_cast<size_t>(P * 2 * 64 * (Lqp / kApproxLanes)), 0);
  vt.A.assign(static_cast<size_t>(Lqp), 0.f);
  vt.B.assign(static_cast<size_t>(Lqp), 0.f);
  double err = 0.0, mag = 0.0;
  for (int64_t k = 0; k < Lq; ++k) {
    const float* q = Q + k * dim;
    double l1 = 0.0, sum = 0.0;
    float qmax = 0.f;
    for (int64_t d = 0; d < dim; ++d) {
      if (!std::isfinite(q[d])) return vt;
      l1 += std::fabs(q[d]);
      sum += q[d];
      qmax = std::max(qmax, std::fabs(q[d]));
    }
    const double sigma = qmax > 0 ? qmax / 127.0 : 1.0;
    int64_t qsum = 0;
    double dev = 0.0;  // sum_d |q_d - sigma*Qq_d|: the query's actual rounding, not its worst case
    const int64_t c = k / kApproxLanes, lane = k % kApproxLanes, h = lane / 16, l16 = lane % 16;
    for (int64_t d = 0; d < dim; ++d) {
      const int qq = std::max(-127, std::min(127, static_cast<int>(std::lround(q[d] / sigma))));
      qsum += qq;
      dev += std::fabs(static_cast<double>(q[d]) - sigma * qq);
      vt.Qq[((c * P + d / 4) * 2 + h) * 64 + l16 * 4 + d % 4] = static_cast<int8_t>(qq);
    }
    vt.B[k] = static_cast<float>(beta * sigma);
    vt.A[k] = static_cast<float>(c0 * sum - 128.0 * beta * sigma * static_cast<double>(qsum));
    // |sum_d q_d e_d| <= e_max |q|_1 and |beta sum_d lev_d (q_d - sigma Qq_d)| <= beta max|lev| sum_d |q_d - sigma Qq_d|
    err += emax * l1 + beta * levmax * dev * (1.0 + 1e-12);
    mag += cmax + std::fabs(c0) * l1 + std::fabs(vt.A[k]) + beta * sigma * 255.0 * 127.0 * static_cast<double>(dim);
  }
  // float rounding of both paths (exact: <= P + 8 terms per lane; here: int32 -> float and 3 ops)
  err += 2.4e-7 * (static_cast<double>(P) + 8.0 + static_cast<double>(Lq)) * mag + 1e-6;
  vt.err = err;
  vt.ok = true;
  return vt;
}

constexpr int kVnniPrefetch = 16;  // tokens ahead: the centroid score rows come from L2/L3

// NH: 16-lane halves in this chunk (1 or 2). Two tokens per step share the query loads.
// One token's scores in the (up to) two 16-lane halves, folded into the running maxima.
template <int NH>
__attribute__((always_inline)) inline void vnni_finish(__m512& mx0, __m512& mx1, __m512i d0,
                                                       __m512i d1, const float* crow, float inv,
                                                       __m512 va0, __m512 va1, __m512 vb0,
                                                       __m512 vb1, __mmask16 m0, __mmask16 m1) {
  const __m512 vinv = _mm512_set1_ps(inv);
  const __m512 c0 = _mm512_add_ps(va0, _mm512_maskz_loadu_ps(m0, crow));
  mx0 = _mm512_max_ps(mx0, _mm512_mul_ps(_mm512_fmadd_ps(_mm512_cvtepi32_ps(d0), vb0, c0), vinv));
  if (NH > 1) {
    const __m512 c1 = _mm512_add_ps(va1, _mm512_maskz_loadu_ps(m1, crow + 16));
    mx1 = _mm512_max_ps(mx1, _mm512_mul_ps(_mm512_fmadd_ps(_mm512_cvtepi32_ps(d1), vb1, c1), vinv));
  }
}

// NH: 16-lane halves in this chunk (1 or 2). Two tokens per step share the query loads.
// inv[t - b]: 1 / norm of token t.
template <int NH, int PT>
float vnni_chunk(const VnniTables& vt, const int8_t* Qc, int64_t P_, const float* cst_kb,
                 int64_t C, int64_t Lq, int nvalid, const float* A_kb, const float* B_kb,
                 const int32_t* codes, const uint8_t* residuals, const float* inv, int64_t b,
                 int64_t e, ErrorSlot& err) {
  const int64_t P = PT > 0 ? PT : P_;  // PT: 32 (dim 128) known at compile time, or 0
  const int n0 = std::min(16, nvalid), n1 = std::max(0, std::min(16, nvalid - 16));
  const __mmask16 m0 = static_cast<__mmask16>((1u << n0) - 1u);
  const __mmask16 m1 = static_cast<__mmask16>((1u << n1) - 1u);
  const __m512 va0 = _mm512_maskz_loadu_ps(m0, A_kb), va1 = _mm512_maskz_loadu_ps(m1, A_kb + 16);
  const __m512 vb0 = _mm512_maskz_loadu_ps(m0, B_kb), vb1 = _mm512_maskz_loadu_ps(m1, B_kb + 16);
  __m512 mx0 = _mm512_set1_ps(-std::numeric_limits<float>::infinity()), mx1 = mx0;
  const int32_t* lv = vt.levels;
  auto crow = [&](int64_t t) { return cst_kb + static_cast<int64_t>(codes[t]) * Lq; };
  int64_t t = b;
  for (; t + 2 <= e; t += 2) {
    if (t + kVnniPrefetch + 1 < e) {
      for (int u = 0; u < 2; ++u) {
        const int32_t c2 = codes[t + kVnniPrefetch + u];
        if (c2 >= 0 && c2 < C) {
          const float* r2 = cst_kb + static_cast<int64_t>(c2) * Lq;
          prefetch(r2);
          if (NH > 1) prefetch(r2 + 16);
        }
      }
    }
    if (t + 16 < e) prefetch(residuals + (t + 16) * P);  // 2 tokens per line ahead of the streamer
    const uint8_t* r0 = residuals + t * P;
    const uint8_t* r1 = r0 + P;
    __m512i a00[NH], a01[NH], a10[NH], a11[NH];  // token 0/1, byte parity 0/1
    for (int h = 0; h < NH; ++h) a00[h] = a01[h] = a10[h] = a11[h] = _mm512_setzero_si512();
    const int8_t* qp = Qc;
    int64_t p = 0;
#pragma GCC unroll 16
    for (; p + 2 <= P; p += 2, qp += 256) {
      const __m512i l0 = _mm512_set1_epi32(lv[r0[p]]), l1 = _mm512_set1_epi32(lv[r1[p]]);
      const __m512i m0 = _mm512_set1_epi32(lv[r0[p + 1]]), m1 = _mm512_set1_epi32(lv[r1[p + 1]]);
      for (int h = 0; h < NH; ++h) {
        const __m512i q = _mm512_loadu_si512(qp + h * 64);
        const __m512i q2 = _mm512_loadu_si512(qp + 128 + h * 64);
        a00[h] = _mm512_dpbusd_epi32(a00[h], l0, q);
        a10[h] = _mm512_dpbusd_epi32(a10[h], l1, q);
        a01[h] = _mm512_dpbusd_epi32(a01[h], m0, q2);
        a11[h] = _mm512_dpbusd_epi32(a11[h], m1, q2);
      }
    }
    if (p < P) {
      const __m512i l0 = _mm512_set1_epi32(lv[r0[p]]), l1 = _mm512_set1_epi32(lv[r1[p]]);
      for (int h = 0; h < NH; ++h) {
        const __m512i q = _mm512_loadu_si512(qp + h * 64);
        a00[h] = _mm512_dpbusd_epi32(a00[h], l0, q);
        a10[h] = _mm512_dpbusd_epi32(a10[h], l1, q);
      }
    }
    vnni_finish<NH>(mx0, mx1, _mm512_add_epi32(a00[0], a01[0]),
                      _mm512_add_epi32(a00[NH - 1], a01[NH - 1]), crow(t), inv[t - b], va0, va1,
                      vb0, vb1, m0, m1);
    vnni_finish<NH>(mx0, mx1, _mm512_add_epi32(a10[0], a11[0]),
                      _mm512_add_epi32(a10[NH - 1], a11[NH - 1]), crow(t + 1), inv[t + 1 - b],
                      va0, va1, vb0, vb1, m0, m1);
  }
  if (t < e) {
    const uint8_t* r0 = residuals + t * P;
    __m512i a[NH];
    for (int h = 0; h < NH; ++h) a[h] = _mm512_setzero_si512();
    const int8_t* qp = Qc;
    for (int64_t p = 0; p < P; ++p, qp += 128) {
      const __m512i l0 = _mm512_set1_epi32(lv[r0[p]]);
      for (int h = 0; h < NH; ++h) a[h] = _mm512_dpbusd_epi32(a[h], l0, _mm512_loadu_si512(qp + h * 64));
    }
    vnni_finish<NH>(mx0, mx1, a[0], a[NH - 1], crow(t), inv[t - b], va0, va1, vb0, vb1, m0, m1);
  }
  alignas(64) float buf[32];
  _mm512_store_ps(buf, mx0);
  _mm512_store_ps(buf + 16, mx1);
  return sum_first(buf, nvalid);
}

void vnni_many(const VnniTables& vt, int64_t P, const float* cst, int64_t C, int64_t Lq,
               const int32_t* codes, const uint8_t* residuals, const float* norms, int64_t N,
               const Passages& ps, float* approx, float* bound, ErrorSlot& err) {
  at::parallel_for(0, ps.m, 8, [&](int64_t lo, int64_t hi) {
    std::vector<float> inv;
    for (int64_t i = lo; i < hi; ++i) {
      int64_t b = 0, e = 0, pid = 0;
      if (!passage_range(ps, i, N, &b, &e, &pid, err) || b == e) {
        approx[i] = 0.f;
        bound[i] = 0.f;
        continue;
      }
      if (i + 1 < hi) {  // the next passage's first lines, while this one is scored
        const int64_t nxt = ps.pids ? ps.pids[i + 1] : i + 1;
        if (nxt >= 0 && nxt < ps.n_docs) {
          const int64_t nb = ps.offsets[nxt];
          if (nb >= 0 && nb < N) {
            const uint8_t* rr = residuals + nb * P;
            for (int64_t x = 0; x < 16 * P; x += 64) prefetch(rr + x);
            prefetch(codes + nb);
            prefetch(norms + nb);
          }
        }
      }
      bool codes_ok = true;  // checked here, once, so the scoring loop has no branch per token
      for (int64_t x = b; x < e; x += 16) {
        const __mmask16 mk = static_cast<__mmask16>(e - x >= 16 ? 0xFFFFu : (1u << (e - x)) - 1u);
        const __m512i c = _mm512_maskz_loadu_epi32(mk, codes + x);
        const __mmask16 badm = _mm512_mask_cmplt_epi32_mask(mk, c, _mm512_setzero_si512()) |
                               _mm512_mask_cmpge_epi32_mask(mk, c, _mm512_set1_epi32(static_cast<int32_t>(C)));
        if (badm) {
          const int64_t at = x + __builtin_ctz(badm);
          err.record(StatusCode::kCodeOutOfRange, at, codes[at]);
          codes_ok = false;
          break;
        }
      }
      if (!codes_ok) {
        approx[i] = 0.f;
        bound[i] = 0.f;
        continue;
      }
      // 1/norm of every token, 16 at a time, and their largest (the bound's factor)
      inv.resize(static_cast<size_t>(e - b));
      const __m512 eps = _mm512_set1_ps(kNormEps), one = _mm512_set1_ps(1.f);
      __m512 vmi = _mm512_setzero_ps();
      for (int64_t x = 0; x < e - b; x += 16) {
        const __mmask16 mk = static_cast<__mmask16>(e - b - x >= 16 ? 0xFFFFu : (1u << (e - b - x)) - 1u);
        const __m512 v = _mm512_div_ps(one, _mm512_max_ps(_mm512_maskz_loadu_ps(mk, norms + b + x), eps));
        _mm512_mask_storeu_ps(inv.data() + x, mk, v);
        vmi = _mm512_mask_max_ps(vmi, mk, vmi, v);
      }
      const float mi = _mm512_reduce_max_ps(vmi);
      float total = 0.f;
      for (int64_t kb = 0; kb < Lq; kb += kApproxLanes) {
        const int nvalid = static_cast<int>(std::min<int64_t>(kApproxLanes, Lq - kb));
        const int8_t* Qc = vt.Qq.data() + (kb / kApproxLanes) * P * 128;
        auto fn = nvalid > 16 ? (P == 32 ? vnni_chunk<2, 32> : vnni_chunk<2, 0>)
                              : (P == 32 ? vnni_chunk<1, 32> : vnni_chunk<1, 0>);
        total += fn(vt, Qc, P, cst + kb, C, Lq, nvalid, vt.A.data() + kb, vt.B.data() + kb, codes,
                    residuals, inv.data(), b, e, err);
      }
      approx[i] = total;
      bound[i] = static_cast<float>(static_cast<double>(mi) * vt.err * 1.0001 + 1e-6);
    }
  });
}
#endif

using ApproxFn = float (*)(const int8_t*, int64_t, const float*, int64_t, int64_t, int,
                           const float*, const int32_t*, const uint8_t*, const float*, int64_t,
                           int64_t, float*, ErrorSlot&);

template <int PT>
ApproxFn approx_fn_p(int nvi) {
  return nvi <= 1 ? approx_chunk<1, PT> : approx_chunk<(2 <= kApproxNV ? 2 : 1), PT>;
}

ApproxFn approx_fn(int nvi, int64_t P) {
  switch (P) {
    case 16: return approx_fn_p<16>(nvi);
    case 32: return approx_fn_p<32>(nvi);
    case 64: return approx_fn_p<64>(nvi);
    default: return approx_fn_p<0>(nvi);
  }
}

// approx[i] and bound[i] of passage ps[i]: |approx - maxsim_packed| <= bound.
void nibble_many(const ApproxTables& tab, int64_t P, const float* cst, int64_t C, int64_t Lq,
                 const int32_t* codes, const uint8_t* residuals, const float* norms, int64_t N,
                 const Passages& ps, float* approx, float* bound, ErrorSlot& err) {
  at::parallel_for(0, ps.m, 8, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) {
      int64_t b = 0, e = 0, pid = 0;
      if (!passage_range(ps, i, N, &b, &e, &pid, err) || b == e) {
        approx[i] = 0.f;
        bound[i] = 0.f;
        continue;
      }
      float total = 0.f, mi = 0.f;
      for (int64_t kb = 0; kb < Lq; kb += kApproxLanes) {
        const int nvalid = static_cast<int>(std::min<int64_t>(kApproxLanes, Lq - kb));
        const int nvi = (nvalid + IW - 1) / IW;
        total += approx_fn(nvi, P)(tab.T.data() + kb * P * 32, P, cst + kb, C, Lq, nvalid,
                                tab.scale.data() + kb, codes, residuals, norms, b, e, &mi, err);
      }
      approx[i] = total;
      bound[i] = static_cast<float>(static_cast<double>(mi) * tab.err * 1.0001 + 1e-6);
    }
  });
}

const char* approx_path_name(int nbits) {
#ifdef COLJA_APPROX_VNNI
  if (nbits == 2) return "vnni";
#endif
  (void)nbits;
  return "int8-nibble";
}

// Approximate scores and their bounds by the best path for this build; false when
// the tables cannot represent this query (nothing written).
bool approx_scores(const float* Q, int64_t Lq, int64_t dim, const float* bw, int nbits,
                   const float* cst, int64_t C, const int32_t* codes, const uint8_t* residuals,
                   const float* norms, int64_t N, const Passages& ps, float* approx, float* bound,
                   ErrorSlot& err, float cmax_hint) {
  const int64_t P = dim * nbits / 8;
#ifdef COLJA_APPROX_VNNI
  if (nbits == 2 && dim % 4 == 0) {
    const VnniTables vt = build_vnni_tables(Q, Lq, dim, bw, cst, C, cmax_hint);
    if (!vt.ok) return false;
    vnni_many(vt, P, cst, C, Lq, codes, residuals, norms, N, ps, approx, bound, err);
    return true;
  }
#endif
  const ApproxTables tab = build_approx_tables(Q, Lq, dim, bw, nbits, cst, C, cmax_hint);
  if (!tab.ok) return false;
  nibble_many(tab, P, cst, C, Lq, codes, residuals, norms, N, ps, approx, bound, err);
  return true;
}

}  // namespace

const char* simd_name() { return COLJA_SIMD_NAME; }

const char* approx_path(int nbits) { return approx_path_name(nbits); }

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
                      const int64_t* ivf_offsets, int64_t n_docs, int64_t* out, int64_t* out_count,
                      uint8_t* keep_out, float threshold, float* abs_max_out) {
  *out_count = 0;
  n = std::min(n, C);
  if (n <= 0 || Lq == 0) return Status{};
  // Top n rows per column in one pass over the rows: best[j * Lq + k] is column k's j-th best.
  // A strictly greater score displaces, so among equal scores the smaller row index stays first.
  std::vector<int64_t> rows(static_cast<size_t>(n * Lq), -1);
  if (keep_out) std::fill(keep_out, keep_out + C, uint8_t{0});
  const VF thr = vset1(threshold), neg = vset1(-1.f);
  VF vhi = vzero(), vlo = vzero();  // max of scores and of -scores (tail padding -inf never wins)
  float smax = 0.f;
  if (n <= 8 && C < (int64_t{1} << 24)) {
    // SIMD: W columns at a time, row numbers carried as floats (exact below 2^24); a new score
    // takes the first slot it strictly beats and shifts the rest down.
    const int64_t Lqp = round_up(Lq, W);
    std::vector<float> pad(static_cast<size_t>(Lqp), -std::numeric_limits<float>::infinity());
    const VF one = vset1(1.f), half = vset1(0.5f);
    for (int64_t kb = 0; kb < Lqp; kb += W) {
      VF best[8], idx[8];
      for (int j = 0; j < n; ++j) {
        best[j] = vset1(-std::numeric_limits<float>::infinity());
        idx[j] = vset1(-1.f);
      }
      const bool tail = kb + W > Lq;
      for (int64_t c = 0; c < C; ++c) {
        const float* row = cst + c * Lq + kb;
        VF v;
        if (tail) {  // columns beyond Lq read as -inf: never selected
          std::copy(row, row + (Lq - kb), pad.data());
          v = vload(pad.data());
        } else {
          v = vload(row);
        }
        if (keep_out) {  // PLAID stage 2's pruning and the scores' range, in the same pass
          if (vany_ge(v, thr)) keep_out[c] = 1;
          if (tail) {
            for (int64_t x = 0; x < Lq - kb; ++x) smax = std::max(smax, std::fabs(row[x]));
          } else {
            vhi = vmax(vhi, v);
            vlo = vmax(vlo, vmul(v, neg));
          }
        }
        if (!vany_gt(v, best[n - 1])) continue;  // the common case (NaN included: never selected)
        VF vi = vset1(static_cast<float>(c)), moved = vzero();
        for (int j = 0; j < n; ++j) {
          // once the new score took a slot, every later slot shifts down by one
          moved = vselect_gt(v, best[j], one, moved);
          const VF b = best[j], bi = idx[j];
          best[j] = vselect_gt(moved, half, v, b);
          idx[j] = vselect_gt(moved, half, vi, bi);
          vi = vselect_gt(moved, half, bi, vi);
          v = vselect_gt(moved, half, b, v);
        }
      }
      for (int j = 0; j < n; ++j) {
        alignas(64) float buf[W];
        vstore(buf, idx[j]);
        for (int x = 0; x < W && kb + x < Lq; ++x) rows[j * Lq + kb + x] = static_cast<int64_t>(buf[x]);
      }
    }
  } else {
    std::vector<float> best(static_cast<size_t>(n * Lq), -std::numeric_limits<float>::infinity());
    float* last = best.data() + (n - 1) * Lq;
    for (int64_t c = 0; c < C; ++c) {
      const float* row = cst + c * Lq;
      for (int64_t k = 0; k < Lq; ++k) {
        const float v = row[k];
        if (keep_out) {
          if (v >= threshold) keep_out[c] = 1;
          smax = std::max(smax, std::fabs(v));
        }
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
  }
  if (abs_max_out) {
    alignas(64) float hb[W], lb[W];
    vstore(hb, vhi);
    vstore(lb, vlo);
    for (int x = 0; x < W; ++x) smax = std::max(smax, std::max(hb[x], lb[x]));
    *abs_max_out = smax;
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

// The ndocs best of m scored passages (score desc, NaN last, ties to the smaller pid),
// written to out sorted ascending by pid; pid_of(i) is passage i's pid. Returns how many.
template <typename PidOf>
int64_t best_sorted(const float* scores, int64_t m, int64_t ndocs, PidOf pid_of, int64_t* out) {
  auto key = [](float x) { return std::isnan(x) ? -std::numeric_limits<float>::infinity() : x; };
  std::vector<int64_t> idx(static_cast<size_t>(m));
  std::iota(idx.begin(), idx.end(), int64_t{0});
  const int64_t n = std::min(ndocs, m);
  if (n < m) {
    std::nth_element(idx.begin(), idx.begin() + n, idx.end(), [&](int64_t a, int64_t b) {
      const float sa = key(scores[a]), sb = key(scores[b]);
      if (sa != sb) return sa > sb;
      return pid_of(a) < pid_of(b);
    });
  }
  for (int64_t j = 0; j < n; ++j) out[j] = pid_of(idx[j]);
  std::sort(out, out + n);
  return n;
}

// PLAID stage 2: the top ndocs of ps by pruned centroid interaction (score desc,
// pid asc), as pids sorted ascending.
Status stage2_select(const float* cst, int64_t C, int64_t Lq, const int32_t* codes, int64_t N,
                     const Passages& ps, const uint8_t* keep, int64_t ndocs,
                     std::vector<int64_t>* out) {
  ErrorSlot err;
  const int64_t m = ps.m;
  std::vector<float> s2(static_cast<size_t>(m));
  ci_many(cst, C, Lq, codes, N, ps, keep, s2.data(), err);
  if (err.set.load()) return err.get();
  out->resize(static_cast<size_t>(std::min(ndocs, m)));
  best_sorted(s2.data(), m, ndocs, [&](int64_t i) { return ps.pids ? ps.pids[i] : i; }, out->data());
  return Status{};
}

Status prune_candidates(const float* cst, int64_t C, int64_t Lq, const int32_t* ivf,
                        const int64_t* ivf_offsets, int64_t n_docs, const int64_t* pids, int64_t m,
                        float threshold, int64_t ndocs, int64_t* out_pids, int64_t* out_count,
                        const uint8_t* keep) {
  *out_count = 0;
  if (m == 0 || ndocs <= 0) return Status{};
  const int64_t Lqp = round_up(std::max<int64_t>(Lq, 1), W);
  // slot of each candidate passage (pids are sorted and unique)
  thread_local std::vector<int32_t> slot;
  slot.assign(static_cast<size_t>(n_docs), -1);
  for (int64_t i = 0; i < m; ++i) {
    if (pids[i] < 0 || pids[i] >= n_docs) return Status{StatusCode::kPidOutOfRange, i, pids[i]};
    if (slot[pids[i]] >= 0) return Status{StatusCode::kPidOutOfRange, i, pids[i]};  // a repeat
    slot[pids[i]] = static_cast<int32_t>(i);
  }
  // lane maxima per candidate over its kept centroids, read off the kept centroids' lists
  thread_local std::vector<float> mx;  // kept between calls: no page faults on every query
  mx.assign(static_cast<size_t>(m * Lqp), kMissing);
  std::vector<float> padded(static_cast<size_t>(Lqp), kMissing);
  const VF thr = vset1(threshold);
  for (int64_t c = 0; c < C; ++c) {
    const float* row = cst + c * Lq;
    bool kept = false;
    if (keep) {
      kept = keep[c] != 0;
    } else {
      int64_t j = 0;
      for (; j + W <= Lq && !kept; j += W) kept = vany_ge(vload(row + j), thr);
      for (; j < Lq && !kept; ++j) kept = row[j] >= threshold;
    }
    if (!kept) continue;  // pruned: below the threshold against every query vector
    const int64_t b = ivf_offsets[c], e = ivf_offsets[c + 1];
    if (b < 0 || e < b || e > ivf_offsets[C]) return Status{StatusCode::kBadOffsets, c, b};
    std::copy(row, row + Lq, padded.begin());  // lanes >= Lq stay kMissing
    for (int64_t x = b; x < e; ++x) {
      const int64_t pid = ivf[x];
      if (pid < 0 || pid >= n_docs) return Status{StatusCode::kPidOutOfRange, x, pid};
      const int32_t sl = slot[pid];
      if (sl < 0) continue;
      float* dst = mx.data() + static_cast<int64_t>(sl) * Lqp;
      for (int64_t k = 0; k < Lqp; k += W) vstore(dst + k, vmax(vload(dst + k), vload(padded.data() + k)));
    }
  }
  std::vector<float> s2(static_cast<size_t>(m));
  for (int64_t i = 0; i < m; ++i) s2[i] = lane_sum(mx.data() + i * Lqp, Lq);
  *out_count = best_sorted(s2.data(), m, ndocs, [&](int64_t i) { return pids[i]; }, out_pids);
  if (mx.capacity() > kKeepScratchFloats) std::vector<float>().swap(mx);  // an unusually large call
  return Status{};
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
  std::vector<int64_t> pids3;
  const Status st = stage2_select(cst, C, Lq, codes, N, ps, keep, ndocs, &pids3);
  if (!st.ok()) return st;
  const int64_t n2 = static_cast<int64_t>(pids3.size());
  auto key = [](float s) { return std::isnan(s) ? -std::numeric_limits<float>::infinity() : s; };
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
          total += lut_fn(nv, Lqp)(L + kb, Lqp, P, cst + kb, C, Lq, nlast, codes, residuals, norms,
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

Status maxsim_packed_bounds(const float* Q, int64_t Lq, int64_t dim, const float* cst, int64_t C,
                            const int32_t* codes, const uint8_t* residuals, const float* norms,
                            int64_t N, const float* bucket_weights, int nbits, const Passages& ps,
                            float* approx, float* bound, bool* ok) {
  ErrorSlot err;
  *ok = false;
  if (ps.m == 0) return Status{};
  *ok = approx_scores(Q, Lq, dim, bucket_weights, nbits, cst, C, codes, residuals, norms, N, ps,
                      approx, bound, err, -1.f);
  return err.get();
}

Status maxsim_packed_topk(const float* Q, int64_t Lq, int64_t dim, const float* cst, int64_t C,
                          const int32_t* codes, const uint8_t* residuals, const float* norms,
                          int64_t N, const float* bucket_weights, int nbits, const Passages& ps,
                          int64_t k, int64_t lut_max_bytes, float* out_scores, int64_t* out_pids,
                          int64_t* out_count, int64_t* n_exact, float cmax_hint) {
  ErrorSlot err;
  *out_count = 0;
  *n_exact = 0;
  const int64_t m = ps.m;
  const int64_t kk = std::min(k, m);
  if (kk <= 0) return Status{};
  auto pid_of = [&](int64_t i) { return ps.pids ? ps.pids[i] : i; };
  auto key = [](float x) { return std::isnan(x) ? -std::numeric_limits<float>::infinity() : x; };

  // 1. the shortlist: every passage whose upper bound reaches the k-th best lower bound
  std::vector<int64_t> shortlist;
  bool all = true;
  if (m > std::max<int64_t>(2 * kk, 64) && Lq > 0) {
    std::vector<float> approx(static_cast<size_t>(m)), bound(static_cast<size_t>(m));
    if (approx_scores(Q, Lq, dim, bucket_weights, nbits, cst, C, codes, residuals, norms, N, ps,
                      approx.data(), bound.data(), err, cmax_hint)) {
      if (err.set.load()) return err.get();
      std::vector<float> lower(static_cast<size_t>(m));
      for (int64_t i = 0; i < m; ++i) lower[i] = key(approx[i] - bound[i]);
      std::nth_element(lower.begin(), lower.begin() + (kk - 1), lower.end(), std::greater<float>());
      const float threshold = lower[kk - 1];
      for (int64_t i = 0; i < m; ++i)
        if (!(approx[i] + bound[i] < threshold)) shortlist.push_back(i);  // NaN stays in
      all = false;
    }
  }
  if (all) {
    shortlist.resize(static_cast<size_t>(m));
    std::iota(shortlist.begin(), shortlist.end(), int64_t{0});
  }

  // 2. exact scores of the shortlist (the maxsim_packed numbers), then the top k
  const int64_t n = static_cast<int64_t>(shortlist.size());
  std::vector<int64_t> spids(static_cast<size_t>(n));
  for (int64_t j = 0; j < n; ++j) spids[j] = pid_of(shortlist[j]);
  std::vector<float> exact(static_cast<size_t>(n));
  const Passages ps2{ps.offsets, ps.n_docs, spids.data(), n};
  const Status st = maxsim_packed(Q, Lq, dim, cst, C, codes, residuals, norms, N, bucket_weights,
                                  nbits, ps2, lut_max_bytes, exact.data(), nullptr);
  if (!st.ok()) return st;
  std::vector<int64_t> ord(static_cast<size_t>(n));
  std::iota(ord.begin(), ord.end(), int64_t{0});
  std::partial_sort(ord.begin(), ord.begin() + kk, ord.end(), [&](int64_t a, int64_t b) {
    const float sa = key(exact[a]), sb = key(exact[b]);
    if (sa != sb) return sa > sb;
    if (spids[a] != spids[b]) return spids[a] < spids[b];
    return a < b;
  });
  for (int64_t j = 0; j < kk; ++j) {
    out_scores[j] = exact[ord[j]];
    out_pids[j] = spids[ord[j]];
  }
  *out_count = kk;
  *n_exact = n;
  return err.get();
}

Status plaid_query(const float* Q, int64_t Lq, int64_t dim, const float* cst, int64_t C,
                   const int32_t* ivf, const int64_t* ivf_offsets, const int32_t* codes,
                   const uint8_t* residuals, const float* norms, int64_t N,
                   const float* bucket_weights, int nbits, const int64_t* doc_offsets,
                   int64_t n_docs, const uint8_t* allowed, int64_t ncells, float threshold,
                   int64_t ndocs, int64_t k, int64_t lut_max_bytes, float* out_scores,
                   int64_t* out_pids, int64_t* out_count, bool* too_few) {
  *out_count = 0;
  *too_few = false;
  std::vector<int64_t> cands(static_cast<size_t>(std::min<int64_t>(ivf_offsets[C], n_docs)));
  std::vector<uint8_t> keep(static_cast<size_t>(C));
  int64_t m = 0;
  float cmax = -1.f;
  Status st = candidate_pids(cst, C, Lq, ncells, ivf, ivf_offsets, n_docs, cands.data(), &m,
                             keep.data(), threshold, &cmax);
  if (!st.ok()) return st;
  if (allowed) {
    int64_t w = 0;
    for (int64_t i = 0; i < m; ++i)
      if (allowed[cands[i]]) cands[w++] = cands[i];
    m = w;
  }
  if (m < k) {  // the caller probes more cells (or scores every passage)
    *too_few = true;
    return Status{};
  }
  std::vector<int64_t> survivors(static_cast<size_t>(std::min(ndocs, m)));
  int64_t n2 = 0;
  st = prune_candidates(cst, C, Lq, ivf, ivf_offsets, n_docs, cands.data(), m, threshold, ndocs,
                        survivors.data(), &n2, keep.data());
  if (!st.ok()) return st;
  const Passages ps{doc_offsets, n_docs, survivors.data(), n2};
  int64_t n_exact = 0;
  return maxsim_packed_topk(Q, Lq, dim, cst, C, codes, residuals, norms, N, bucket_weights, nbits,
                            ps, k, lut_max_bytes, out_scores, out_pids, out_count, &n_exact,
                            std::isfinite(cmax) ? cmax : -1.f);
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
