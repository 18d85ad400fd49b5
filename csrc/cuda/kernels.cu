// colja CUDA kernels: residual decompression / norms, PLAID centroid
// interaction and fused decompress + MaxSim over candidate passages.
//
// Contracts are those of colja/kernels/__init__.py (the *_ref functions are the
// specification). Tensors arrive checked and contiguous from bindings.cpp.
// Every kernel guards its indices (codes, pids, offsets) and records the first
// bad one in a small device error buffer instead of faulting; the launcher
// reads it back and raises.
//
// Launches go to the current stream (c10::cuda::getCurrentCUDAStream, which is
// what at::cuda::getCurrentCUDAStream aliases) of the inputs' device.

#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <optional>
#include <string>

namespace colja_cuda {
namespace {

constexpr float kNormEps = 1e-12f;
constexpr float kMissing = -9999.0f;

// error buffer: [code, where, value]; code 1 = bad code, 2 = bad pid, 3 = bad offsets
__device__ inline void record_error(long long* err, long long code, long long where,
                                    long long value) {
  if (atomicCAS(reinterpret_cast<unsigned long long*>(err), 0ull,
                static_cast<unsigned long long>(code)) == 0ull) {
    err[1] = where;
    err[2] = value;
  }
}

__device__ inline float load_centroid(const float* c, long long i) { return c[i]; }
__device__ inline float load_centroid(const __half* c, long long i) { return __half2float(c[i]); }

// bucket of dimension j of a packed vector: bits LSB first, dims in order, packed MSB first
__device__ inline int bucket_at(const uint8_t* row, int j, int nbits) {
  const int bit0 = j * nbits;  // position of the bucket's bit 0 in the vector's bit stream
  const int byte = row[bit0 >> 3];
  int b = 0;
  for (int i = 0; i < nbits; ++i) b |= ((byte >> (7 - ((bit0 + i) & 7))) & 1) << i;
  return b;
}

__device__ inline float warp_sum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// Sum of v over the block (blockDim.x multiple of 32, <= 1024); result valid in thread 0.
__device__ inline float block_sum(float v, float* smem32) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  v = warp_sum(v);
  __syncthreads();  // smem32 may still be read by a previous call
  if (lane == 0) smem32[warp] = v;
  __syncthreads();
  const int nwarps = (blockDim.x + 31) >> 5;
  float s = 0.f;
  if (warp == 0) {
    s = lane < nwarps ? smem32[lane] : 0.f;
    s = warp_sum(s);
  }
  return s;
}

// ---------------------------------------------------------------------------
// decompress / norms: one warp per vector
// ---------------------------------------------------------------------------
template <typename CT>
__global__ void decompress_kernel(const int32_t* __restrict__ codes,
                                  const uint8_t* __restrict__ residuals,
                                  const CT* __restrict__ centroids,
                                  const float* __restrict__ bw, long long n, int dim, int P,
                                  int nbits, long long C, float* __restrict__ out,
                                  float* __restrict__ norms, long long* err) {
  const long long i =
      static_cast<long long>(blockIdx.x) * (blockDim.x >> 5) + (threadIdx.x >> 5);
  const int lane = threadIdx.x & 31;
  if (i >= n) return;
  const int c = codes[i];
  if (c < 0 || c >= C) {
    if (lane == 0) {
      record_error(err, 1, i, c);
      if (norms) norms[i] = 0.f;
    }
    if (out)
      for (int j = lane; j < dim; j += 32) out[i * dim + j] = 0.f;
    return;
  }
  const uint8_t* row = residuals + i * P;
  const long long cbase = static_cast<long long>(c) * dim;
  float ss = 0.f;
  for (int j = lane; j < dim; j += 32) {
    const float v = load_centroid(centroids, cbase + j) + bw[bucket_at(row, j, nbits)];
    ss += v * v;
  }
  ss = warp_sum(ss);
  const float nrm = sqrtf(ss);
  if (norms && lane == 0) norms[i] = nrm;
  if (out) {
    const float inv = 1.f / fmaxf(nrm, kNormEps);
    for (int j = lane; j < dim; j += 32)
      out[i * dim + j] =
          (load_centroid(centroids, cbase + j) + bw[bucket_at(row, j, nbits)]) * inv;
  }
}

// ---------------------------------------------------------------------------
// centroid interaction: one block per candidate, threads over query vectors
// ---------------------------------------------------------------------------
__global__ void centroid_interaction_kernel(const float* __restrict__ cst, long long C, int Lq,
                                            const int32_t* __restrict__ codes, long long N,
                                            const int64_t* __restrict__ offsets, long long n_docs,
                                            const int64_t* __restrict__ pids, long long m,
                                            const bool* __restrict__ keep,
                                            float* __restrict__ out, long long* err) {
  __shared__ float smem32[32];
  const long long i = blockIdx.x;
  if (i >= m) return;
  const long long pid = pids[i];
  bool ok = pid >= 0 && pid < n_docs;
  long long b = 0, e = 0;
  if (ok) {
    b = offsets[pid];
    e = offsets[pid + 1];
    ok = b >= 0 && e >= b && e <= N;
    if (!ok && threadIdx.x == 0) record_error(err, 3, pid, e < b ? e : b);
  } else if (threadIdx.x == 0) {
    record_error(err, 2, i, pid);
  }
  if (!ok) {  // uniform across the block
    if (threadIdx.x == 0) out[i] = 0.f;
    return;
  }
  float total = 0.f;
  for (int k = threadIdx.x; k < Lq; k += blockDim.x) {
    float mx = kMissing;
    for (long long t = b; t < e; ++t) {
      const int c = codes[t];
      if (c < 0 || c >= C) {
        if (k == threadIdx.x && threadIdx.x == 0) record_error(err, 1, t, c);
        continue;
      }
      if (keep != nullptr && !keep[c]) continue;
      mx = fmaxf(mx, cst[static_cast<long long>(c) * Lq + k]);
    }
    total += mx;
  }
  total = block_sum(total, smem32);
  if (threadIdx.x == 0) out[i] = total;
}

// ---------------------------------------------------------------------------
// maxsim_packed: one block per candidate. Tiles of TT tokens: the block
// decodes their residual values into shared memory, then each thread owns
// query vectors k (k = threadIdx.x + s*blockDim.x) and computes
//   (cst[code_t, k] + sum_j Qt[j, k] * r_t[j]) / norm_t
// with TT register accumulators, keeping a running max per k.
// ---------------------------------------------------------------------------
template <int TT>
__global__ void maxsim_packed_kernel(const float* __restrict__ Qt, int Lq, int dim,
                                     const float* __restrict__ cst, long long C,
                                     const int32_t* __restrict__ codes,
                                     const uint8_t* __restrict__ residuals,
                                     const float* __restrict__ norms, long long N,
                                     const float* __restrict__ bw, int nbits, int P,
                                     const int64_t* __restrict__ offsets, long long n_docs,
                                     const int64_t* __restrict__ pids, long long m,
                                     float* __restrict__ out, long long* err) {
  extern __shared__ float smem[];
  float* R = smem;                    // [TT][dim] residual values
  float* inv = R + TT * dim;          // [TT] 1 / norm
  int* code = reinterpret_cast<int*>(inv + TT);  // [TT] centroid code (-1: skip)
  __shared__ float smem32[32];

  const long long i = blockIdx.x;
  if (i >= m) return;
  const long long pid = pids[i];
  bool ok = pid >= 0 && pid < n_docs;
  long long b = 0, e = 0;
  if (ok) {
    b = offsets[pid];
    e = offsets[pid + 1];
    ok = b >= 0 && e >= b && e <= N;
    if (!ok && threadIdx.x == 0) record_error(err, 3, pid, e < b ? e : b);
  } else if (threadIdx.x == 0) {
    record_error(err, 2, i, pid);
  }
  if (!ok || b == e) {
    if (threadIdx.x == 0) out[i] = 0.f;
    return;
  }

  float total = 0.f;
  for (int k0 = 0; k0 < Lq; k0 += blockDim.x) {  // query slices (one when Lq <= blockDim)
    const int k = k0 + threadIdx.x;
    const bool active = k < Lq;
    float mx = -INFINITY;
    for (long long t0 = b; t0 < e; t0 += TT) {
      const int nt = static_cast<int>(min(static_cast<long long>(TT), e - t0));
      __syncthreads();  // previous tile fully consumed
      for (int idx = threadIdx.x; idx < nt * dim; idx += blockDim.x) {
        const int tt = idx / dim, j = idx - tt * dim;
        const uint8_t* row = residuals + (t0 + tt) * P;
        R[tt * dim + j] = bw[bucket_at(row, j, nbits)];
      }
      for (int tt = threadIdx.x; tt < nt; tt += blockDim.x) {
        const int c = codes[t0 + tt];
        const bool valid = c >= 0 && c < C;
        if (!valid && k0 == 0) record_error(err, 1, t0 + tt, c);
        code[tt] = valid ? c : -1;
        inv[tt] = 1.f / fmaxf(norms[t0 + tt], kNormEps);
      }
      __syncthreads();
      if (active) {
        float acc[TT];
#pragma unroll
        for (int tt = 0; tt < TT; ++tt) acc[tt] = 0.f;
        for (int j = 0; j < dim; ++j) {
          const float q = Qt[static_cast<long long>(j) * Lq + k];
          const float* rj = R + j;
#pragma unroll
          for (int tt = 0; tt < TT; ++tt) acc[tt] = fmaf(q, rj[tt * dim], acc[tt]);
        }
#pragma unroll
        for (int tt = 0; tt < TT; ++tt) {
          if (tt < nt && code[tt] >= 0) {
            const float s = (cst[static_cast<long long>(code[tt]) * Lq + k] + acc[tt]) * inv[tt];
            mx = fmaxf(mx, s);
          }
        }
      }
    }
    if (active) total += mx;
  }
  total = block_sum(total, smem32);
  if (threadIdx.x == 0) out[i] = total;
}

void raise_if_error(const at::Tensor& err) {
  const at::Tensor host = err.cpu();  // synchronises with the stream
  const int64_t* e = host.data_ptr<int64_t>();
  if (e[0] == 0) return;
  if (e[0] == 1)
    TORCH_CHECK_INDEX(false, "codes[", e[1], "] = ", e[2], " is out of range for the number of centroids");
  if (e[0] == 2)
    TORCH_CHECK_INDEX(false, "pids[", e[1], "] = ", e[2], " is out of range [0, n_docs)");
  TORCH_CHECK_VALUE(false, "doc_offsets is not a non-decreasing prefix sum within [0, N] at passage ",
                    e[1], " (offset value ", e[2], ")");
}

at::Tensor new_error(const at::Tensor& like) {
  return at::zeros({3}, like.options().dtype(at::kLong));
}

}  // namespace

