// colja CPU kernels: raw-pointer compute functions.
//
// kernels.cpp implements them (SIMD + at::parallel_for, light headers only);
// bindings.cpp checks tensors, allocates outputs and exposes them to Python.
// Every function returns a Status; bindings.cpp turns a non-OK status into a
// Python exception (the kernels never read or write out of bounds: indices
// coming from the caller are range-checked where they are used).
#pragma once

#include <cstdint>
#include <string>

namespace colja {

enum class StatusCode : int {
  kOk = 0,
  kCodeOutOfRange = 1,   // a centroid code is < 0 or >= C
  kPidOutOfRange = 2,    // a pid is < 0 or >= n_docs
  kBadOffsets = 3,       // doc_offsets not monotone / beyond N
};

struct Status {
  StatusCode code = StatusCode::kOk;
  int64_t where = 0;  // offending index (token row or pid)
  int64_t value = 0;  // offending value
  bool ok() const { return code == StatusCode::kOk; }
  std::string message() const;
};

// Which SIMD flavour this build uses: "avx512", "avx2" or "scalar".
const char* simd_name();

// The approximate scorer maxsim_packed_topk uses for nbits: "vnni" or "int8-nibble".
const char* approx_path(int nbits);

// Centroid storage: float32 or IEEE half (raw bits).
struct Centroids {
  const void* data = nullptr;
  bool half = false;
  int64_t C = 0;
};

struct Passages {
  const int64_t* offsets = nullptr;  // [n_docs + 1]
  int64_t n_docs = 0;
  const int64_t* pids = nullptr;  // [m]; nullptr means "all passages" (m = n_docs)
  int64_t m = 0;
};

// out (n x dim) receives normalised rows when non-null; norms (n) receives
// the pre-normalisation L2 norms when non-null.
Status decompress(const int32_t* codes, const uint8_t* residuals, int64_t n,
                  const Centroids& cent, int64_t dim, const float* bucket_weights,
                  int nbits, float* out, float* norms);

Status centroid_interaction(const float* cst, int64_t C, int64_t Lq,
                            const int32_t* codes, int64_t N, const Passages& ps,
                            const uint8_t* keep, float* out);

// PLAID stage 1: the top n cells (rows of cst, ties to the smaller index) of every
// query vector (column), then the sorted unique passage ids of their IVF lists.
// ivf_offsets has C + 1 entries; out receives the pids (capacity: sum of the
// selected lists' lengths, at most ivf_offsets[C]); *out_count their number.
// keep_out (C bytes, optional): 1 where the centroid scores >= threshold against some
// query vector (PLAID stage 2's pruning), found in the same pass over cst; abs_max_out
// (with keep_out): the largest |score|.
Status candidate_pids(const float* cst, int64_t C, int64_t Lq, int64_t n,
                      const int32_t* ivf, const int64_t* ivf_offsets, int64_t n_docs,
                      int64_t* out, int64_t* out_count, uint8_t* keep_out = nullptr,
                      float threshold = 0.f, float* abs_max_out = nullptr);

// Returns the number of results written to out_pids / out_scores (<= nfinal).
Status filter_candidates(const float* cst, int64_t C, int64_t Lq,
                         const int32_t* codes, int64_t N, const Passages& ps,
                         const uint8_t* keep, int64_t ndocs, int64_t nfinal,
                         int64_t* out_pids, float* out_scores, int64_t* out_count);

// PLAID stage 2 alone, read off the inverted file: keep = centroids scoring >=
// threshold against some query vector; a candidate's lane maxima are taken over
// the kept centroids whose IVF list holds it (= its tokens' kept centroids when
// the IVF is the index's); the top ndocs of pids (sorted, unique) by the summed
// maxima (score desc, pid asc), written to out_pids sorted ascending.
// keep (optional): the kept centroids, already known (then threshold is unused).
Status prune_candidates(const float* cst, int64_t C, int64_t Lq, const int32_t* ivf,
                        const int64_t* ivf_offsets, int64_t n_docs, const int64_t* pids,
                        int64_t m, float threshold, int64_t ndocs, int64_t* out_pids,
                        int64_t* out_count, const uint8_t* keep = nullptr);

// lut_max_bytes: LUT path when Lq_padded*P*256*4 <= lut_max_bytes, else the
// decompress-then-dot path (both give the same numbers up to rounding).
Status maxsim_packed(const float* Q, int64_t Lq, int64_t dim, const float* cst,
                     int64_t C, const int32_t* codes, const uint8_t* residuals,
                     const float* norms, int64_t N, const float* bucket_weights,
                     int nbits, const Passages& ps, int64_t lut_max_bytes,
                     float* out, bool* used_lut);

// Approximate MaxSim of ps from int16 tables with a proven error bound:
// |approx[i] - maxsim_packed[i]| <= bound[i]. *ok is false (nothing written)
// when the tables cannot represent this query.
Status maxsim_packed_bounds(const float* Q, int64_t Lq, int64_t dim, const float* cst,
                            int64_t C, const int32_t* codes, const uint8_t* residuals,
                            const float* norms, int64_t N, const float* bucket_weights,
                            int nbits, const Passages& ps, float* approx, float* bound,
                            bool* ok);

// The top min(k, m) of maxsim_packed over ps (score descending, ties to the
// smaller pid): exactly top_k(maxsim_packed(...)), computed by scoring exactly
// only the passages whose approximate upper bound reaches the k-th best lower
// bound (*n_exact of them). cmax_hint: max |cst| when the caller knows it (< 0: found here).
Status maxsim_packed_topk(const float* Q, int64_t Lq, int64_t dim, const float* cst,
                          int64_t C, const int32_t* codes, const uint8_t* residuals,
                          const float* norms, int64_t N, const float* bucket_weights,
                          int nbits, const Passages& ps, int64_t k, int64_t lut_max_bytes,
                          float* out_scores, int64_t* out_pids, int64_t* out_count,
                          int64_t* n_exact, float cmax_hint = -1.f);

// One PLAID search (stage 1, stage 2 from the IVF, exact top k through
// maxsim_packed_topk) given the query's centroid scores; allowed (n_docs bytes)
// may be null. *too_few: fewer than k candidates (nothing written; the caller
// widens the probe).
Status plaid_query(const float* Q, int64_t Lq, int64_t dim, const float* cst, int64_t C,
                   const int32_t* ivf, const int64_t* ivf_offsets, const int32_t* codes,
                   const uint8_t* residuals, const float* norms, int64_t N,
                   const float* bucket_weights, int nbits, const int64_t* doc_offsets,
                   int64_t n_docs, const uint8_t* allowed, int64_t ncells, float threshold,
                   int64_t ndocs, int64_t k, int64_t lut_max_bytes, float* out_scores,
                   int64_t* out_pids, int64_t* out_count, bool* too_few);

Status maxsim_dense(const float* Q, int64_t Lq, int64_t dim, const void* D,
                    bool d_half, int64_t N, const Passages& ps, float* out);

Status maxsim_decompress(const float* Q, int64_t Lq, int64_t dim,
                         const Centroids& cent, const int32_t* codes,
                         const uint8_t* residuals, int64_t N,
                         const float* bucket_weights, int nbits,
                         const Passages& ps, float* out);

}  // namespace colja
