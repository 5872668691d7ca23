#include "common.h"
#include "output_cache.h"

#include <cstdint>
#include <cstdlib>
#include <string>

#if defined(__linux__)
#include <sys/mman.h>
#include <unistd.h>
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23  // Linux 5.14
#endif
#endif

namespace pygan {

bool as_ncs(const at::Tensor& t, NCS& v) {
  v = NCS{};
  v.n = t.size(0);
  v.sn = t.stride(0);
  if (t.dim() >= 2) {
    v.c = t.size(1);
    v.sc = t.stride(1);
  }
  int64_t s = 1, ss = 0;
  for (int64_t d = t.dim() - 1; d >= 2; --d) {
    const int64_t size = t.size(d);
    if (size == 1) continue;
    if (s == 1) {
      ss = t.stride(d);
      s = size;
    } else if (t.stride(d) == ss * s) {
      s *= size;
    } else {
      return false;
    }
  }
  v.s = s;
  v.ss = ss;
  return true;
}

at::Tensor ncs_input(const at::Tensor& t, NCS& v) {
  if (as_ncs(t, v)) return t;
  at::Tensor c = t.contiguous();
  as_ncs(c, v);
  return c;
}

NCSOutput::NCSOutput(at::Tensor o) : out(std::move(o)) {
  if (as_ncs(out, v)) {
    work = out;
  } else {
    work = at::empty(out.sizes(), out.options());
    as_ncs(work, v);
  }
}

at::Tensor NCSOutput::finish() {
  if (!work.is_same(out)) out.copy_(work);
  return out;
}

at::Tensor empty_in_layout_of(at::IntArrayRef sizes, const at::Tensor& like) {
  const bool cl = like.dim() == 4 && like.is_contiguous(at::MemoryFormat::ChannelsLast) &&
                  !like.is_contiguous();
  return output_empty(sizes, like, cl ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous);
}

std::string env_choice(const char* name, std::initializer_list<const char*> allowed) {
  const char* v = std::getenv(name);
  const std::string choice = v ? v : "";
  if (choice.empty()) return choice;
  std::string expected;
  for (const char* a : allowed) {
    if (choice == a) return choice;
    expected += (expected.empty() ? "'" : " or '") + std::string(a) + "'";
  }
  TORCH_CHECK(false, name, " must be ", expected, ", got '", choice, "'");
}

namespace {

bool populate_enabled() {
  static const bool yes = env_choice("PYGAN_POPULATE", {"0", "1"}) != "0";
  return yes;
}

}  // namespace

bool output_pages_are_fresh(const at::Tensor& t) {
#if defined(__linux__)
  if (!t.is_cpu() || t.nbytes() < static_cast<size_t>(kPopulateMinBytes) || !populate_enabled()) return false;
  static const uintptr_t page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  const auto begin = reinterpret_cast<uintptr_t>(t.const_data_ptr());
  const uintptr_t first = (begin + page - 1) / page * page;
  const uintptr_t last = (begin + t.nbytes()) / page * page - page;
  unsigned char head = 1, tail = 1;
  if (mincore(reinterpret_cast<void*>(first), page, &head) != 0 ||
      mincore(reinterpret_cast<void*>(last), page, &tail) != 0)
    return false;
  return (head & 1) == 0 || (tail & 1) == 0;
#else
  (void)t;
  return false;
#endif
}

void populate_pages(const void* p, int64_t bytes) {
#if defined(__linux__)
  static const uintptr_t page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  const auto begin = reinterpret_cast<uintptr_t>(p);
  const uintptr_t first = begin / page * page;
  const uintptr_t last = (begin + static_cast<uintptr_t>(bytes) + page - 1) / page * page;
  madvise(reinterpret_cast<void*>(first), last - first, MADV_POPULATE_WRITE);
#else
  (void)p;
  (void)bytes;
#endif
}

}  // namespace pygan
