// Python bindings of the colja CUDA kernels (kernels.cu): re-check the tensor
// arguments, then launch on the inputs' device and current stream.

#include <torch/extension.h>

#include <optional>
#include <utility>

namespace colja_cuda {
std::pair<at::Tensor, at::Tensor> decompress(const at::Tensor& codes, const at::Tensor& residuals,
                                             const at::Tensor& centroids, const at::Tensor& bw,
                                             int64_t nbits, bool want_vectors);
at::Tensor centroid_interaction(const at::Tensor& cst, const at::Tensor& codes,
                                const at::Tensor& doc_offsets, const at::Tensor& pids,
                                const std::optional<at::Tensor>& keep);
at::Tensor maxsim_packed(const at::Tensor& Qt, const at::Tensor& cst, const at::Tensor& codes,
                         const at::Tensor& residuals, const at::Tensor& norms,
                         const at::Tensor& bw, int64_t nbits, const at::Tensor& doc_offsets,
                         const at::Tensor& pids);
}  // namespace colja_cuda

namespace {

void check(const at::Tensor& t, const char* name, at::ScalarType dtype, int64_t ndim,
           const at::Device& device) {
  TORCH_CHECK(t.defined(), name, " must be a tensor");
  TORCH_CHECK(t.device() == device, name, " must be on ", device, ", found ", t.device());
  TORCH_CHECK(t.scalar_type() == dtype, name, " must have dtype ", dtype, ", found ",
              t.scalar_type());
  TORCH_CHECK(t.dim() == ndim, name, " must be ", ndim, "-D, found shape ", t.sizes());
  TORCH_CHECK(t.is_contiguous(), name, " must be contiguous");
}

void check_codec(const at::Tensor& codes, const at::Tensor& residuals, const at::Tensor& bw,
                 int64_t nbits, int64_t dim, const at::Device& dev) {
  TORCH_CHECK(nbits == 1 || nbits == 2 || nbits == 4, "nbits must be 1, 2 or 4, found ", nbits);
  TORCH_CHECK((dim * nbits) % 8 == 0, "dim * nbits must be a multiple of 8");
  check(codes, "codes", at::kInt, 1, dev);
  check(residuals, "residuals", at::kByte, 2, dev);
  check(bw, "bucket_weights", at::kFloat, 1, dev);
  TORCH_CHECK(residuals.size(0) == codes.size(0), "residuals must have one row per code");
  TORCH_CHECK(residuals.size(1) == dim * nbits / 8, "residuals must have dim*nbits/8 columns");
  TORCH_CHECK(bw.size(0) == (int64_t{1} << nbits), "bucket_weights must have 2^nbits entries");
}

std::pair<at::Tensor, at::Tensor> decompress_checked(const at::Tensor& codes,
                                                     const at::Tensor& residuals,
                                                     const at::Tensor& centroids,
                                                     const at::Tensor& bw, int64_t nbits,
                                                     bool want_vectors) {
  TORCH_CHECK(centroids.is_cuda(), "centroids must be a CUDA tensor");
  TORCH_CHECK(centroids.scalar_type() == at::kFloat || centroids.scalar_type() == at::kHalf,
              "centroids must be float32 or float16");
  TORCH_CHECK(centroids.dim() == 2 && centroids.is_contiguous(),
              "centroids must be a contiguous [C, dim] tensor");
  check_codec(codes, residuals, bw, nbits, centroids.size(1), centroids.device());
  return colja_cuda::decompress(codes, residuals, centroids, bw, nbits, want_vectors);
}

at::Tensor decompress_residuals(const at::Tensor& codes, const at::Tensor& residuals,
                                const at::Tensor& centroids, const at::Tensor& bw,
                                int64_t nbits) {
  return decompress_checked(codes, residuals, centroids, bw, nbits, true).first;
}

at::Tensor vector_norms(const at::Tensor& codes, const at::Tensor& residuals,
                        const at::Tensor& centroids, const at::Tensor& bw, int64_t nbits) {
  return decompress_checked(codes, residuals, centroids, bw, nbits, false).second;
}

void check_passages(const at::Tensor& doc_offsets, const at::Tensor& pids, const at::Device& dev) {
  check(doc_offsets, "doc_offsets", at::kLong, 1, dev);
  TORCH_CHECK(doc_offsets.size(0) >= 1, "doc_offsets must have n_docs + 1 >= 1 entries");
  check(pids, "pids", at::kLong, 1, dev);
}

at::Tensor centroid_interaction(const at::Tensor& cst, const at::Tensor& codes,
                                const at::Tensor& doc_offsets, const at::Tensor& pids,
                                const std::optional<at::Tensor>& keep) {
  TORCH_CHECK(cst.is_cuda(), "centroid_scores_t must be a CUDA tensor");
  const at::Device dev = cst.device();
  check(cst, "centroid_scores_t", at::kFloat, 2, dev);
  check(codes, "codes", at::kInt, 1, dev);
  check_passages(doc_offsets, pids, dev);
  if (keep.has_value()) {
    check(*keep, "keep", at::kBool, 1, dev);
    TORCH_CHECK(keep->size(0) == cst.size(0), "keep must have C entries");
  }
  return colja_cuda::centroid_interaction(cst, codes, doc_offsets, pids, keep);
}

at::Tensor maxsim_packed(const at::Tensor& Q, const at::Tensor& cst, const at::Tensor& codes,
                         const at::Tensor& residuals, const at::Tensor& norms,
                         const at::Tensor& bw, int64_t nbits, const at::Tensor& doc_offsets,
                         const at::Tensor& pids) {
  TORCH_CHECK(Q.is_cuda(), "Q must be a CUDA tensor");
  const at::Device dev = Q.device();
  check(Q, "Q", at::kFloat, 2, dev);
  check(cst, "centroid_scores_t", at::kFloat, 2, dev);
  TORCH_CHECK(cst.size(1) == Q.size(0), "centroid_scores_t must have Lq columns");
  check_codec(codes, residuals, bw, nbits, Q.size(1), dev);
  check(norms, "norms", at::kFloat, 1, dev);
  TORCH_CHECK(norms.size(0) == codes.size(0), "norms must have one entry per code");
  check_passages(doc_offsets, pids, dev);
  const at::Tensor Qt = Q.t().contiguous();  // [dim, Lq]: coalesced reads over k
  return colja_cuda::maxsim_packed(Qt, cst, codes, residuals, norms, bw, nbits, doc_offsets, pids);
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "colja CUDA kernels (see colja.kernels for the documented Python API)";
  using rel = py::call_guard<py::gil_scoped_release>;
  m.def("simd", []() { return std::string("cuda"); });
  m.def("decompress_residuals", &decompress_residuals, rel());
  m.def("vector_norms", &vector_norms, rel());
  m.def("centroid_interaction", &centroid_interaction, rel());
  m.def("maxsim_packed", &maxsim_packed, rel());
}
