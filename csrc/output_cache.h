// Recycled CPU output buffers (the CPU counterpart of PyTorch's CUDA caching allocator, for the
// outputs of pygan's CPU kernels only).
//
// Why: every op output is a new tensor. glibc maps each block over 32 MiB afresh (smaller ones
// too once its heap has shrunk) and returns it to the OS when the tensor dies, so the kernel's
// first write to every 4 KiB page of the next step's output traps into the OS again, which zeroes
// and maps it. On the README's 2-core VM that costs ~11 ms per 32 MiB (the benchmarks print it),
// more than the kernels' own work: at (4, 128, 128, 128) fp32, x + IN forward + backward took
// ~26 ms, of which ~16 ms were page faults on its two outputs. A training loop asks for the same
// output sizes every step, so a freed output buffer is kept (up to a byte limit) and handed to
// the next output of exactly that size, whose pages are then already mapped.
//
// output_like(x): at::empty_like(x) (same sizes and, as torch.empty_like's preserve_format,
// x's strides when x is dense, else its suggested memory format), with its storage from the
// cache when x is a CPU tensor of at least kRecycleMinBytes and the cache is enabled. Such a
// tensor behaves as any other (resize_, share_memory_, serialisation); its storage goes back to
// the cache when it dies, or to the OS when that would take the cache over its limit.
//
// Limit: PYGAN_CPU_CACHE_MB (read once, when the cache is first used; default 512, 0 disables), or
// set_limit() at run time. Python: pygan.ops.cpu_cache (info, empty, set_limit).
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <vector>

namespace pygan {

// Smaller outputs come from PyTorch's allocator as usual: glibc's heap keeps such blocks anyway.
constexpr int64_t kRecycleMinBytes = int64_t{1} << 20;

at::Tensor output_like(const at::Tensor& x);

// at::empty(sizes, like.options().memory_format(format)), from the cache under the same rule.
at::Tensor output_empty(at::IntArrayRef sizes, const at::Tensor& like, at::MemoryFormat format);

namespace output_cache {
// {limit, cached bytes, cached blocks, hits, misses}
std::vector<int64_t> info();
// Frees every cached block.
void empty();
// New limit in bytes (0 disables the cache); blocks over it are freed at once.
void set_limit(int64_t bytes);
}  // namespace output_cache

}  // namespace pygan
