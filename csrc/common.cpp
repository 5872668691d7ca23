#include "common.h"

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
  return at::empty(sizes, like.options().memory_format(cl ? at::MemoryFormat::ChannelsLast
                                                           : at::MemoryFormat::Contiguous));
}

}  // namespace pygan