// ---------------------------------------------------------------------------
// launchers (called from bindings.cpp with checked, contiguous CUDA tensors)
// ---------------------------------------------------------------------------
std::pair<at::Tensor, at::Tensor> decompress(const at::Tensor& codes, const at::Tensor& residuals,
                                             const at::Tensor& centroids, const at::Tensor& bw,
                                             int64_t nbits, bool want_vectors) {
  const c10::cuda::CUDAGuard guard(codes.device());
  const int64_t n = codes.size(0), dim = centroids.size(1), C = centroids.size(0);
  const int P = static_cast<int>(dim * nbits / 8);
  at::Tensor out, norms;
  if (want_vectors)
    out = at::empty({n, dim}, codes.options().dtype(at::kFloat));
  else
    norms = at::empty({n}, codes.options().dtype(at::kFloat));
  if (n == 0) return {out, norms};
  at::Tensor err = new_error(codes);
  const int threads = 256, per_block = threads / 32;
  const long long blocks = (n + per_block - 1) / per_block;
  cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  float* out_p = want_vectors ? out.data_ptr<float>() : nullptr;
  float* norms_p = want_vectors ? nullptr : norms.data_ptr<float>();
  if (centroids.scalar_type() == at::kHalf) {
    decompress_kernel<__half><<<static_cast<unsigned>(blocks), threads, 0, stream>>>(
        codes.data_ptr<int32_t>(), residuals.data_ptr<uint8_t>(),
        reinterpret_cast<const __half*>(centroids.data_ptr<at::Half>()), bw.data_ptr<float>(), n,
        static_cast<int>(dim), P, static_cast<int>(nbits), C, out_p, norms_p,
        reinterpret_cast<long long*>(err.data_ptr<int64_t>()));
  } else {
    decompress_kernel<float><<<static_cast<unsigned>(blocks), threads, 0, stream>>>(
        codes.data_ptr<int32_t>(), residuals.data_ptr<uint8_t>(), centroids.data_ptr<float>(),
        bw.data_ptr<float>(), n, static_cast<int>(dim), P, static_cast<int>(nbits), C, out_p,
        norms_p, reinterpret_cast<long long*>(err.data_ptr<int64_t>()));
  }
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  raise_if_error(err);
  return {out, norms};
}

