// Instance norm + activation (+ residual), CPU. For every (n, c) plane of S spatial elements:
//   mu = mean_s x,  var = mean_s (x - mu)^2 (biased),  r = 1 / sqrt(var + eps),  xh = (x - mu) * r
//   z = xh * w[c] + b[c],  y = act(z) + residual,  act(z) = z * (z > 0 ? 1 : slope)
// (slope 1: no activation, exact; slope 0: ReLU). Backward, with dz = g * act'(z), a = w[c] * r:
//   dx = a * (dz - mean_s dz - xh * mean_s(dz * xh)),  dw[c] = sum_{n,s} dz * xh,  db[c] = sum dz
// (the residual's gradient is g itself, returned by the autograd formula in Python).
//
// Statistics: the mean, then the sum of squares about it (two passes, no cancellation), in
// float32 for half inputs and float64 for float64 inputs. Sums use kLanes partial sums in a
// fixed order (vectorisable without reassociation flags, same bits on every machine), in two
// levels: each block of kFold * kLanes elements sums into fresh lanes that are then added to the
// plane's, so no partial sum collects more than max(kFold, S / (kFold * kLanes)) terms.
// Work units by layout:
//   planes (NCHW, any layout whose spatial dim is not the innermost): one (n, c) plane per unit,
//     every pass over the same plane (it stays in cache between passes);
//   channels_last: one sample's block of kCB, kMidCB or kWideCB adjacent channels per unit, walking the pixels in
//     blocks of kPixelBlock; the block statistics (mean, then squares about the block mean, both
//     over cache-resident data) merge into running ones with Chan's formula, so the statistics
//     take a single pass over memory.
#include "common.h"
#include "instance_norm_act.h"
#include "output_cache.h"

#include <cstdlib>
#include <cstring>
#include <string>
#include <type_traits>
#include <vector>

