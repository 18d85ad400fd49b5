// Python bindings of the colja CPU kernels: re-check every tensor argument
// (the Python layer already validated them with friendlier messages), allocate
// outputs, release the GIL and call the raw-pointer kernels in kernels.cpp.

#include <torch/extension.h>

#include <limits>
#include <optional>
#include <vector>
#include <tuple>

#include "colja_kernels.h"

namespace {

void check_tensor(const at::Tensor& t, const char* name, at::ScalarType dtype, int64_t ndim) {
  TORCH_CHECK(t.defined(), name, " must be a tensor");
  TORCH_CHECK(t.device().is_cpu(), name, " must be a CPU tensor, found device ", t.device());
  TORCH_CHECK(t.scalar_type() == dtype, name, " must have dtype ", dtype, ", found ",
              t.scalar_type());
  TORCH_CHECK(t.dim() == ndim, name, " must be ", ndim, "-D, found shape ", t.sizes());
  TORCH_CHECK(t.is_contiguous(), name, " must be contiguous");
}

void check_float_matrix(const at::Tensor& t, const char* name, bool allow_half) {
  TORCH_CHECK(t.defined(), name, " must be a tensor");
  TORCH_CHECK(t.device().is_cpu(), name, " must be a CPU tensor, found device ", t.device());
  TORCH_CHECK(t.scalar_type() == at::kFloat || (allow_half && t.scalar_type() == at::kHalf), name,
              " must have dtype float32", allow_half ? " or float16" : "", ", found ",
              t.scalar_type());
  TORCH_CHECK(t.dim() == 2, name, " must be 2-D, found shape ", t.sizes());
  TORCH_CHECK(t.is_contiguous(), name, " must be contiguous");
}

void check_nbits(int64_t nbits, int64_t dim) {
  TORCH_CHECK(nbits == 1 || nbits == 2 || nbits == 4, "nbits must be 1, 2 or 4, found ", nbits);
  TORCH_CHECK((dim * nbits) % 8 == 0, "dim * nbits must be a multiple of 8, found dim=", dim,
              " nbits=", nbits);
}

void raise_status(const colja::Status& s) {
  if (s.ok()) return;
  if (s.code == colja::StatusCode::kBadOffsets) {
    TORCH_CHECK_VALUE(false, s.message());
  }
  TORCH_CHECK_INDEX(false, s.message());
}

void check_passages(const at::Tensor& doc_offsets, const std::optional<at::Tensor>& pids) {
  check_tensor(doc_offsets, "doc_offsets", at::kLong, 1);
  TORCH_CHECK(doc_offsets.size(0) >= 1, "doc_offsets must have n_docs + 1 >= 1 entries");
  if (pids.has_value()) check_tensor(*pids, "pids", at::kLong, 1);
}

colja::Passages passages(const at::Tensor& doc_offsets, const std::optional<at::Tensor>& pids) {
  colja::Passages ps;
  ps.offsets = doc_offsets.data_ptr<int64_t>();
  ps.n_docs = doc_offsets.size(0) - 1;
  if (pids.has_value()) {
    ps.pids = pids->data_ptr<int64_t>();
    ps.m = pids->size(0);
  } else {
    ps.pids = nullptr;
    ps.m = ps.n_docs;
  }
  return ps;
}

colja::Centroids centroids_of(const at::Tensor& c) {
  colja::Centroids cent;
  cent.data = c.data_ptr();
  cent.half = c.scalar_type() == at::kHalf;
  cent.C = c.size(0);
  return cent;
}

void check_codec(const at::Tensor& codes, const at::Tensor& residuals,
                 const at::Tensor& bucket_weights, int64_t nbits, int64_t dim) {
  check_nbits(nbits, dim);
  check_tensor(codes, "codes", at::kInt, 1);
  check_tensor(residuals, "residuals", at::kByte, 2);
  check_tensor(bucket_weights, "bucket_weights", at::kFloat, 1);
  TORCH_CHECK(residuals.size(0) == codes.size(0), "residuals must have ", codes.size(0),
              " rows (one per code), found ", residuals.size(0));
  TORCH_CHECK(residuals.size(1) == dim * nbits / 8, "residuals must have P = dim*nbits/8 = ",
              dim * nbits / 8, " columns, found ", residuals.size(1));
  TORCH_CHECK(bucket_weights.size(0) == (int64_t{1} << nbits), "bucket_weights must have 2^nbits = ",
              int64_t{1} << nbits, " entries, found ", bucket_weights.size(0));
}

std::pair<at::Tensor, at::Tensor> decompress_impl(const at::Tensor& codes,
                                                  const at::Tensor& residuals,
                                                  const at::Tensor& centroids,
                                                  const at::Tensor& bucket_weights, int64_t nbits,
                                                  bool want_vectors) {
  check_float_matrix(centroids, "centroids", true);
  const int64_t dim = centroids.size(1);
  check_codec(codes, residuals, bucket_weights, nbits, dim);
  const int64_t n = codes.size(0);
  at::Tensor out, norms;
  if (want_vectors)
    out = at::empty({n, dim}, codes.options().dtype(at::kFloat));
  else
    norms = at::empty({n}, codes.options().dtype(at::kFloat));
  raise_status(colja::decompress(codes.data_ptr<int32_t>(), residuals.data_ptr<uint8_t>(), n,
                                 centroids_of(centroids), dim, bucket_weights.data_ptr<float>(),
                                 static_cast<int>(nbits),
                                 want_vectors ? out.data_ptr<float>() : nullptr,
                                 want_vectors ? nullptr : norms.data_ptr<float>()));
  return {out, norms};
}

at::Tensor decompress_residuals(const at::Tensor& codes, const at::Tensor& residuals,
                                const at::Tensor& centroids, const at::Tensor& bucket_weights,
                                int64_t nbits) {
  return decompress_impl(codes, residuals, centroids, bucket_weights, nbits, true).first;
}

at::Tensor vector_norms(const at::Tensor& codes, const at::Tensor& residuals,
                        const at::Tensor& centroids, const at::Tensor& bucket_weights,
                        int64_t nbits) {
  return decompress_impl(codes, residuals, centroids, bucket_weights, nbits, false).second;
}

void check_cst(const at::Tensor& cst, const at::Tensor& codes,
               const std::optional<at::Tensor>& keep) {
  check_tensor(cst, "centroid_scores_t", at::kFloat, 2);
  check_tensor(codes, "codes", at::kInt, 1);
  if (keep.has_value()) {
    check_tensor(*keep, "keep", at::kBool, 1);
    TORCH_CHECK(keep->size(0) == cst.size(0), "keep must have C = ", cst.size(0),
                " entries, found ", keep->size(0));
  }
}

at::Tensor centroid_interaction(const at::Tensor& cst, const at::Tensor& codes,
                                const at::Tensor& doc_offsets, const at::Tensor& pids,
                                const std::optional<at::Tensor>& keep) {
  check_cst(cst, codes, keep);
  check_passages(doc_offsets, pids);
  const colja::Passages ps = passages(doc_offsets, pids);
  at::Tensor out = at::empty({ps.m}, cst.options());
  const uint8_t* k = keep.has_value() ? reinterpret_cast<const uint8_t*>(keep->data_ptr<bool>())
                                      : nullptr;
  raise_status(colja::centroid_interaction(cst.data_ptr<float>(), cst.size(0), cst.size(1),
                                           codes.data_ptr<int32_t>(), codes.size(0), ps, k,
                                           out.data_ptr<float>()));
  return out;
}

at::Tensor candidate_pids(const at::Tensor& cst, int64_t ncells, const at::Tensor& ivf,
                          const at::Tensor& ivf_offsets, int64_t n_docs) {
  check_tensor(cst, "centroid_scores_t", at::kFloat, 2);
  check_tensor(ivf, "ivf", at::kInt, 1);
  check_tensor(ivf_offsets, "ivf_offsets", at::kLong, 1);
  TORCH_CHECK(ivf_offsets.size(0) == cst.size(0) + 1, "ivf_offsets must have C + 1 = ", cst.size(0) + 1,
              " entries, found ", ivf_offsets.size(0));
  TORCH_CHECK(ncells >= 0, "ncells must be >= 0, found ", ncells);
  TORCH_CHECK(n_docs >= 0, "n_docs must be >= 0, found ", n_docs);
  const int64_t C = cst.size(0);
  const int64_t* off = ivf_offsets.data_ptr<int64_t>();
  TORCH_CHECK(C == 0 || (off[0] == 0 && off[C] == ivf.size(0)),
              "ivf_offsets must start at 0 and end at len(ivf) = ", ivf.size(0));
  at::Tensor out = at::empty({std::min<int64_t>(ivf.size(0), n_docs)}, ivf_offsets.options());
  int64_t count = 0;
  raise_status(colja::candidate_pids(cst.data_ptr<float>(), C, cst.size(1), ncells, ivf.data_ptr<int32_t>(),
                                     off, n_docs, out.data_ptr<int64_t>(), &count));
  return out.narrow(0, 0, count);
}

std::tuple<at::Tensor, at::Tensor> filter_candidates(const at::Tensor& cst,
                                                     const at::Tensor& codes,
                                                     const at::Tensor& doc_offsets,
                                                     const at::Tensor& pids,
                                                     const std::optional<at::Tensor>& keep,
                                                     int64_t ndocs, int64_t nfinal) {
  check_cst(cst, codes, keep);
  check_passages(doc_offsets, pids);
  TORCH_CHECK(ndocs >= 0, "ndocs must be >= 0, found ", ndocs);
  TORCH_CHECK(nfinal >= 0, "nfinal must be >= 0, found ", nfinal);
  const colja::Passages ps = passages(doc_offsets, pids);
  const int64_t cap = std::max<int64_t>(0, std::min({nfinal, ndocs, ps.m}));
  at::Tensor out_pids = at::empty({cap}, pids.options());
  at::Tensor out_scores = at::empty({cap}, cst.options());
  const uint8_t* k = keep.has_value() ? reinterpret_cast<const uint8_t*>(keep->data_ptr<bool>())
                                      : nullptr;
  int64_t count = 0;
  raise_status(colja::filter_candidates(cst.data_ptr<float>(), cst.size(0), cst.size(1),
                                        codes.data_ptr<int32_t>(), codes.size(0), ps, k, ndocs,
                                        nfinal, out_pids.data_ptr<int64_t>(),
                                        out_scores.data_ptr<float>(), &count));
  if (count < cap) {
    out_pids = out_pids.narrow(0, 0, count);
    out_scores = out_scores.narrow(0, 0, count);
  }
  return {out_pids, out_scores};
}

at::Tensor prune_candidates(const at::Tensor& cst, const at::Tensor& ivf,
                            const at::Tensor& ivf_offsets, const at::Tensor& pids, int64_t n_docs,
                            double threshold, int64_t ndocs) {
  check_tensor(cst, "centroid_scores_t", at::kFloat, 2);
  check_tensor(ivf, "ivf", at::kInt, 1);
  check_tensor(ivf_offsets, "ivf_offsets", at::kLong, 1);
  check_tensor(pids, "pids", at::kLong, 1);
  const int64_t C = cst.size(0);
  TORCH_CHECK(ivf_offsets.size(0) == C + 1, "ivf_offsets must have C + 1 = ", C + 1,
              " entries, found ", ivf_offsets.size(0));
  const int64_t* off = ivf_offsets.data_ptr<int64_t>();
  TORCH_CHECK(C == 0 || (off[0] == 0 && off[C] == ivf.size(0)),
              "ivf_offsets must start at 0 and end at len(ivf) = ", ivf.size(0));
  TORCH_CHECK(ndocs >= 0, "ndocs must be >= 0, found ", ndocs);
  TORCH_CHECK(n_docs >= 0, "n_docs must be >= 0, found ", n_docs);
  at::Tensor out = at::empty({std::min(ndocs, pids.size(0))}, pids.options());
  int64_t count = 0;
  raise_status(colja::prune_candidates(cst.data_ptr<float>(), C, cst.size(1), ivf.data_ptr<int32_t>(),
                                       off, n_docs, pids.data_ptr<int64_t>(), pids.size(0),
                                       static_cast<float>(threshold), ndocs, out.data_ptr<int64_t>(),
                                       &count));
  return out.narrow(0, 0, count);
}

at::Tensor maxsim_packed(const at::Tensor& Q, const at::Tensor& cst, const at::Tensor& codes,
                         const at::Tensor& residuals, const at::Tensor& norms,
                         const at::Tensor& bucket_weights, int64_t nbits,
                         const at::Tensor& doc_offsets, const at::Tensor& pids,
                         int64_t lut_max_bytes) {
  check_tensor(Q, "Q", at::kFloat, 2);
  const int64_t Lq = Q.size(0), dim = Q.size(1);
  check_cst(cst, codes, std::nullopt);
  TORCH_CHECK(cst.size(1) == Lq, "centroid_scores_t must have Lq = ", Lq, " columns, found ",
              cst.size(1));
  check_codec(codes, residuals, bucket_weights, nbits, dim);
  check_tensor(norms, "norms", at::kFloat, 1);
  TORCH_CHECK(norms.size(0) == codes.size(0), "norms must have ", codes.size(0),
              " entries, found ", norms.size(0));
  check_passages(doc_offsets, pids);
  const colja::Passages ps = passages(doc_offsets, pids);
  at::Tensor out = at::empty({ps.m}, Q.options());
  bool used_lut = false;
  raise_status(colja::maxsim_packed(
      Q.data_ptr<float>(), Lq, dim, cst.data_ptr<float>(), cst.size(0),
      codes.data_ptr<int32_t>(), residuals.data_ptr<uint8_t>(), norms.data_ptr<float>(),
      codes.size(0), bucket_weights.data_ptr<float>(), static_cast<int>(nbits), ps,
      lut_max_bytes, out.data_ptr<float>(), &used_lut));
  return out;
}

void check_packed(const at::Tensor& Q, const at::Tensor& cst, const at::Tensor& codes,
                  const at::Tensor& residuals, const at::Tensor& norms,
                  const at::Tensor& bucket_weights, int64_t nbits) {
  check_tensor(Q, "Q", at::kFloat, 2);
  check_cst(cst, codes, std::nullopt);
  TORCH_CHECK(cst.size(1) == Q.size(0), "centroid_scores_t must have Lq = ", Q.size(0),
              " columns, found ", cst.size(1));
  check_codec(codes, residuals, bucket_weights, nbits, Q.size(1));
  check_tensor(norms, "norms", at::kFloat, 1);
  TORCH_CHECK(norms.size(0) == codes.size(0), "norms must have ", codes.size(0),
              " entries, found ", norms.size(0));
}

std::tuple<at::Tensor, at::Tensor, bool> maxsim_packed_bounds(
    const at::Tensor& Q, const at::Tensor& cst, const at::Tensor& codes, const at::Tensor& residuals,
    const at::Tensor& norms, const at::Tensor& bucket_weights, int64_t nbits,
    const at::Tensor& doc_offsets, const at::Tensor& pids) {
  check_packed(Q, cst, codes, residuals, norms, bucket_weights, nbits);
  check_passages(doc_offsets, pids);
  const colja::Passages ps = passages(doc_offsets, pids);
  at::Tensor approx = at::zeros({ps.m}, Q.options());
  at::Tensor bound = at::zeros({ps.m}, Q.options());
  bool ok = false;
  raise_status(colja::maxsim_packed_bounds(
      Q.data_ptr<float>(), Q.size(0), Q.size(1), cst.data_ptr<float>(), cst.size(0),
      codes.data_ptr<int32_t>(), residuals.data_ptr<uint8_t>(), norms.data_ptr<float>(),
      codes.size(0), bucket_weights.data_ptr<float>(), static_cast<int>(nbits), ps,
      approx.data_ptr<float>(), bound.data_ptr<float>(), &ok));
  return {approx, bound, ok};
}

std::tuple<at::Tensor, at::Tensor, int64_t> maxsim_packed_topk(
    const at::Tensor& Q, const at::Tensor& cst, const at::Tensor& codes, const at::Tensor& residuals,
    const at::Tensor& norms, const at::Tensor& bucket_weights, int64_t nbits,
    const at::Tensor& doc_offsets, const at::Tensor& pids, int64_t k, int64_t lut_max_bytes) {
  check_packed(Q, cst, codes, residuals, norms, bucket_weights, nbits);
  check_passages(doc_offsets, pids);
  TORCH_CHECK(k >= 0, "k must be >= 0, found ", k);
  const colja::Passages ps = passages(doc_offsets, pids);
  const int64_t cap = std::min(k, ps.m);
  at::Tensor scores = at::empty({cap}, Q.options());
  at::Tensor out_pids = at::empty({cap}, pids.options());
  int64_t count = 0, n_exact = 0;
  raise_status(colja::maxsim_packed_topk(
      Q.data_ptr<float>(), Q.size(0), Q.size(1), cst.data_ptr<float>(), cst.size(0),
      codes.data_ptr<int32_t>(), residuals.data_ptr<uint8_t>(), norms.data_ptr<float>(),
      codes.size(0), bucket_weights.data_ptr<float>(), static_cast<int>(nbits), ps, k,
      lut_max_bytes, scores.data_ptr<float>(), out_pids.data_ptr<int64_t>(), &count, &n_exact));
  if (count < cap) {
    scores = scores.narrow(0, 0, count);
    out_pids = out_pids.narrow(0, 0, count);
  }
  return {scores, out_pids, n_exact};
}

// PLAID searches of several queries, one per thread of the intra-op pool (the
// kernels inside run single-threaded there): Q and cst are lists of [Lq, dim] and
// [C, Lq] tensors. Returns scores [n, k] (-inf padded), pids [n, k] (-1 padded) and a
// bool [n]: true where a query had fewer than k candidates (not searched).
std::tuple<at::Tensor, at::Tensor, at::Tensor> plaid_search_batch(
    const std::vector<at::Tensor>& Qs, const std::vector<at::Tensor>& csts, const at::Tensor& ivf,
    const at::Tensor& ivf_offsets, const at::Tensor& codes, const at::Tensor& residuals,
    const at::Tensor& norms, const at::Tensor& bucket_weights, int64_t nbits,
    const at::Tensor& doc_offsets, const std::optional<at::Tensor>& allowed, int64_t ncells,
    double threshold, int64_t ndocs, int64_t k, int64_t lut_max_bytes) {
  const int64_t n = static_cast<int64_t>(Qs.size());
  TORCH_CHECK(static_cast<int64_t>(csts.size()) == n, "one centroid score matrix per query");
  TORCH_CHECK(k >= 1 && ncells >= 1 && ndocs >= 1, "k, ncells and ndocs must be >= 1");
  check_tensor(ivf, "ivf", at::kInt, 1);
  check_tensor(ivf_offsets, "ivf_offsets", at::kLong, 1);
  check_passages(doc_offsets, std::nullopt);
  const int64_t n_docs = doc_offsets.size(0) - 1;
  for (int64_t i = 0; i < n; ++i) {
    check_packed(Qs[i], csts[i], codes, residuals, norms, bucket_weights, nbits);
    TORCH_CHECK(ivf_offsets.size(0) == csts[i].size(0) + 1, "ivf_offsets must have C + 1 entries");
  }
  const int64_t C = ivf_offsets.size(0) - 1;
  const int64_t* off = ivf_offsets.data_ptr<int64_t>();
  TORCH_CHECK(C == 0 || (off[0] == 0 && off[C] == ivf.size(0)),
              "ivf_offsets must start at 0 and end at len(ivf) = ", ivf.size(0));
  const uint8_t* allow = nullptr;
  if (allowed.has_value()) {
    check_tensor(*allowed, "allowed", at::kBool, 1);
    TORCH_CHECK(allowed->size(0) == n_docs, "allowed must have one entry per passage");
    allow = reinterpret_cast<const uint8_t*>(allowed->data_ptr<bool>());
  }
  at::Tensor scores = at::full({n, k}, -std::numeric_limits<float>::infinity(), at::kFloat);
  at::Tensor pids = at::full({n, k}, -1, at::kLong);
  at::Tensor too_few = at::zeros({n}, at::kBool);
  std::vector<colja::Status> status(static_cast<size_t>(n));
  at::parallel_for(0, n, 1, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) {
      int64_t count = 0;
      bool few = false;
      status[i] = colja::plaid_query(
          Qs[i].data_ptr<float>(), Qs[i].size(0), Qs[i].size(1), csts[i].data_ptr<float>(), C,
          ivf.data_ptr<int32_t>(), off, codes.data_ptr<int32_t>(), residuals.data_ptr<uint8_t>(),
          norms.data_ptr<float>(), codes.size(0), bucket_weights.data_ptr<float>(),
          static_cast<int>(nbits), doc_offsets.data_ptr<int64_t>(), n_docs, allow, ncells,
          static_cast<float>(threshold), ndocs, k, lut_max_bytes, scores.data_ptr<float>() + i * k,
          pids.data_ptr<int64_t>() + i * k, &count, &few);
      too_few.data_ptr<bool>()[i] = few;
    }
  });
  for (const auto& st : status) raise_status(st);
  return {scores, pids, too_few};
}

