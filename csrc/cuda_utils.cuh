// Helpers of the CUDA kernels: launch shapes, 16-byte packs, warp and block sums, dispatch.
// Every launch runs on the current stream under a device guard and is checked; no kernel wrapper
// synchronises with the host, so steps using the ops can be captured in a CUDA graph.
#pragma once

#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <algorithm>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "ncs.h"

namespace pygan {
namespace cuda {

constexpr int kThreads = 256;
// Grid-stride loops cover any size; the grid itself stays far below CUDA's limits.
constexpr int64_t kMaxBlocks = 65535LL * 8;

inline unsigned blocks_for(int64_t work_items, int64_t items_per_block = kThreads) {
  return static_cast<unsigned>(std::clamp<int64_t>(ceil_div(work_items, items_per_block), 1, kMaxBlocks));
}

inline cudaStream_t stream() { return c10::cuda::getCurrentCUDAStream().stream(); }

// Elements of T in one 16-byte load or store.
template <typename T>
constexpr int pack_size() { return 16 / static_cast<int>(sizeof(T)); }

template <typename T>
struct alignas(16) Pack {
  T v[pack_size<T>()];
};

inline bool aligned16(const void* p) { return reinterpret_cast<std::uintptr_t>(p) % 16 == 0; }

// One pack in one 16-byte (or, for an 8-byte half pack, 8-byte) load or store. Copying a pack
// member by member lets the compiler split it into V scalar accesses (seen in the PTX for
// c10::Half when a loop is unswitched), so the bytes travel as one uint4 (uint2). Address packs
// with pack-pointer arithmetic (p + k, strides in packs): from a T* offset cast to Pack<T>*, the
// compiler has been seen to lose the 16-byte alignment and split the stores.
template <typename P>
using RawWordOf = std::conditional_t<sizeof(P) == 16, uint4, uint2>;

template <typename P>
__device__ __forceinline__ P load_vec(const P* p) {
  static_assert(sizeof(P) == 16 || sizeof(P) == 8, "a pack is 16 bytes, a half pack 8");
  const RawWordOf<P> raw = *reinterpret_cast<const RawWordOf<P>*>(p);
  P out;
  memcpy(&out, &raw, sizeof(out));
  return out;
}

template <typename P>
__device__ __forceinline__ void store_vec(P* p, const P& v) {
  static_assert(sizeof(P) == 16 || sizeof(P) == 8, "a pack is 16 bytes, a half pack 8");
  RawWordOf<P> raw;
  memcpy(&raw, &v, sizeof(raw));
  *reinterpret_cast<RawWordOf<P>*>(p) = raw;
}

template <typename T>
__device__ __forceinline__ Pack<T> load_pack(const Pack<T>* p) { return load_vec(p); }

template <typename T>
__device__ __forceinline__ void store_pack(Pack<T>* p, const Pack<T>& v) { store_vec(p, v); }

// True when every tensor is dense in one of the two standard layouts with t0's exact strides, so
// one memory offset addresses the same logical element in each.
inline bool same_dense_layout(std::initializer_list<const at::Tensor*> ts) {
  const at::Tensor& t0 = **ts.begin();
  const bool standard = t0.is_contiguous() ||
                        (t0.dim() == 4 && t0.is_contiguous(at::MemoryFormat::ChannelsLast));
  if (!standard) return false;
  for (const at::Tensor* t : ts) {
    if (t->strides() != t0.strides() || t->sizes() != t0.sizes()) return false;
  }
  return true;
}

// Dense tensors of one layout whose data are 16-byte aligned: the packed kernels can run.
inline bool packable(std::initializer_list<const at::Tensor*> ts) {
  if (!same_dense_layout(ts)) return false;
  for (const at::Tensor* t : ts) {
    if (!aligned16(t->const_data_ptr())) return false;
  }
  return true;
}

template <typename T>
__device__ __forceinline__ T warp_sum(T v) {
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}

__device__ __forceinline__ float rsqrt_acc(float v) { return rsqrtf(v); }
__device__ __forceinline__ double rsqrt_acc(double v) { return rsqrt(v); }
__device__ __forceinline__ float sqrt_acc(float v) { return sqrtf(v); }
__device__ __forceinline__ double sqrt_acc(double v) { return sqrt(v); }

// a 0-dim alpha/grad_loss: a device pointer when the tensor is on the GPU (read by the kernel, so
// nothing synchronises), else its value read on the host
template <typename acc_t>
struct DeviceScalar {
  const acc_t* ptr = nullptr;
  acc_t value = 0;
  __device__ __forceinline__ acc_t get() const { return ptr ? *ptr : value; }
};

template <typename acc_t>
DeviceScalar<acc_t> device_scalar(const at::Tensor& t, at::Tensor& keep_alive) {
  DeviceScalar<acc_t> s;
  if (t.is_cuda()) {
    keep_alive = t.to(c10::CppTypeToScalarType<acc_t>::value).contiguous();
    s.ptr = keep_alive.const_data_ptr<acc_t>();
  } else {
    s.value = static_cast<acc_t>(t.item<double>());
  }
  return s;
}

// The per-channel bias gradient sum_{n, s} dz from dx = scale * dz computed in float32 or float64:
// one deterministic ATen reduction, divided by scale, then cast to the op's dtype. Half-precision
// ops compute dx in float32 for this (see wants_float_bias_grad): a sum of the float16 products
// round(scale * dz) flushes towards zero with equalized-LR scales (~0.02), where the CPU and
// Triton kernels sum dz itself in float32.
inline at::Tensor bias_grad_from_dx(const at::Tensor& dx, double scale, at::ScalarType out_dtype) {
  TORCH_INTERNAL_ASSERT(dx.scalar_type() == at::kFloat || dx.scalar_type() == at::kDouble,
                        "bias_grad_from_dx needs dx in float32 or float64");
  std::vector<int64_t> dims{0};
  for (int64_t d = 2; d < dx.dim(); ++d) dims.push_back(d);
  return dx.sum(dims).mul_(1.0 / scale).to(out_dtype);
}

// A half-precision backward that also returns the bias gradient runs in float32 (inputs cast up,
// dx cast back down: the kernels compute in float32 for half types anyway, so dx has the same
// bits), so that the bias gradient sums float32 values.
inline bool wants_float_bias_grad(const at::Tensor& t, bool bias_grad) {
  return bias_grad && (t.scalar_type() == at::kHalf || t.scalar_type() == at::kBFloat16);
}

// Every tensor argument of a CUDA op must be on the first one's device: the dispatcher picks the
// CUDA kernel when any argument is a CUDA tensor, and a pointer into another device's (or the
// host's) memory would be an illegal memory access instead of an error. A null entry (an absent
// optional) is skipped; `cpu_scalar_ok` lets 0-dim CPU tensors through (read on the host).
struct NamedTensor {
  const char* name;
  const at::Tensor* t;
};

inline void check_same_device(const char* op, std::initializer_list<NamedTensor> ts, bool cpu_scalar_ok = false) {
  const NamedTensor& first = *ts.begin();
  TORCH_CHECK(first.t->is_cuda(), "pygan::", op, " (CUDA): ", first.name, " must be a CUDA tensor, got one on ",
              first.t->device());
  for (const NamedTensor& a : ts) {
    if (a.t == nullptr || !a.t->defined()) continue;
    if (cpu_scalar_ok && a.t->dim() == 0 && a.t->is_cpu()) continue;
    TORCH_CHECK(a.t->device() == first.t->device(), "pygan::", op, ": ", a.name, " is on ", a.t->device(), " but ",
                first.name, " is on ", first.t->device(), "; all tensor arguments must be on the same device");
  }
}

}  // namespace cuda
}  // namespace pygan

#define PYGAN_DISPATCH_FLOATING(TYPE, NAME, ...) \
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, TYPE, NAME, __VA_ARGS__)