namespace pygan {
namespace {

// Partial sums per plane reduction: 32 for float accumulators, 16 for double (4 and 2 AVX2 vectors
// per sum: enough independent add chains to hide the add latency, few enough to stay in registers).
template <typename acc_t>
constexpr int kLanes = sizeof(acc_t) == 4 ? 32 : 16;
// channels_last units: one sample's kCB adjacent channels, or kWideCB / kMidCB of them where a
// unit's stripe cannot stay in cache between its passes anyway (cl_unit_width); arrays hold kMaxCB.
constexpr int kCB = 16;
constexpr int kMidCB = 64;
constexpr int kWideCB = 128;
constexpr int kMaxCB = kWideCB;
// Vector steps per block of the two-level plane sums (2048 float elements): one add per lane
// per block more, and a 512x520 plane's y and dx errors went from 5.3x and 3.8x the eager
// reference's largest float32 error to 1.1x and 0.8x (the one-level lanes summed 8320 terms each).
constexpr int64_t kFold = 64;

// The next plane a thread will read (x, and the residual or the gradient), prefetched into L2 a
// few cache lines per step of this plane's last pass, which reads cache-resident data: the next
// plane's passes then find their inputs in L2 instead of waiting on memory page by page (the
// hardware prefetchers stop at every 4 KiB page). Contiguous planes of at most kPrefetchBytes
// only (two of them per tensor stay well inside a 2 MiB L2). Measured at (4, 128, 128, 128) fp32,
// forward + backward against eager in one run: IN + ReLU 2.14x -> 2.36x, x + IN 1.64x -> 1.84x
// (with the page faults of fresh outputs; 2.44x -> 3.18x and 1.89x -> 2.33x where the outputs'
// pages were resident).
struct NextPlane {
  const char* a = nullptr;
  const char* b = nullptr;
  int64_t bytes = 0;   // of each; 0: nothing to prefetch
};
constexpr int64_t kPrefetchBytes = int64_t{256} << 10;
constexpr int64_t kStepElems = 64;

// Prefetch the lines of next.a and next.b that lie in [begin, end) bytes.
inline __attribute__((always_inline)) void prefetch_step(const NextPlane& next, int64_t begin, int64_t end) {
  end = std::min(end, next.bytes);
  for (int64_t o = begin; o < end; o += 64) {
    __builtin_prefetch(next.a + o, 0, 2);
    if (next.b) __builtin_prefetch(next.b + o, 0, 2);
  }
}

// act(z) = z * (z > 0 ? one : slope) with one == 1 read at run time (opaque_one): with a literal 1
// the compiler rewrites the select into `z > 0 ? z : z * slope`, whose conditional multiply it may
// not speculate (-ftrapping-math), so the loop keeps a branch on the sign of random data and does
// not vectorise (measured 12 ns an element instead of < 1).
template <typename acc_t>
inline acc_t act(acc_t z, acc_t one, acc_t slope) { return z * (z > acc_t(0) ? one : slope); }
template <typename acc_t>
inline acc_t act_slope(acc_t z, acc_t one, acc_t slope) { return z > acc_t(0) ? one : slope; }
template <typename acc_t>
inline acc_t opaque_one() {
  volatile acc_t v = 1;
  return v;
}

// Plane kernels keep their kLanes partial sums in vectors of GCC's vector extension (plain
// loops over lane arrays were vectorised badly: gcc turned them into in-order scalar reductions,
// 1.3 ns an element). Each plane loop exists twice on x86-64, force-inlined into a function
// compiled for the baseline ISA (16-byte vectors) and one compiled for AVX2 (32-byte vectors),
// chosen once at run time (use_avx2). Lane j holds the same terms in either, and neither uses
// FMA or reassociates, so both give the same bits; AVX2 runs twice as many lanes an instruction.
#if defined(__GNUC__)
#define PYGAN_INLINE inline __attribute__((always_inline))
#else
#define PYGAN_INLINE inline
#endif
#if defined(__x86_64__) && defined(__GNUC__)
#define PYGAN_AVX2_CLONES 1
#else
#define PYGAN_AVX2_CLONES 0
#endif
#pragma GCC diagnostic ignored "-Wpsabi"   // 32-byte vectors live only inside the AVX2 clones

// Bytes-wide vector of acc_t (Bytes = 16 or 32), with the integer vector its comparisons give.
template <typename acc_t, int Bytes> struct Vec;
template <> struct Vec<float, 16> {
  typedef float type __attribute__((vector_size(16)));
  typedef int32_t mask __attribute__((vector_size(16)));
};
template <> struct Vec<float, 32> {
  typedef float type __attribute__((vector_size(32)));
  typedef int32_t mask __attribute__((vector_size(32)));
};
template <> struct Vec<double, 16> {
  typedef double type __attribute__((vector_size(16)));
  typedef int64_t mask __attribute__((vector_size(16)));
};
template <> struct Vec<double, 32> {
  typedef double type __attribute__((vector_size(32)));
  typedef int64_t mask __attribute__((vector_size(32)));
};

// Elements p[0], p[st], ... (st == 1 when Unit) as a vector of acc_t.
template <typename V, bool Unit, typename scalar_t>
PYGAN_INLINE V vload(const scalar_t* __restrict p, int64_t st) {
  using acc_t = std::remove_reference_t<decltype(V{}[0])>;
  V v;
  if constexpr (Unit && std::is_same_v<scalar_t, acc_t>) {
    std::memcpy(&v, p, sizeof v);
  } else {
    constexpr int W = sizeof(V) / sizeof(acc_t);
    for (int e = 0; e < W; ++e) v[e] = static_cast<acc_t>(p[Unit ? e : e * st]);
  }
  return v;
}

// act_slope on vectors: pos where z > 0, else neg (a bitwise select, exactly the scalar one).
template <typename acc_t, int Bytes>
PYGAN_INLINE typename Vec<acc_t, Bytes>::type vselect_pos(typename Vec<acc_t, Bytes>::type z,
                                                          typename Vec<acc_t, Bytes>::type pos,
                                                          typename Vec<acc_t, Bytes>::type neg) {
  using V = typename Vec<acc_t, Bytes>::type;
  using M = typename Vec<acc_t, Bytes>::mask;
  const M m = z > V{};
  return reinterpret_cast<V>((m & reinterpret_cast<M>(pos)) | (~m & reinterpret_cast<M>(neg)));
}

// PYGAN_CPU_ISA=baseline forces the baseline copies (read once): the test suite runs both copies
// and compares their bits, which no machine with AVX2 would otherwise do.
bool use_avx2() {
  static const bool yes = [] {
    const std::string choice = env_choice("PYGAN_CPU_ISA", {"auto", "baseline"});
#if PYGAN_AVX2_CLONES
    return choice != "baseline" && __builtin_cpu_supports("avx2");
#else
    return false;
#endif
  }();
  return yes;
}

// Mean and 1 / sqrt(var + eps) of one plane p[i * st], i < S (st == 1 when Unit): the mean, then
// the sum of squares about it, each in kLanes lanes (NV vectors of W) then a fixed-order total.
//
// With a plane g (stride gs), the squares pass also sums t1 = sum g and t2 = sum g * (p - mean)
// (in the same lanes and order as bwd_plane's own loop): the backward without an activation needs
// nothing else, and so skips a pass over x.
template <bool Unit, int Bytes, typename scalar_t, typename acc_t, bool WithGrad = false>
PYGAN_INLINE void plane_stats(const scalar_t* __restrict p, int64_t st, int64_t S, acc_t eps, acc_t& mean,
                              acc_t& r, const scalar_t* __restrict g = nullptr, int64_t gs = 1,
                              acc_t* t1_out = nullptr, acc_t* t2_out = nullptr) {
  using V = typename Vec<acc_t, Bytes>::type;
  constexpr int L = kLanes<acc_t>, W = Bytes / sizeof(acc_t), NV = L / W;
  static_assert(NV * W == L, "kLanes must be a whole number of vectors");
  const int64_t full = S / L * L;
  V lane[NV] = {};
  for (int64_t i0 = 0; i0 < full; i0 += kFold * L) {
    const int64_t i1 = std::min(full, i0 + kFold * L);
    V blk[NV] = {};
    for (int64_t i = i0; i < i1; i += L) {
      for (int k = 0; k < NV; ++k) blk[k] += vload<V, Unit>(p + (i + k * W) * (Unit ? 1 : st), st);
    }
    for (int k = 0; k < NV; ++k) lane[k] += blk[k];
  }
  acc_t total = 0;
  for (int64_t i = full; i < S; ++i) total += static_cast<acc_t>(p[Unit ? i : i * st]);
  for (int k = 0; k < NV; ++k) {
    for (int e = 0; e < W; ++e) total += lane[k][e];
  }
  const acc_t m = total / acc_t(S);
  V sq[NV] = {}, l1[NV] = {}, l2[NV] = {};
  for (int64_t i0 = 0; i0 < full; i0 += kFold * L) {
    const int64_t i1 = std::min(full, i0 + kFold * L);
    V bsq[NV] = {}, b1[NV] = {}, b2[NV] = {};
    for (int64_t i = i0; i < i1; i += L) {
      for (int k = 0; k < NV; ++k) {
        const V dv = vload<V, Unit>(p + (i + k * W) * (Unit ? 1 : st), st) - m;
        bsq[k] += dv * dv;
        if constexpr (WithGrad) {
          const V gv = vload<V, Unit>(g + (i + k * W) * (Unit ? 1 : gs), gs);
          b1[k] += gv;
          b2[k] += gv * dv;
        }
      }
    }
    for (int k = 0; k < NV; ++k) {
      sq[k] += bsq[k];
      if constexpr (WithGrad) {
        l1[k] += b1[k];
        l2[k] += b2[k];
      }
    }
  }
  acc_t tsq = 0, t1 = 0, t2 = 0;
  for (int64_t i = full; i < S; ++i) {
    const acc_t dv = static_cast<acc_t>(p[Unit ? i : i * st]) - m;
    tsq += dv * dv;
    if constexpr (WithGrad) {
      const acc_t gv = static_cast<acc_t>(g[Unit ? i : i * gs]);
      t1 += gv;
      t2 += gv * dv;
    }
  }
  for (int k = 0; k < NV; ++k) {
    for (int e = 0; e < W; ++e) {
      tsq += sq[k][e];
      if constexpr (WithGrad) {
        t1 += l1[k][e];
        t2 += l2[k][e];
      }
    }
  }
  if constexpr (WithGrad) {
    *t1_out = t1;
    *t2_out = t2;
  }
  mean = m;
  r = acc_t(1) / std::sqrt(tsq / acc_t(S) + eps);
}

// Forward of one plane: y = act((x - mean) * a + b) (+ res), a = w * r. The activation decision
// uses exactly this z, in the backward too.
template <bool Unit, bool HasAct, bool HasRes, int Bytes, typename scalar_t, typename acc_t>
PYGAN_INLINE void fwd_plane(const scalar_t* __restrict x, int64_t xs, scalar_t* __restrict y, int64_t ys,
                            const scalar_t* __restrict res, int64_t rs, int64_t S, acc_t w, acc_t b, acc_t one,
                            acc_t slope, acc_t eps, NextPlane next = {}) {
  acc_t mean, r;
  plane_stats<Unit, Bytes>(x, xs, S, eps, mean, r);
  const acc_t a = w * r;
  for (int64_t i0 = 0; i0 < S; i0 += kStepElems) {
    const int64_t i1 = std::min(S, i0 + kStepElems);
    if (Unit && next.bytes) prefetch_step(next, i0 * int64_t(sizeof(scalar_t)), i1 * int64_t(sizeof(scalar_t)));
    for (int64_t i = i0; i < i1; ++i) {
      acc_t v = (static_cast<acc_t>(x[Unit ? i : i * xs]) - mean) * a + b;
      if (HasAct) v = act<acc_t>(v, one, slope);
      if (HasRes) v += static_cast<acc_t>(res[Unit ? i : i * rs]);
      y[Unit ? i : i * ys] = v;
    }
  }
}

// Backward of one plane, with u = x - mean, dz = g * act'(u * a + b), a = w * r:
//   t1 = sum dz, t2 = sum dz * u (both in kLanes lanes; without an activation, in plane_stats'
//   squares pass, one pass over x and g fewer), then
//   dx = a * dz - a * t1 / S - u * (a * r^2 * t2 / S);  returns s1 = t1, s2 = r * t2 = sum dz * xh.
// Without an activation dz is g itself (act' = 1 exactly).
template <bool Unit, bool HasAct, int Bytes, typename scalar_t, typename acc_t>
PYGAN_INLINE void bwd_plane(const scalar_t* __restrict g, int64_t gs, const scalar_t* __restrict x, int64_t xs,
                            scalar_t* __restrict d, int64_t ds, int64_t S, acc_t w, acc_t b, acc_t one,
                            acc_t slope, acc_t eps, acc_t& s1, acc_t& s2, NextPlane next = {}) {
  using V = typename Vec<acc_t, Bytes>::type;
  constexpr int L = kLanes<acc_t>, W = Bytes / sizeof(acc_t), NV = L / W;
  acc_t mean, r, t1 = 0, t2 = 0;
  if constexpr (!HasAct) {
    plane_stats<Unit, Bytes, scalar_t, acc_t, true>(x, xs, S, eps, mean, r, g, gs, &t1, &t2);
  } else {
    plane_stats<Unit, Bytes>(x, xs, S, eps, mean, r);
  }
  const acc_t a = w * r;
  const int64_t full = S / L * L;
  V l1[NV] = {}, l2[NV] = {};
  const V av = V{} + a, bv = V{} + b, onev = V{} + one, slopev = V{} + slope;
  for (int64_t i0 = 0; HasAct && i0 < full; i0 += kFold * L) {
    const int64_t i1 = std::min(full, i0 + kFold * L);
    V b1[NV] = {}, b2[NV] = {};
    for (int64_t i = i0; i < i1; i += L) {
      for (int k = 0; k < NV; ++k) {
        const V u = vload<V, Unit>(x + (i + k * W) * (Unit ? 1 : xs), xs) - mean;
        V dz = vload<V, Unit>(g + (i + k * W) * (Unit ? 1 : gs), gs);
        if (HasAct) dz *= vselect_pos<acc_t, Bytes>(u * av + bv, onev, slopev);
        b1[k] += dz;
        b2[k] += dz * u;
      }
    }
    for (int k = 0; k < NV; ++k) {
      l1[k] += b1[k];
      l2[k] += b2[k];
    }
  }
  for (int64_t i = full; HasAct && i < S; ++i) {
    const acc_t u = static_cast<acc_t>(x[Unit ? i : i * xs]) - mean;
    const acc_t dz = static_cast<acc_t>(g[Unit ? i : i * gs]) * act_slope<acc_t>(u * a + b, one, slope);
    t1 += dz;
    t2 += dz * u;
  }
  for (int k = 0; HasAct && k < NV; ++k) {
    for (int e = 0; e < W; ++e) {
      t1 += l1[k][e];
      t2 += l2[k][e];
    }
  }
  s1 = t1;
  s2 = t2 * r;
  const acc_t k1 = a * t1 / acc_t(S), k2 = a * r * s2 / acc_t(S);
  for (int64_t i0 = 0; i0 < S; i0 += kStepElems) {
    const int64_t i1 = std::min(S, i0 + kStepElems);
    if (Unit && next.bytes) prefetch_step(next, i0 * int64_t(sizeof(scalar_t)), i1 * int64_t(sizeof(scalar_t)));
    for (int64_t i = i0; i < i1; ++i) {
      const acc_t u = static_cast<acc_t>(x[Unit ? i : i * xs]) - mean;
      acc_t dz = static_cast<acc_t>(g[Unit ? i : i * gs]);
      if (HasAct) dz *= act_slope<acc_t>(u * a + b, one, slope);
      d[Unit ? i : i * ds] = a * dz - k1 - u * k2;
    }
  }
}

// Everything the plane loops need, by value (see common.h on captures and aliasing).
template <typename scalar_t>
struct PlaneJob {
  using acc_t = at::opmath_type<scalar_t>;
  const scalar_t* x;   // forward: x; backward: x
  const scalar_t* g;   // backward: grad; forward: the residual (or null)
  scalar_t* out;       // y or dx
  const scalar_t* weight;
  const scalar_t* bias;
  NCS xv, gv, ov;
  acc_t one, slope, eps;
  acc_t* s1;           // backward: per-plane sums, N * C each
  acc_t* s2;
  bool populate;       // out's pages are fresh: map them a chunk of planes at a time (common.h)
};

// Before plane p of [p, end): when p reaches `until`, map the output pages of the planes from p
// up to kPopulateChunkBytes of them (one call over a dense run, else one per plane).
template <typename scalar_t>
PYGAN_INLINE void populate_ahead(const PlaneJob<scalar_t>& k, int64_t p, int64_t end, int64_t& until) {
  if (!k.populate || p < until) return;
  const int64_t S = k.xv.s, C = k.xv.c, plane_bytes = S * int64_t(sizeof(scalar_t));
  until = std::min(end, p + std::max<int64_t>(1, kPopulateChunkBytes / plane_bytes));
  const bool dense = k.ov.ss == 1 && k.ov.sc == S && k.ov.sn == C * S;
  if (dense) {
    populate_pages(k.out + p * S, (until - p) * plane_bytes);
    return;
  }
  for (int64_t q = p; q < until; ++q)
    populate_pages(k.out + q / C * k.ov.sn + q % C * k.ov.sc, plane_bytes);
}

// What plane p's loop prefetches: plane p + 1 of x (and of job.g, the residual or the gradient,
// when with_g), if the thread has it and planes are at most kPrefetchBytes. Contiguous planes only.
template <typename scalar_t>
PYGAN_INLINE NextPlane next_plane(const PlaneJob<scalar_t>& k, int64_t p, int64_t end, bool with_g) {
  const int64_t bytes = k.xv.s * int64_t(sizeof(scalar_t));
  if (p + 1 >= end || bytes > kPrefetchBytes) return {};
  const int64_t n1 = (p + 1) / k.xv.c, c1 = (p + 1) % k.xv.c;
  return {reinterpret_cast<const char*>(k.x + n1 * k.xv.sn + c1 * k.xv.sc),
          with_g ? reinterpret_cast<const char*>(k.g + n1 * k.gv.sn + c1 * k.gv.sc) : nullptr, bytes};
}

// Planes [begin, end) of the forward (HasRes: job.g is the residual).
template <bool Unit, bool HasAct, bool HasRes, int Bytes, typename scalar_t>
PYGAN_INLINE void fwd_planes(const PlaneJob<scalar_t>& job, int64_t begin, int64_t end) {
  using acc_t = at::opmath_type<scalar_t>;
  const PlaneJob<scalar_t> k = job;
  const int64_t C = k.xv.c;
  int64_t populated = begin;
  for (int64_t p = begin; p < end; ++p) {
    const int64_t n = p / C, c = p % C;
    const acc_t w = k.weight ? static_cast<acc_t>(k.weight[c]) : acc_t(1);
    const acc_t b = k.bias ? static_cast<acc_t>(k.bias[c]) : acc_t(0);
    if constexpr (Unit) populate_ahead(k, p, end, populated);
    const NextPlane next = Unit ? next_plane(k, p, end, HasRes) : NextPlane{};
    fwd_plane<Unit, HasAct, HasRes, Bytes>(k.x + n * k.xv.sn + c * k.xv.sc, k.xv.ss, k.out + n * k.ov.sn + c * k.ov.sc,
                                    k.ov.ss, HasRes ? k.g + n * k.gv.sn + c * k.gv.sc : nullptr, k.gv.ss,
                                    k.xv.s, w, b, k.one, k.slope, k.eps, next);
  }
}

template <bool Unit, bool HasAct, int Bytes, typename scalar_t>
PYGAN_INLINE void bwd_planes(const PlaneJob<scalar_t>& job, int64_t begin, int64_t end) {
  using acc_t = at::opmath_type<scalar_t>;
  const PlaneJob<scalar_t> k = job;
  const int64_t C = k.xv.c;
  int64_t populated = begin;
  for (int64_t p = begin; p < end; ++p) {
    const int64_t n = p / C, c = p % C;
    const acc_t w = k.weight ? static_cast<acc_t>(k.weight[c]) : acc_t(1);
    const acc_t b = k.bias ? static_cast<acc_t>(k.bias[c]) : acc_t(0);
    if constexpr (Unit) populate_ahead(k, p, end, populated);
    const NextPlane next = Unit ? next_plane(k, p, end, true) : NextPlane{};
    bwd_plane<Unit, HasAct, Bytes>(k.g + n * k.gv.sn + c * k.gv.sc, k.gv.ss, k.x + n * k.xv.sn + c * k.xv.sc, k.xv.ss,
                            k.out + n * k.ov.sn + c * k.ov.sc, k.ov.ss, k.xv.s, w, b, k.one, k.slope, k.eps,
                            k.s1[p], k.s2[p], next);
  }
}

template <bool Unit, bool HasAct, bool HasRes, typename scalar_t>
void fwd_planes_base(const PlaneJob<scalar_t>& job, int64_t begin, int64_t end) {
  fwd_planes<Unit, HasAct, HasRes, 16>(job, begin, end);
}
template <bool Unit, bool HasAct, typename scalar_t>
void bwd_planes_base(const PlaneJob<scalar_t>& job, int64_t begin, int64_t end) {
  bwd_planes<Unit, HasAct, 16>(job, begin, end);
}
#if PYGAN_AVX2_CLONES
template <bool Unit, bool HasAct, bool HasRes, typename scalar_t>
__attribute__((target("avx2"))) void fwd_planes_avx2(const PlaneJob<scalar_t>& job, int64_t begin, int64_t end) {
  fwd_planes<Unit, HasAct, HasRes, 32>(job, begin, end);
}
template <bool Unit, bool HasAct, typename scalar_t>
__attribute__((target("avx2"))) void bwd_planes_avx2(const PlaneJob<scalar_t>& job, int64_t begin, int64_t end) {
  bwd_planes<Unit, HasAct, 32>(job, begin, end);
}
#endif

// The forward's plane loop for this job's layout, activation and residual.
template <bool Unit, bool HasAct, bool HasRes, typename scalar_t>
void fwd_planes_run(const PlaneJob<scalar_t>& job, int64_t grain) {
  const int64_t planes = job.xv.n * job.xv.c;
#if PYGAN_AVX2_CLONES
  if (use_avx2()) {
    at::parallel_for(0, planes, grain, [&job](int64_t begin, int64_t end) {
      fwd_planes_avx2<Unit, HasAct, HasRes>(job, begin, end);
    });
    return;
  }
#endif
  at::parallel_for(0, planes, grain, [&job](int64_t begin, int64_t end) {
    fwd_planes_base<Unit, HasAct, HasRes>(job, begin, end);
  });
}

template <bool Unit, bool HasAct, typename scalar_t>
void bwd_planes_run(const PlaneJob<scalar_t>& job, int64_t grain) {
  const int64_t planes = job.xv.n * job.xv.c;
#if PYGAN_AVX2_CLONES
  if (use_avx2()) {
    at::parallel_for(0, planes, grain, [&job](int64_t begin, int64_t end) {
      bwd_planes_avx2<Unit, HasAct>(job, begin, end);
    });
    return;
  }
#endif
  at::parallel_for(0, planes, grain, [&job](int64_t begin, int64_t end) {
    bwd_planes_base<Unit, HasAct>(job, begin, end);
  });
}

// Chan et al.'s merge of W running statistics (count, mean, m2) with another set (cb, mb, qb).
template <int FixedW, typename acc_t>
PYGAN_INLINE void chan_merge(int64_t& count, acc_t* __restrict mean, acc_t* __restrict m2, int64_t cb,
                       const acc_t* __restrict mb, const acc_t* __restrict qb, int W_) {
  const int W = FixedW > 0 ? FixedW : W_;
  const int64_t total = count + cb;
  const acc_t fb = acc_t(cb) / acc_t(total), fab = acc_t(count) * acc_t(cb) / acc_t(total);
  for (int j = 0; j < W; ++j) {
    const acc_t delta = mb[j] - mean[j];
    mean[j] += delta * fb;
    m2[j] += qb[j] + delta * delta * fab;
  }
  count = total;
}

// channels_last: statistics of channels [c0, c0 + W) of one sample (W = the unit width, or the tail width),
// pointer p at (n, c0), pixel stride ss, channel stride sc (1 when Unit). Blocks of kPixelBlock
// pixels (mean, then squares about it, over cache-resident data) merge into a group's running
// statistics, and every kFold blocks the group merges into the sample's: two levels, so no
// running mean takes more than max(kFold, S / (kFold * kPixelBlock)) merges (one level took
// S / 64: y and dx errors at 256x256 were 2.9x and 3.4x eager's largest float32 error).
template <bool Unit, int FixedW, typename scalar_t, typename acc_t = at::opmath_type<scalar_t>>
PYGAN_INLINE void cl_stats(const scalar_t* __restrict p, int64_t ss, int64_t sc, int64_t S, int W_, acc_t eps,
                     acc_t* __restrict mean, acc_t* __restrict r) {
  const int W = FixedW > 0 ? FixedW : W_;
  acc_t m2[kMaxCB], gm[kMaxCB], gq[kMaxCB], bm[kMaxCB], bq[kMaxCB];
  for (int j = 0; j < W; ++j) mean[j] = m2[j] = 0;
  int64_t count = 0;
  for (int64_t g0 = 0; g0 < S; g0 += kFold * kPixelBlock) {
    const int64_t g1 = std::min(S, g0 + kFold * kPixelBlock);
    int64_t gcount = 0;
    for (int j = 0; j < W; ++j) gm[j] = gq[j] = 0;
    for (int64_t s0 = g0; s0 < g1; s0 += kPixelBlock) {
      const int64_t len = std::min(kPixelBlock, g1 - s0);
      for (int j = 0; j < W; ++j) bm[j] = bq[j] = 0;
      for (int64_t i = s0; i < s0 + len; ++i) {
        const scalar_t* px = p + i * ss;
        for (int j = 0; j < W; ++j) bm[j] += static_cast<acc_t>(px[Unit ? j : j * sc]);
      }
      const acc_t inv_len = acc_t(1) / acc_t(len);
      for (int j = 0; j < W; ++j) bm[j] *= inv_len;
      for (int64_t i = s0; i < s0 + len; ++i) {
        const scalar_t* px = p + i * ss;
        for (int j = 0; j < W; ++j) {
          const acc_t dv = static_cast<acc_t>(px[Unit ? j : j * sc]) - bm[j];
          bq[j] += dv * dv;
        }
      }
      chan_merge<FixedW>(gcount, gm, gq, len, bm, bq, W);
    }
    chan_merge<FixedW>(count, mean, m2, gcount, gm, gq, W);
  }
  for (int j = 0; j < W; ++j) r[j] = acc_t(1) / std::sqrt(m2[j] / acc_t(S) + eps);
}

// Fresh channels_last outputs (common.h): the unit of a sample's first channel block maps the
// pages of whole pixel rows, all channels, kPopulateChunkBytes at a time just before it writes its
// channels of them; the sample's other units then write resident pages. Returns the rows per chunk.
template <typename scalar_t>
PYGAN_INLINE int64_t cl_populate_rows(const NCS& ov) {
  return std::max<int64_t>(1, kPopulateChunkBytes / (ov.ss * int64_t(sizeof(scalar_t))));
}

// One channels_last pixel row of the forward: py[j] = act((px[j] - mean[j]) * a[j] + b[j]) (+ pr[j]).
// Restrict pointers and parameters of their own: the per-channel arrays cannot alias the output,
// so the row vectorises.
template <int FixedW, bool HasRes, typename scalar_t, typename acc_t = at::opmath_type<scalar_t>>
PYGAN_INLINE void cl_fwd_row(const scalar_t* __restrict px, scalar_t* __restrict py, const scalar_t* __restrict pr,
                       int W_, const acc_t* __restrict mean, const acc_t* __restrict a, const acc_t* __restrict b,
                       acc_t one, acc_t slope) {
  const int W = FixedW > 0 ? FixedW : W_;
  for (int j = 0; j < W; ++j) {
    acc_t v = act<acc_t>((static_cast<acc_t>(px[j]) - mean[j]) * a[j] + b[j], one, slope);
    if (HasRes) v += static_cast<acc_t>(pr[j]);
    py[j] = v;
  }
}

template <bool Unit, int FixedW, typename scalar_t>
PYGAN_INLINE void fwd_cl(const scalar_t* x, NCS xv, scalar_t* y, NCS yv, const scalar_t* res, NCS rv, int64_t n, int64_t c0,
            int W_, const scalar_t* weight, const scalar_t* bias, at::opmath_type<scalar_t> one, at::opmath_type<scalar_t> slope,
            at::opmath_type<scalar_t> eps, bool populate) {
  using acc_t = at::opmath_type<scalar_t>;
  const int W = FixedW > 0 ? FixedW : W_;
  const int64_t S = xv.s;
  const scalar_t* xp = x + n * xv.sn + c0 * xv.sc;
  acc_t mean[kMaxCB], r[kMaxCB], a[kMaxCB], b[kMaxCB];
  cl_stats<Unit, FixedW>(xp, xv.ss, xv.sc, S, W, eps, mean, r);
  for (int j = 0; j < W; ++j) {
    a[j] = r[j] * (weight ? static_cast<acc_t>(weight[c0 + j]) : acc_t(1));
    b[j] = bias ? static_cast<acc_t>(bias[c0 + j]) : acc_t(0);
  }
  scalar_t* yp = y + n * yv.sn + c0 * yv.sc;
  const scalar_t* rp = res ? res + n * rv.sn + c0 * rv.sc : nullptr;
  if (Unit && yv.sc == 1 && (res == nullptr || rv.sc == 1)) {
    // populate: the pixel rows' pages (all channels) a chunk at a time, see cl_populate_rows
    const int64_t chunk = populate ? cl_populate_rows<scalar_t>(yv) : S;
    for (int64_t i0 = 0; i0 < S; i0 += chunk) {
      const int64_t i1 = std::min(S, i0 + chunk);
      if (populate) populate_pages(y + n * yv.sn + i0 * yv.ss, (i1 - i0) * yv.ss * int64_t(sizeof(scalar_t)));
      if (res == nullptr) {
        for (int64_t i = i0; i < i1; ++i) {
          cl_fwd_row<FixedW, false>(xp + i * xv.ss, yp + i * yv.ss, static_cast<const scalar_t*>(nullptr), W, mean, a,
                                    b, one, slope);
        }
      } else {
        for (int64_t i = i0; i < i1; ++i) {
          cl_fwd_row<FixedW, true>(xp + i * xv.ss, yp + i * yv.ss, rp + i * rv.ss, W, mean, a, b, one, slope);
        }
      }
    }
  } else {
    for (int64_t i = 0; i < S; ++i) {
      for (int j = 0; j < W; ++j) {
        acc_t v = act<acc_t>((static_cast<acc_t>(x[n * xv.sn + (c0 + j) * xv.sc + i * xv.ss]) - mean[j]) * a[j] + b[j],
                             one, slope);
        if (rp) v += static_cast<acc_t>(rp[i * rv.ss + j * rv.sc]);
        y[n * yv.sn + (c0 + j) * yv.sc + i * yv.ss] = v;
      }
    }
  }
}

// Backward rows of channels_last: sums of dz and dz * xh (t1, t2), then dx.
template <int FixedW, typename scalar_t, typename acc_t = at::opmath_type<scalar_t>>
PYGAN_INLINE void cl_bwd_sums_row(const scalar_t* __restrict px, const scalar_t* __restrict pg, int W_,
                            const acc_t* __restrict mean, const acc_t* __restrict r, const acc_t* __restrict w,
                            const acc_t* __restrict b, acc_t one, acc_t slope, acc_t* __restrict t1,
                            acc_t* __restrict t2) {
  const int W = FixedW > 0 ? FixedW : W_;
  for (int j = 0; j < W; ++j) {
    const acc_t xh = (static_cast<acc_t>(px[j]) - mean[j]) * r[j];
    const acc_t dz = static_cast<acc_t>(pg[j]) * act_slope<acc_t>(xh * w[j] + b[j], one, slope);
    t1[j] += dz;
    t2[j] += dz * xh;
  }
}

// Pixels [s0, s1) of cl_bwd_sums_row into fresh partials, then added to t1 and t2 (the first
// level of the two-level sums).
template <int FixedW, typename scalar_t, typename acc_t = at::opmath_type<scalar_t>>
PYGAN_INLINE void cl_bwd_sums_block(const scalar_t* __restrict xp, int64_t xss, const scalar_t* __restrict gp, int64_t gss,
                              int64_t s0, int64_t s1, int W_, const acc_t* __restrict mean, const acc_t* __restrict r,
                              const acc_t* __restrict w, const acc_t* __restrict b, acc_t one, acc_t slope,
                              acc_t* __restrict t1, acc_t* __restrict t2) {
  const int W = FixedW > 0 ? FixedW : W_;
  acc_t p1[kMaxCB] = {}, p2[kMaxCB] = {};
  for (int64_t i = s0; i < s1; ++i) {
    cl_bwd_sums_row<FixedW>(xp + i * xss, gp + i * gss, W, mean, r, w, b, one, slope, p1, p2);
  }
  for (int j = 0; j < W; ++j) {
    t1[j] += p1[j];
    t2[j] += p2[j];
  }
}

template <int FixedW, typename scalar_t, typename acc_t = at::opmath_type<scalar_t>>
PYGAN_INLINE void cl_bwd_dx_row(const scalar_t* __restrict px, const scalar_t* __restrict pg, scalar_t* __restrict pd,
                          int W_, const acc_t* __restrict mean, const acc_t* __restrict r, const acc_t* __restrict w,
                          const acc_t* __restrict b, const acc_t* __restrict a, const acc_t* __restrict k1,
                          const acc_t* __restrict k2, acc_t one, acc_t slope) {
  const int W = FixedW > 0 ? FixedW : W_;
  for (int j = 0; j < W; ++j) {
    const acc_t xh = (static_cast<acc_t>(px[j]) - mean[j]) * r[j];
    const acc_t dz = static_cast<acc_t>(pg[j]) * act_slope<acc_t>(xh * w[j] + b[j], one, slope);
    pd[j] = a[j] * dz - k1[j] - xh * k2[j];
  }
}

template <bool Unit, int FixedW, typename scalar_t>
PYGAN_INLINE void bwd_cl(const scalar_t* g, NCS gv, const scalar_t* x, NCS xv, scalar_t* d, NCS dv, int64_t n, int64_t c0,
            int W_, const scalar_t* weight, const scalar_t* bias, at::opmath_type<scalar_t> one, at::opmath_type<scalar_t> slope,
            at::opmath_type<scalar_t> eps, at::opmath_type<scalar_t>* s1, at::opmath_type<scalar_t>* s2, bool populate) {
  using acc_t = at::opmath_type<scalar_t>;
  const int W = FixedW > 0 ? FixedW : W_;
  const int64_t S = xv.s;
  const scalar_t* xp = x + n * xv.sn + c0 * xv.sc;
  const scalar_t* gp = g + n * gv.sn + c0 * gv.sc;
  scalar_t* dp = d + n * dv.sn + c0 * dv.sc;
  const bool unit = Unit && gv.sc == 1 && dv.sc == 1;
  acc_t mean[kMaxCB], r[kMaxCB], w[kMaxCB], b[kMaxCB], t1[kMaxCB], t2[kMaxCB], a[kMaxCB], k1[kMaxCB], k2[kMaxCB];
  cl_stats<Unit, FixedW>(xp, xv.ss, xv.sc, S, W, eps, mean, r);
  for (int j = 0; j < W; ++j) {
    w[j] = weight ? static_cast<acc_t>(weight[c0 + j]) : acc_t(1);
    b[j] = bias ? static_cast<acc_t>(bias[c0 + j]) : acc_t(0);
    t1[j] = t2[j] = 0;
  }
  // strided fallback: element (c0 + j, i) of a tensor
  const auto at_ = [n, c0](const scalar_t* base, const NCS& v, int j, int64_t i) -> const scalar_t& {
    return base[n * v.sn + (c0 + j) * v.sc + i * v.ss];
  };
  // two-level sums, as the plane kernels': each block of kPixelBlock pixels into fresh partials
  for (int64_t s0 = 0; s0 < S; s0 += kPixelBlock) {
    const int64_t s1_ = std::min(S, s0 + kPixelBlock);
    if (unit) {
      cl_bwd_sums_block<FixedW>(xp, xv.ss, gp, gv.ss, s0, s1_, W, mean, r, w, b, one, slope, t1, t2);
    } else {
      acc_t bt1[kMaxCB] = {}, bt2[kMaxCB] = {};
      for (int64_t i = s0; i < s1_; ++i) {
        for (int j = 0; j < W; ++j) {
          const acc_t xh = (static_cast<acc_t>(at_(x, xv, j, i)) - mean[j]) * r[j];
          const acc_t dz = static_cast<acc_t>(at_(g, gv, j, i)) * act_slope<acc_t>(xh * w[j] + b[j], one, slope);
          bt1[j] += dz;
          bt2[j] += dz * xh;
        }
      }
      for (int j = 0; j < W; ++j) {
        t1[j] += bt1[j];
        t2[j] += bt2[j];
      }
    }
  }
  for (int j = 0; j < W; ++j) {
    a[j] = w[j] * r[j];
    k1[j] = a[j] * t1[j] / acc_t(S);
    k2[j] = a[j] * t2[j] / acc_t(S);
    s1[j] = t1[j];
    s2[j] = t2[j];
  }
  if (unit) {
    const int64_t chunk = populate ? cl_populate_rows<scalar_t>(dv) : S;
    for (int64_t i0 = 0; i0 < S; i0 += chunk) {
      const int64_t i1 = std::min(S, i0 + chunk);
      if (populate) populate_pages(d + n * dv.sn + i0 * dv.ss, (i1 - i0) * dv.ss * int64_t(sizeof(scalar_t)));
      for (int64_t i = i0; i < i1; ++i) {
        cl_bwd_dx_row<FixedW>(xp + i * xv.ss, gp + i * gv.ss, dp + i * dv.ss, W, mean, r, w, b, a, k1, k2, one, slope);
      }
    }
  } else {
    for (int64_t i = 0; i < S; ++i) {
      for (int j = 0; j < W; ++j) {
        const acc_t xh = (static_cast<acc_t>(at_(x, xv, j, i)) - mean[j]) * r[j];
        const acc_t dz = static_cast<acc_t>(at_(g, gv, j, i)) * act_slope<acc_t>(xh * w[j] + b[j], one, slope);
        d[n * dv.sn + (c0 + j) * dv.sc + i * dv.ss] = a[j] * dz - k1[j] - xh * k2[j];
      }
    }
  }
}

// Channels per channels_last unit. A unit reads its stripe of x (S pixels by its channels, 64 B of
// every pixel row at kCB = 16 floats) in two or three passes. While that stripe is at most
// kResidentStripeBytes the later passes find it in cache, and kCB keeps many units for the
// threads. Past that every pass goes to memory, where 64 B taken from every row means a new 4 KiB
// page every few rows (8 at C = 128; the hardware prefetchers stop at each, and each costs a TLB
// miss), so units take the widest of kWideCB and kMidCB channels (512 B and 256 B of each float32
// row) that C reaches and that still leaves at least as many units as threads; at C = 128 or 64
// that is the whole pixel row, one contiguous stream. (A tail unit of any other width than these
// three takes the generic loops.)
// Measured at (4, 128, 128, 128) fp32 channels_last, with fresh outputs, ms:
//   kCB -> kMidCB:     forward 13-14 -> 9.7, backward 23-24 -> 14.6-16 (an earlier VM);
//   kMidCB -> kWideCB: IN + ReLU forward 18.0 -> 14.1, backward 30.6 -> 18.9, x + IN forward +
//                      backward 47.1 -> 31.0 (eager 111-132, same session).
// At (1, 256, 64, 64) (a 256 KiB stripe) the wider units were slower. Each channel's sums keep
// their pixel order at any width: same bits.
constexpr int64_t kResidentStripeBytes = int64_t{256} << 10;
inline int cl_unit_width(int64_t N, int64_t C, int64_t S, int64_t elem_bytes) {
  if (S * kCB * elem_bytes <= kResidentStripeBytes) return kCB;
  for (const int width : {kWideCB, kMidCB}) {
    // only widths that C reaches: no unit but the tail is narrower than the chosen width
    if (C >= width && N * ceil_div(C, width) >= at::get_num_threads()) return width;
  }
  return kCB;
}

// The channels_last units [begin, end) (sample n, channels c0 .. c0 + width - 1) of the forward
// and the backward. As the plane loops, each exists as a baseline and an AVX2 copy (chosen by
// use_avx2) with the same bits: the vector lanes run across channels, every channel's sums stay
// in pixel order, and neither copy uses FMA.
template <typename scalar_t, typename acc_t>
PYGAN_INLINE void fwd_cl_units(int64_t begin, int64_t end, bool unit, const scalar_t* xp, NCS xv, scalar_t* yp,
                               NCS yv, const scalar_t* rp, NCS rv, const scalar_t* wp, const scalar_t* bp, acc_t one,
                               acc_t slope, acc_t eps, bool populate, int width) {
  const int64_t C = xv.c, cblocks = ceil_div(C, width);
  for (int64_t t = begin; t < end; ++t) {
    const int64_t n = t / cblocks, c0 = (t % cblocks) * width;
    const int W = static_cast<int>(std::min<int64_t>(width, C - c0));
    if (W == kWideCB && unit) {
      fwd_cl<true, kWideCB>(xp, xv, yp, yv, rp, rv, n, c0, W, wp, bp, one, slope, eps, populate && c0 == 0);
    } else if (W == kMidCB && unit) {
      fwd_cl<true, kMidCB>(xp, xv, yp, yv, rp, rv, n, c0, W, wp, bp, one, slope, eps, populate && c0 == 0);
    } else if (W == kCB && unit) {
      fwd_cl<true, kCB>(xp, xv, yp, yv, rp, rv, n, c0, W, wp, bp, one, slope, eps, populate && c0 == 0);
    } else {
      fwd_cl<false, 0>(xp, xv, yp, yv, rp, rv, n, c0, W, wp, bp, one, slope, eps, populate && c0 == 0);
    }
  }
}

template <typename scalar_t, typename acc_t>
PYGAN_INLINE void bwd_cl_units(int64_t begin, int64_t end, bool unit, const scalar_t* gp, NCS gv, const scalar_t* xp,
                               NCS xv, scalar_t* dp, NCS dv, const scalar_t* wp, const scalar_t* bp, acc_t one,
                               acc_t slope, acc_t eps, acc_t* s1, acc_t* s2, bool populate, int width) {
  const int64_t C = xv.c, cblocks = ceil_div(C, width);
  for (int64_t t = begin; t < end; ++t) {
    const int64_t n = t / cblocks, c0 = (t % cblocks) * width;
    const int W = static_cast<int>(std::min<int64_t>(width, C - c0));
    acc_t* o1 = s1 + n * C + c0;
    acc_t* o2 = s2 + n * C + c0;
    if (W == kWideCB && unit) {
      bwd_cl<true, kWideCB>(gp, gv, xp, xv, dp, dv, n, c0, W, wp, bp, one, slope, eps, o1, o2, populate && c0 == 0);
    } else if (W == kMidCB && unit) {
      bwd_cl<true, kMidCB>(gp, gv, xp, xv, dp, dv, n, c0, W, wp, bp, one, slope, eps, o1, o2, populate && c0 == 0);
    } else if (W == kCB && unit) {
      bwd_cl<true, kCB>(gp, gv, xp, xv, dp, dv, n, c0, W, wp, bp, one, slope, eps, o1, o2, populate && c0 == 0);
    } else {
      bwd_cl<false, 0>(gp, gv, xp, xv, dp, dv, n, c0, W, wp, bp, one, slope, eps, o1, o2, populate && c0 == 0);
    }
  }
}

template <typename... Args>
void fwd_cl_units_base(Args... args) { fwd_cl_units(args...); }
template <typename... Args>
void bwd_cl_units_base(Args... args) { bwd_cl_units(args...); }
#if PYGAN_AVX2_CLONES
template <typename... Args>
__attribute__((target("avx2"))) void fwd_cl_units_avx2(Args... args) { fwd_cl_units(args...); }
template <typename... Args>
__attribute__((target("avx2"))) void bwd_cl_units_avx2(Args... args) { bwd_cl_units(args...); }
#endif

template <typename T>
const T* ptr_or_null(const std::optional<at::Tensor>& t) {
  return t.has_value() ? t->const_data_ptr<T>() : nullptr;
}

at::Tensor instance_norm_act_cpu(const at::Tensor& x_, const std::optional<at::Tensor>& weight_,
                                 const std::optional<at::Tensor>& bias_, const std::optional<at::Tensor>& residual_,
                                 double slope_, double eps_) {
  check_instance_norm_act_inputs(x_, weight_, bias_, "instance_norm_act");
  if (residual_.has_value()) {
    TORCH_CHECK(residual_->sizes() == x_.sizes() && residual_->scalar_type() == x_.scalar_type() &&
                    residual_->device() == x_.device(),
                "pygan::instance_norm_act: residual must match x in shape, dtype and device");
  }
  NCS xv, rv;
  const at::Tensor x = ncs_input(x_, xv);
  const std::optional<at::Tensor> weight = weight_.has_value() ? std::optional<at::Tensor>(weight_->contiguous()) : std::nullopt;
  const std::optional<at::Tensor> bias = bias_.has_value() ? std::optional<at::Tensor>(bias_->contiguous()) : std::nullopt;
  at::Tensor residual;
  if (residual_.has_value()) residual = ncs_input(*residual_, rv);
  NCSOutput y(output_like(x_));
  if (x.numel() == 0) return y.out;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "instance_norm_act", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const acc_t slope = static_cast<acc_t>(slope_), eps = static_cast<acc_t>(eps_), one = opaque_one<acc_t>();
    const scalar_t* xp = x.const_data_ptr<scalar_t>();
    const scalar_t* wp = ptr_or_null<scalar_t>(weight);
    const scalar_t* bp = ptr_or_null<scalar_t>(bias);
    const scalar_t* rp = residual.defined() ? residual.const_data_ptr<scalar_t>() : nullptr;
    scalar_t* yp = y.work.mutable_data_ptr<scalar_t>();
    const NCS yv = y.v;
    const int64_t N = xv.n, C = xv.c, S = xv.s;
    if (!xv.channels_inner()) {
      const bool unit = xv.ss == 1 && yv.ss == 1 && (rp == nullptr || rv.ss == 1);
      const bool has_act = slope != acc_t(1);   // slope 1: act is the identity, exactly
      const PlaneJob<scalar_t> job{xp, rp, yp, wp, bp, xv, rv, yv, one, slope, eps, nullptr, nullptr,
                                   unit && output_pages_are_fresh(y.work)};
      const int64_t grain = grain_for(S);
      // (unit, activation, residual): the eight plane loops
      if (unit) {
        if (has_act) {
          rp ? fwd_planes_run<true, true, true>(job, grain) : fwd_planes_run<true, true, false>(job, grain);
        } else {
          rp ? fwd_planes_run<true, false, true>(job, grain) : fwd_planes_run<true, false, false>(job, grain);
        }
      } else {
        if (has_act) {
          rp ? fwd_planes_run<false, true, true>(job, grain) : fwd_planes_run<false, true, false>(job, grain);
        } else {
          rp ? fwd_planes_run<false, false, true>(job, grain) : fwd_planes_run<false, false, false>(job, grain);
        }
      }
    } else {
      const int width = cl_unit_width(N, C, S, sizeof(scalar_t));
      const int64_t cblocks = ceil_div(C, width);
      const bool unit = xv.sc == 1;
      const bool populate = yv.sc == 1 && yv.ss == C && output_pages_are_fresh(y.work);
      at::parallel_for(0, N * cblocks, grain_for(S * width), [=](int64_t begin, int64_t end) {
#if PYGAN_AVX2_CLONES
        if (use_avx2()) {
          fwd_cl_units_avx2(begin, end, unit, xp, xv, yp, yv, rp, rv, wp, bp, one, slope, eps, populate, width);
          return;
        }
#endif
        fwd_cl_units_base(begin, end, unit, xp, xv, yp, yv, rp, rv, wp, bp, one, slope, eps, populate, width);
      });
    }
  });
  return y.finish();
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> instance_norm_act_bwd_cpu(
    const at::Tensor& grad_, const at::Tensor& x_, const std::optional<at::Tensor>& weight_,
    const std::optional<at::Tensor>& bias_, double slope_, double eps_) {
  check_instance_norm_act_inputs(x_, weight_, bias_, "instance_norm_act_bwd");
  TORCH_CHECK(grad_.sizes() == x_.sizes() && grad_.scalar_type() == x_.scalar_type() && grad_.device() == x_.device(),
              "pygan::instance_norm_act_bwd: grad must match x in shape, dtype and device");
  NCS gv, xv;
  const at::Tensor grad = ncs_input(grad_, gv), x = ncs_input(x_, xv);
  const std::optional<at::Tensor> weight = weight_.has_value() ? std::optional<at::Tensor>(weight_->contiguous()) : std::nullopt;
  const std::optional<at::Tensor> bias = bias_.has_value() ? std::optional<at::Tensor>(bias_->contiguous()) : std::nullopt;
  NCSOutput dx(output_like(x_));
  const int64_t C = x_.size(1);
  at::Tensor dw = at::empty({C}, x_.options()), db = at::empty({C}, x_.options());
  if (x.numel() == 0) {
    dw.zero_();
    db.zero_();
    return {dx.out, dw, db};
  }
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "instance_norm_act_bwd", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const acc_t slope = static_cast<acc_t>(slope_), eps = static_cast<acc_t>(eps_), one = opaque_one<acc_t>();
    const scalar_t* xp = x.const_data_ptr<scalar_t>();
    const scalar_t* gp = grad.const_data_ptr<scalar_t>();
    const scalar_t* wp = ptr_or_null<scalar_t>(weight);
    const scalar_t* bp = ptr_or_null<scalar_t>(bias);
    scalar_t* dp = dx.work.mutable_data_ptr<scalar_t>();
    const NCS dv = dx.v;
    const int64_t N = xv.n, S = xv.s;
    // per-plane sums of dz and dz * xh, reduced over n afterwards in a fixed order
    std::vector<acc_t> sums(2 * N * C);
    acc_t* s1 = sums.data();
    acc_t* s2 = sums.data() + N * C;
    if (!xv.channels_inner()) {
      const bool unit = xv.ss == 1 && gv.ss == 1 && dv.ss == 1;
      const bool has_act = slope != acc_t(1);
      const PlaneJob<scalar_t> job{xp, gp, dp, wp, bp, xv, gv, dv, one, slope, eps, s1, s2,
                                   unit && output_pages_are_fresh(dx.work)};
      const int64_t grain = grain_for(2 * S);
      if (unit) {
        has_act ? bwd_planes_run<true, true>(job, grain) : bwd_planes_run<true, false>(job, grain);
      } else {
        has_act ? bwd_planes_run<false, true>(job, grain) : bwd_planes_run<false, false>(job, grain);
      }
    } else {
      const int width = cl_unit_width(N, C, S, sizeof(scalar_t));
      const int64_t cblocks = ceil_div(C, width);
      const bool unit = xv.sc == 1;
      const bool populate = dv.sc == 1 && dv.ss == xv.c && output_pages_are_fresh(dx.work);
      at::parallel_for(0, N * cblocks, grain_for(2 * S * width), [=](int64_t begin, int64_t end) {
#if PYGAN_AVX2_CLONES
        if (use_avx2()) {
          bwd_cl_units_avx2(begin, end, unit, gp, gv, xp, xv, dp, dv, wp, bp, one, slope, eps, s1, s2, populate, width);
          return;
        }
#endif
        bwd_cl_units_base(begin, end, unit, gp, gv, xp, xv, dp, dv, wp, bp, one, slope, eps, s1, s2, populate, width);
      });
    }
    scalar_t* dwp = dw.mutable_data_ptr<scalar_t>();
    scalar_t* dbp = db.mutable_data_ptr<scalar_t>();
    for (int64_t c = 0; c < C; ++c) {
      acc_t tw = 0, tb = 0;
      for (int64_t n = 0; n < N; ++n) {
        tb += s1[n * C + c];
        tw += s2[n * C + c];
      }
      dwp[c] = tw;
      dbp[c] = tb;
    }
  });
  return {dx.finish(), dw, db};
}

}  // namespace

TORCH_LIBRARY_IMPL(pygan, CPU, m) {
  m.impl("instance_norm_act", &instance_norm_act_cpu);
  m.impl("instance_norm_act_bwd", &instance_norm_act_bwd_cpu);
}

}  // namespace pygan
