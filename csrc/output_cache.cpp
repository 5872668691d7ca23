#include "output_cache.h"

#include <ATen/EmptyTensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/empty_like.h>
#include <c10/util/accumulate.h>
#include <c10/core/Allocator.h>
#include <c10/core/impl/alloc_cpu.h>
#include <torch/library.h>

#include <cstdlib>
#include <mutex>
#include <string>
#include <unordered_map>

namespace pygan {
namespace {

constexpr int64_t kDefaultLimitMB = 512;

int64_t limit_from_env() {
  const char* v = std::getenv("PYGAN_CPU_CACHE_MB");
  if (v == nullptr || *v == '\0') return kDefaultLimitMB << 20;
  char* end = nullptr;
  const long long mb = std::strtoll(v, &end, 10);
  TORCH_CHECK(*end == '\0' && mb >= 0, "PYGAN_CPU_CACHE_MB must be a whole number of MiB >= 0 (0 disables "
              "pygan's CPU output cache), got '", v, "'");
  return static_cast<int64_t>(mb) << 20;
}

// A storage's block: its deleter's context, so that a freed block knows its size.
struct Block {
  void* data;
  size_t bytes;
};

// Exact-size free lists under one mutex (outputs are megabytes: a lock per output costs nothing
// against the kernel; storages may die on any thread, autograd's included).
class RecyclingAllocator final : public c10::Allocator {
 public:
  RecyclingAllocator() : limit_(limit_from_env()) {}

  c10::DataPtr allocate(size_t bytes) override {
    const c10::Device cpu(c10::DeviceType::CPU);
    if (bytes == 0) return {nullptr, nullptr, nullptr, cpu};
    void* data = take(bytes);
    if (data == nullptr) data = c10::alloc_cpu(bytes);
    return {data, new Block{data, bytes}, &release, cpu};
  }

  void copy_data(void* dest, const void* src, std::size_t count) const override {
    default_copy_data(dest, src, count);
  }

  bool enabled() {
    std::lock_guard<std::mutex> lock(mutex_);
    return limit_ > 0;
  }

  std::vector<int64_t> info() {
    std::lock_guard<std::mutex> lock(mutex_);
    int64_t blocks = 0;
    for (const auto& [bytes, list] : free_) blocks += static_cast<int64_t>(list.size());
    return {limit_, cached_, blocks, hits_, misses_};
  }

  void set_limit(int64_t bytes) {
    TORCH_CHECK(bytes >= 0, "pygan.ops.cpu_cache.set_limit: limit must be >= 0 bytes, got ", bytes);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      limit_ = bytes;
    }
    trim(bytes);
  }

  // Frees whole size classes, largest first, until at most `keep` bytes stay cached.
  void trim(int64_t keep) {
    std::vector<void*> dropped;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      while (cached_ > keep) {
        auto largest = free_.begin();
        for (auto it = free_.begin(); it != free_.end(); ++it)
          if (it->first > largest->first) largest = it;
        cached_ -= static_cast<int64_t>(largest->first * largest->second.size());
        dropped.insert(dropped.end(), largest->second.begin(), largest->second.end());
        free_.erase(largest);
      }
    }
    for (void* p : dropped) c10::free_cpu(p);
  }

 private:
  void* take(size_t bytes) {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = free_.find(bytes);
    if (it == free_.end() || it->second.empty()) {
      ++misses_;
      return nullptr;
    }
    void* data = it->second.back();
    it->second.pop_back();
    if (it->second.empty()) free_.erase(it);
    cached_ -= static_cast<int64_t>(bytes);
    ++hits_;
    return data;
  }

  static void release(void* ctx);

  std::mutex mutex_;
  std::unordered_map<size_t, std::vector<void*>> free_;
  int64_t limit_, cached_ = 0, hits_ = 0, misses_ = 0;
};

// Never destroyed: tensors may outlive static destruction at exit.
RecyclingAllocator& cache() {
  static auto* allocator = new RecyclingAllocator();
  return *allocator;
}

void RecyclingAllocator::release(void* ctx) {
  auto* block = static_cast<Block*>(ctx);
  RecyclingAllocator& self = cache();
  bool kept = false;
  {
    std::lock_guard<std::mutex> lock(self.mutex_);
    if (self.cached_ + static_cast<int64_t>(block->bytes) <= self.limit_) {
      self.free_[block->bytes].push_back(block->data);
      self.cached_ += static_cast<int64_t>(block->bytes);
      kept = true;
    }
  }
  if (!kept) c10::free_cpu(block->data);
  delete block;
}

// Whether an output of `bytes` like `like` takes its storage from the cache.
bool recycles(const at::Tensor& like, size_t bytes) {
  return like.is_cpu() && bytes >= static_cast<size_t>(kRecycleMinBytes) && cache().enabled();
}

const c10::DispatchKeySet kCPU(c10::DispatchKey::CPU);

}  // namespace

at::Tensor output_like(const at::Tensor& x) {
  if (!recycles(x, x.nbytes())) return at::empty_like(x);
  if (x.is_non_overlapping_and_dense())
    return at::detail::empty_strided_generic(x.sizes(), x.strides(), &cache(), kCPU, x.scalar_type());
  return at::detail::empty_generic(x.sizes(), &cache(), kCPU, x.scalar_type(), x.suggest_memory_format());
}

at::Tensor output_empty(at::IntArrayRef sizes, const at::Tensor& like, at::MemoryFormat format) {
  const size_t bytes = static_cast<size_t>(c10::multiply_integers(sizes)) * like.element_size();
  if (!recycles(like, bytes)) return at::empty(sizes, like.options().memory_format(format));
  return at::detail::empty_generic(sizes, &cache(), kCPU, like.scalar_type(), format);
}

namespace output_cache {
std::vector<int64_t> info() { return cache().info(); }
void empty() { cache().trim(0); }
void set_limit(int64_t bytes) { cache().set_limit(bytes); }
}  // namespace output_cache

}  // namespace pygan

// Python: pygan.ops.cpu_cache. A namespace of its own: these are not ops on tensors.
TORCH_LIBRARY(pygan_cpu_cache, m) {
  m.def("info() -> int[]", &pygan::output_cache::info);
  m.def("empty() -> ()", &pygan::output_cache::empty);
  m.def("set_limit(int bytes) -> ()", &pygan::output_cache::set_limit);
}