at::Tensor centroid_interaction(const at::Tensor& cst, const at::Tensor& codes,
                                const at::Tensor& doc_offsets, const at::Tensor& pids,
                                const std::optional<at::Tensor>& keep) {
  const c10::cuda::CUDAGuard guard(cst.device());
  const int64_t m = pids.size(0), Lq = cst.size(1);
  at::Tensor out = at::empty({m}, cst.options());
  if (m == 0) return out;
  at::Tensor err = new_error(cst);
  int threads = static_cast<int>(((Lq + 31) / 32) * 32);
  threads = threads < 32 ? 32 : (threads > 512 ? 512 : threads);
  cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  centroid_interaction_kernel<<<static_cast<unsigned>(m), threads, 0, stream>>>(
      cst.data_ptr<float>(), cst.size(0), static_cast<int>(Lq), codes.data_ptr<int32_t>(),
      codes.size(0), doc_offsets.data_ptr<int64_t>(), doc_offsets.size(0) - 1,
      pids.data_ptr<int64_t>(), m, keep.has_value() ? keep->data_ptr<bool>() : nullptr,
      out.data_ptr<float>(), reinterpret_cast<long long*>(err.data_ptr<int64_t>()));
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  raise_if_error(err);
  return out;
}

at::Tensor maxsim_packed(const at::Tensor& Qt, const at::Tensor& cst, const at::Tensor& codes,
                         const at::Tensor& residuals, const at::Tensor& norms,
                         const at::Tensor& bw, int64_t nbits, const at::Tensor& doc_offsets,
                         const at::Tensor& pids) {
  const c10::cuda::CUDAGuard guard(cst.device());
  const int64_t dim = Qt.size(0), Lq = Qt.size(1), m = pids.size(0);
  at::Tensor out = at::empty({m}, cst.options());
  if (m == 0) return out;
  if (Lq == 0) return out.zero_();
  at::Tensor err = new_error(cst);
  int threads = static_cast<int>(((Lq + 31) / 32) * 32);
  threads = threads < 32 ? 32 : (threads > 256 ? 256 : threads);
  cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  const int P = static_cast<int>(dim * nbits / 8);
  auto launch = [&](auto tt_tag) {
    constexpr int TT = decltype(tt_tag)::value;
    const size_t smem = static_cast<size_t>(TT) * dim * sizeof(float) + TT * sizeof(float) +
                        TT * sizeof(int);
    if (smem > 48 * 1024) {
      C10_CUDA_CHECK(cudaFuncSetAttribute(maxsim_packed_kernel<TT>,
                                          cudaFuncAttributeMaxDynamicSharedMemorySize,
                                          static_cast<int>(smem)));
    }
    maxsim_packed_kernel<TT><<<static_cast<unsigned>(m), threads, smem, stream>>>(
        Qt.data_ptr<float>(), static_cast<int>(Lq), static_cast<int>(dim), cst.data_ptr<float>(),
        cst.size(0), codes.data_ptr<int32_t>(), residuals.data_ptr<uint8_t>(),
        norms.data_ptr<float>(), codes.size(0), bw.data_ptr<float>(), static_cast<int>(nbits), P,
        doc_offsets.data_ptr<int64_t>(), doc_offsets.size(0) - 1, pids.data_ptr<int64_t>(), m,
        out.data_ptr<float>(), reinterpret_cast<long long*>(err.data_ptr<int64_t>()));
  };
  TORCH_CHECK(dim <= 4096, "maxsim_packed (CUDA) supports dim <= 4096, found ", dim);
  if (dim <= 320)
    launch(std::integral_constant<int, 32>{});
  else
    launch(std::integral_constant<int, 8>{});
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  raise_if_error(err);
  return out;
}

}  // namespace colja_cuda