at::Tensor maxsim_dense(const at::Tensor& Q, const at::Tensor& D, const at::Tensor& doc_offsets,
                        const std::optional<at::Tensor>& pids) {
  check_tensor(Q, "Q", at::kFloat, 2);
  check_float_matrix(D, "D", true);
  TORCH_CHECK(D.size(1) == Q.size(1), "D must have dim = ", Q.size(1), " columns, found ",
              D.size(1));
  check_passages(doc_offsets, pids);
  const colja::Passages ps = passages(doc_offsets, pids);
  at::Tensor out = at::empty({ps.m}, Q.options());
  raise_status(colja::maxsim_dense(Q.data_ptr<float>(), Q.size(0), Q.size(1), D.data_ptr(),
                                   D.scalar_type() == at::kHalf, D.size(0), ps,
                                   out.data_ptr<float>()));
  return out;
}

at::Tensor maxsim_decompress(const at::Tensor& Q, const at::Tensor& codes,
                             const at::Tensor& residuals, const at::Tensor& centroids,
                             const at::Tensor& bucket_weights, int64_t nbits,
                             const at::Tensor& doc_offsets, const at::Tensor& pids) {
  check_tensor(Q, "Q", at::kFloat, 2);
  check_float_matrix(centroids, "centroids", true);
  TORCH_CHECK(centroids.size(1) == Q.size(1), "centroids must have dim = ", Q.size(1),
              " columns, found ", centroids.size(1));
  check_codec(codes, residuals, bucket_weights, nbits, Q.size(1));
  check_passages(doc_offsets, pids);
  const colja::Passages ps = passages(doc_offsets, pids);
  at::Tensor out = at::empty({ps.m}, Q.options());
  raise_status(colja::maxsim_decompress(
      Q.data_ptr<float>(), Q.size(0), Q.size(1), centroids_of(centroids),
      codes.data_ptr<int32_t>(), residuals.data_ptr<uint8_t>(), codes.size(0),
      bucket_weights.data_ptr<float>(), static_cast<int>(nbits), ps, out.data_ptr<float>()));
  return out;
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "colja CPU kernels (see colja.kernels for the documented Python API)";
  using rel = py::call_guard<py::gil_scoped_release>;
  m.def("simd", []() { return std::string(colja::simd_name()); });
  m.def("approx_path", [](int64_t nbits) { return std::string(colja::approx_path(static_cast<int>(nbits))); },
        py::arg("nbits") = 2);
  m.def("decompress_residuals", &decompress_residuals, rel(), py::arg("codes"),
        py::arg("residuals"), py::arg("centroids"), py::arg("bucket_weights"), py::arg("nbits"));
  m.def("vector_norms", &vector_norms, rel(), py::arg("codes"), py::arg("residuals"),
        py::arg("centroids"), py::arg("bucket_weights"), py::arg("nbits"));
  m.def("centroid_interaction", &centroid_interaction, rel(), py::arg("centroid_scores_t"),
        py::arg("codes"), py::arg("doc_offsets"), py::arg("pids"), py::arg("keep"));
  m.def("candidate_pids", &candidate_pids, rel(), py::arg("centroid_scores_t"), py::arg("ncells"),
        py::arg("ivf"), py::arg("ivf_offsets"), py::arg("n_docs"));
  m.def("filter_candidates", &filter_candidates, rel(), py::arg("centroid_scores_t"),
        py::arg("codes"), py::arg("doc_offsets"), py::arg("pids"), py::arg("keep"),
        py::arg("ndocs"), py::arg("nfinal"));
  m.def("prune_candidates", &prune_candidates, rel(), py::arg("centroid_scores_t"), py::arg("ivf"),
        py::arg("ivf_offsets"), py::arg("pids"), py::arg("n_docs"), py::arg("threshold"), py::arg("ndocs"));
  m.def("maxsim_packed", &maxsim_packed, rel(), py::arg("Q"), py::arg("centroid_scores_t"),
        py::arg("codes"), py::arg("residuals"), py::arg("norms"), py::arg("bucket_weights"),
        py::arg("nbits"), py::arg("doc_offsets"), py::arg("pids"), py::arg("lut_max_bytes"));
  m.def("maxsim_packed_bounds", &maxsim_packed_bounds, rel(), py::arg("Q"), py::arg("centroid_scores_t"),
        py::arg("codes"), py::arg("residuals"), py::arg("norms"), py::arg("bucket_weights"),
        py::arg("nbits"), py::arg("doc_offsets"), py::arg("pids"));
  m.def("maxsim_packed_topk", &maxsim_packed_topk, rel(), py::arg("Q"), py::arg("centroid_scores_t"),
        py::arg("codes"), py::arg("residuals"), py::arg("norms"), py::arg("bucket_weights"),
        py::arg("nbits"), py::arg("doc_offsets"), py::arg("pids"), py::arg("k"),
        py::arg("lut_max_bytes"));
  m.def("plaid_search_batch", &plaid_search_batch, rel(), py::arg("Q"), py::arg("centroid_scores_t"),
        py::arg("ivf"), py::arg("ivf_offsets"), py::arg("codes"), py::arg("residuals"), py::arg("norms"),
        py::arg("bucket_weights"), py::arg("nbits"), py::arg("doc_offsets"), py::arg("allowed"),
        py::arg("ncells"), py::arg("threshold"), py::arg("ndocs"), py::arg("k"), py::arg("lut_max_bytes"));
  m.def("maxsim_dense", &maxsim_dense, rel(), py::arg("Q"), py::arg("D"), py::arg("doc_offsets"),
        py::arg("pids"));
  m.def("maxsim_decompress", &maxsim_decompress, rel(), py::arg("Q"), py::arg("codes"),
        py::arg("residuals"), py::arg("centroids"), py::arg("bucket_weights"), py::arg("nbits"),
        py::arg("doc_offsets"), py::arg("pids"));
}
