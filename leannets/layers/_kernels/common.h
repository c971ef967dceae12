/* Shared by the depthwise kernel families (xsep.c, multi_dw.c, depthwise.c): vector types, the
   activations (0 none, 1 ReLU, 2 hard-swish), thread scratch memory and the 16-lane NHWC passes.
   Every pass computes
       out = act(bias + sum_{a,t} w[a][t] * in_padded[i*sh + a][j*sw + t])
   where in_padded is the input shifted by (pad_top, pad_left) per channel with zeros around it;
   the bottom/right zeros are implied by the output size. Layouts: NCHW (one channel plane at a time,
   vectorised along rows) and NHWC (vectorised across 16-channel blocks). Weights, biases and every
   sum are float32; the activations read and written (`bf` = 0: float32, 1: bfloat16) are converted
   on the copies into and out of the float32 scratch, so bf16 costs no extra pass over memory. */
#ifndef LEANNETS_KERNELS_COMMON_H
#define LEANNETS_KERNELS_COMMON_H
#define UNUSED __attribute__((unused))
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#define R __restrict__
typedef float v8 __attribute__((vector_size(32), aligned(4)));
typedef int v8i __attribute__((vector_size(32), aligned(4)));
#define LD(p) (*(const v8*)(p))
#define ST(p, v) (*(v8*)(p) = (v))
#define SLACK 64 /* floats after the padded planes: vector over-reads of the last row stay inside */

typedef float v16 __attribute__((vector_size(64), aligned(4)));
typedef int v16i __attribute__((vector_size(64), aligned(4)));
#define LD16(p) (*(const v16*)(p))
#define ST16(p, v) (*(v16*)(p) = (v))

/* ReLU and hard-swish (act 1, 2; 0: none) for a vector type V with integer twin VI. */
#define DEFINE_VECTOR_ACT(V, VI, RELU, ACT)                                \
  static inline V RELU(V v) { const V z = {0}; return (V)((VI)v & (v > z)); } \
  static inline V ACT(V v, int act) {                                       \
    if (act == 1) return RELU(v);                                           \
    if (act == 2) {                                                         \
      const V z = {0}, three = z + 3.f, six = z + 6.f;                      \
      V r = RELU(v + three);                                                \
      VI lt = r < six;                                                      \
      r = (V)(((VI)r & lt) | ((VI)six & ~lt));                              \
      return v * r * (1.f / 6.f);                                           \
    }                                                                       \
    return v;                                                               \
  }
DEFINE_VECTOR_ACT(v8, v8i, vrelu, vact)
DEFINE_VECTOR_ACT(v16, v16i, vrelu16, vact16)

UNUSED static int nthreads_ok(int nt) { return nt > 0 ? nt : 1; }

/* A thread's scratch buffer (64-byte aligned, `floats` rounded up to whole vectors); on failure it sets
   *failed, and the thread skips its work items. */
UNUSED static float* thread_scratch(long floats, int* failed) {
  float* buf = aligned_alloc(64, sizeof(float) * ((floats + 15) / 16 * 16));
  if (!buf) {
#pragma omp atomic write
    *failed = 1;
  }
  return buf;
}

/* The loop every NHWC pass shares: `threads` OpenMP threads over the (image, 16-channel block) items, each thread
   with a scratch of `need` floats in `buf`; the body sees n (image), blk (block), c0 (its first channel) and cb (its
   channels, <= 16). A thread whose scratch cannot be allocated sets `failed` and skips its items.
   Use:  FOR_BLOCKS16(threads, N, C, need, failed)  ...body...  END_BLOCKS16 */
#define FOR_BLOCKS16(threads, N, C, need, failed)                                                   \
  {                                                                                                 \
    const int fb_threads_ = (threads);                                                              \
    const long fb_c_ = (C), fb_blocks_ = (fb_c_ + 15) / 16, fb_items_ = (N) * fb_blocks_;           \
    const long fb_need_ = (need);                                                                   \
    int* fb_failed_ = &(failed);                                                                    \
    _Pragma("omp parallel num_threads(fb_threads_)") {                                              \
      float* buf = thread_scratch(fb_need_, fb_failed_);                                            \
      _Pragma("omp for schedule(static)") for (long item = 0; item < fb_items_; ++item) {           \
        if (!buf) continue;                                                                         \
        const long n = item / fb_blocks_, blk = item % fb_blocks_, c0 = blk * 16;                   \
        const long cb = c0 + 16 <= fb_c_ ? 16 : fb_c_ - c0;                                         \
        (void)n;                                                                                    \
        (void)cb;
#define END_BLOCKS16 \
      }              \
      free(buf);     \
    }                \
  }

/* Zeroed per-thread partial sums: `threads` arrays of `part` floats (NULL when out of memory). */
UNUSED static float* zeroed_parts(long part, int threads) {
  float* parts = aligned_alloc(64, sizeof(float) * ((part * threads + 15) / 16 * 16));
  if (parts) memset(parts, 0, sizeof(float) * part * threads);
  return parts;
}

UNUSED static int thread_id(void) {
#ifdef _OPENMP
  return omp_get_thread_num();
#else
  return 0;
#endif
}

/* ------------------------------------------------------------------------------------------
   NHWC: work on 16-channel blocks copied into zero-bordered scratch images (16 floats per pixel). */

/* One pass over a 16-lane scratch image whose borders are already zero: every tap is inside.
   in: rows of `in_w` pixels of 16 floats; out pixel (i, j) goes to out[(i + r0) * out_w + j + q0]. */
/* Stride 1 along rows, KW taps known at compile time: 8 outputs of a row at once, the 8 + KW - 1 input pixels of
   each kernel row loaded once into registers (each serves up to KW taps) instead of once per tap. */
#define DEFINE_ROW8_S1(KW)                                                                                          \
  static inline void row8_s1_##KW(const float* R src, long in_w, long kh, const float* R w, v16* R acc) {          \
    for (long a = 0; a < kh; ++a) {                                                                                \
      const float* s_ = src + a * in_w * 16;                                                                       \
      v16 x_[8 + KW - 1];                                                                                          \
      for (int u = 0; u < 8 + KW - 1; ++u) x_[u] = LD16(s_ + u * 16);                                              \
      for (int t = 0; t < KW; ++t) {                                                                               \
        const v16 wv = LD16(w + (a * KW + t) * 16);                                                                \
        for (int r = 0; r < 8; ++r) acc[r] += wv * x_[r + t];                                                      \
      }                                                                                                            \
    }                                                                                                              \
  }
DEFINE_ROW8_S1(2)
DEFINE_ROW8_S1(3)
DEFINE_ROW8_S1(5)
DEFINE_ROW8_S1(7)
DEFINE_ROW8_S1(9)

/* 8 outputs of a row with the specialised stride-1 kernel for kw taps: 1, or 0 when there is none. */
static inline int row8_s1(const float* R src, long in_w, long kh, long kw, const float* R w, v16* R acc) {
  switch (kw) {
    case 2: row8_s1_2(src, in_w, kh, w, acc); return 1;
    case 3: row8_s1_3(src, in_w, kh, w, acc); return 1;
    case 5: row8_s1_5(src, in_w, kh, w, acc); return 1;
    case 7: row8_s1_7(src, in_w, kh, w, acc); return 1;
    case 9: row8_s1_9(src, in_w, kh, w, acc); return 1;
    default: return 0;
  }
}

UNUSED static void pass16(const float* R in, long in_w, float* R out, long out_w, long r0, long q0, long Ho, long Wo,
                   const float* R w, const float* R b, long kh, long kw, long sh, long sw, int act) {
  const long d = sw * 16;
  const int fast = sw == 1 && (kw == 2 || kw == 3 || kw == 5 || kw == 7 || kw == 9);
  for (long io = 0; io < Ho; ++io) {
    float* o = out + ((io + r0) * out_w + q0) * 16;
    long jo = 0;
    for (; fast && jo + 8 <= Wo; jo += 8) {
      v16 acc[8];
      for (int r = 0; r < 8; ++r) acc[r] = LD16(b);
      row8_s1(in + (io * sh * in_w + jo) * 16, in_w, kh, kw, w, acc);
      for (int r = 0; r < 8; ++r) ST16(o + (jo + r) * 16, vact16(acc[r], act));
    }
    for (; jo + 4 <= Wo; jo += 4) {
      v16 a_0 = LD16(b), a_1 = a_0, a_2 = a_0, a_3 = a_0;
      for (long a = 0; a < kh; ++a) {
        const float* src = in + ((io * sh + a) * in_w + jo * sw) * 16;
        for (long t = 0; t < kw; ++t) {
          const v16 wv = LD16(w + (a * kw + t) * 16);
          const float* q = src + t * 16;
          a_0 += wv * LD16(q); a_1 += wv * LD16(q + d); a_2 += wv * LD16(q + 2 * d); a_3 += wv * LD16(q + 3 * d);
        }
      }
      ST16(o + jo * 16, vact16(a_0, act)); ST16(o + (jo + 1) * 16, vact16(a_1, act));
      ST16(o + (jo + 2) * 16, vact16(a_2, act)); ST16(o + (jo + 3) * 16, vact16(a_3, act));
    }
    for (; jo < Wo; ++jo) {
      v16 acc = LD16(b);
      for (long a = 0; a < kh; ++a) {
        const float* src = in + ((io * sh + a) * in_w + jo * sw) * 16;
        for (long t = 0; t < kw; ++t) acc += LD16(w + (a * kw + t) * 16) * LD16(src + t * 16);
      }
      ST16(o + jo * 16, vact16(acc, act));
    }
  }
}

/* bfloat16 is the upper half of a float32: widening is a shift, narrowing rounds to nearest even
   (NaNs stay NaN: a quiet bit is set). */
static inline float bf16_to_f32(uint16_t h) {
  union { uint32_t u; float f; } v = {(uint32_t)h << 16};
  return v.f;
}
static inline uint16_t f32_to_bf16(float f) {
  union { float f; uint32_t u; } v = {f};
  const uint32_t rounded = (v.u + 0x7fffu + ((v.u >> 16) & 1u)) >> 16;
  return (uint16_t)((v.u & 0x7fffffffu) > 0x7f800000u ? (v.u >> 16) | 0x40u : rounded);
}

/* Element `off` of an activation array (float32, or bfloat16 when bf). */
static inline const void* elem_c(const void* p, long off, int bf) { return (const char*)p + off * (bf ? 2 : 4); }
static inline void* elem(void* p, long off, int bf) { return (char*)p + off * (bf ? 2 : 4); }

/* dst[0, cb) = element `off` onwards of src (float32, or bfloat16 when bf), widened to float32. */
static inline void load_lanes(float* R dst, const void* R src, long off, long cb, int bf) {
  if (!bf) {
    const float* s = (const float*)src + off;
    if (cb == 16) ST16(dst, LD16(s));
    else memcpy(dst, s, sizeof(float) * cb);
  } else {
    const uint16_t* s = (const uint16_t*)src + off;
    for (long l = 0; l < cb; ++l) dst[l] = bf16_to_f32(s[l]);
  }
}

/* Element `off` onwards of dst (float32, or bfloat16 when bf) = src[0, cb). */
static inline void store_lanes(void* R dst, long off, const float* R src, long cb, int bf) {
  if (!bf) {
    float* d = (float*)dst + off;
    if (cb == 16) ST16(d, LD16(src));
    else memcpy(d, src, sizeof(float) * cb);
  } else {
    uint16_t* d = (uint16_t*)dst + off;
    for (long l = 0; l < cb; ++l) d[l] = f32_to_bf16(src[l]);
  }
}

/* Copy lanes [c0, c0+cb) of image `src` (H x W x C, float32 or bfloat16 when bf) into a zero-bordered
   16-lane float32 scratch of Hs x Ws pixels at offset (r0, q0), with rows/columns spaced by (dr, dq)
   (dilation for the transposed conv of strided layers). */
UNUSED static void gather16(float* R dst, long Hs, long Ws, const void* R src, long H, long W, long C, long c0,
                            long cb, long r0, long q0, long dr, long dq, int bf) {
  if (dr != 1 || dq != 1 || cb != 16) {
    memset(dst, 0, sizeof(float) * 16 * Hs * Ws);
  } else { /* zero only what the copy below does not write */
    const long top = r0 < 0 ? 0 : (r0 < Hs ? r0 : Hs), bottom = r0 + H < 0 ? 0 : (r0 + H < Hs ? r0 + H : Hs);
    const long left = q0 < 0 ? 0 : (q0 < Ws ? q0 : Ws), right = q0 + W < 0 ? 0 : (q0 + W < Ws ? q0 + W : Ws);
    memset(dst, 0, sizeof(float) * 16 * top * Ws);
    memset(dst + bottom * Ws * 16, 0, sizeof(float) * 16 * (Hs - bottom) * Ws);
    for (long r = top; r < bottom; ++r) {
      memset(dst + r * Ws * 16, 0, sizeof(float) * 16 * left);
      memset(dst + (r * Ws + right) * 16, 0, sizeof(float) * 16 * (Ws - right));
    }
  }
  for (long i = 0; i < H; ++i) {
    const long r = r0 + i * dr;
    if (r < 0 || r >= Hs) continue;
    for (long j = 0; j < W; ++j) {
      const long q = q0 + j * dq;
      if (q < 0 || q >= Ws) continue;
      load_lanes(dst + (r * Ws + q) * 16, src, (i * W + j) * C + c0, cb, bf);
    }
  }
}

/* Lanes [0, cb) of n_pix scratch pixels into channels [c0, c0+cb) of image `dst` (float32, or bfloat16 when bf). */
UNUSED static void scatter16(void* R dst, long C, long c0, long cb, const float* R src, long n_pix, int bf) {
  for (long q = 0; q < n_pix; ++q) store_lanes(dst, q * C + c0, src + q * 16, cb, bf);
}

/* One row of taps (a fixed) of a stride-1 (along rows) weight gradient: acc[t] += sum_{i, j} gs[i][j] *
   xs[i*sh + a][j + t] for t < KW. The inputs of two neighbouring output pixels slide through registers (two loads
   of x and two of the gradient feed 2*KW multiply-adds, in 2*KW independent sums). */
#define DEFINE_WGRAD_ROW(KW)                                                                                      \
  UNUSED static void wgrad_row_##KW(const float* R xs, long in_w, const float* R gs, long Ho, long Wo, long sh,   \
                                    long a, float* R acc) {                                                     \
    const v16 z = {0};                                                                                           \
    v16 s0[KW], s1[KW], win[KW + 1];                                                                             \
    for (int t = 0; t < KW; ++t) s0[t] = s1[t] = z;                                                              \
    for (long i = 0; i < Ho; ++i) {                                                                              \
      const float* xr = xs + (i * sh + a) * in_w * 16;                                                           \
      const float* gr = gs + i * Wo * 16;                                                                        \
      for (int t = 0; t < KW - 1; ++t) win[t] = LD16(xr + t * 16);                                               \
      long j = 0;                                                                                                \
      for (; j + 2 <= Wo; j += 2) {                                                                              \
        win[KW - 1] = LD16(xr + (j + KW - 1) * 16);                                                              \
        win[KW] = LD16(xr + (j + KW) * 16);                                                                      \
        const v16 g0 = LD16(gr + j * 16), g1 = LD16(gr + (j + 1) * 16);                                          \
        for (int t = 0; t < KW; ++t) {                                                                           \
          s0[t] += g0 * win[t];                                                                                  \
          s1[t] += g1 * win[t + 1];                                                                              \
        }                                                                                                        \
        for (int t = 0; t < KW - 1; ++t) win[t] = win[t + 2];                                                    \
      }                                                                                                          \
      if (j < Wo) {                                                                                              \
        win[KW - 1] = LD16(xr + (j + KW - 1) * 16);                                                              \
        const v16 g0 = LD16(gr + j * 16);                                                                        \
        for (int t = 0; t < KW; ++t) s0[t] += g0 * win[t];                                                       \
      }                                                                                                          \
    }                                                                                                            \
    for (int t = 0; t < KW; ++t) ST16(acc + t * 16, LD16(acc + t * 16) + (s0[t] + s1[t]));                       \
  }
DEFINE_WGRAD_ROW(1)
DEFINE_WGRAD_ROW(3)
DEFINE_WGRAD_ROW(5)
DEFINE_WGRAD_ROW(7)
DEFINE_WGRAD_ROW(9)

/* acc[(a*kw + t)*16 + l] += sum_{i<Ho, j<Wo} gs[i][j][l] * xs[i*sh + a][j*sw + t][l]: the weight gradient of a
   depthwise conv over one 16-lane block (xs: zero-bordered input, rows of `in_w` pixels; gs: Ho x Wo gradient).
   Stride 1 along rows with kw in {1, 3, 5, 7, 9} takes the register-window rows above. */
UNUSED static void wgrad16(const float* R xs, long in_w, const float* R gs, long Ho, long Wo, long kh, long kw,
                           long sh, long sw, float* R acc) {
  if (sw == 1 && kw <= 9 && kw % 2 == 1) {
    for (long a = 0; a < kh; ++a) {
      float* row = acc + a * kw * 16;
      switch (kw) {
        case 1: wgrad_row_1(xs, in_w, gs, Ho, Wo, sh, a, row); break;
        case 3: wgrad_row_3(xs, in_w, gs, Ho, Wo, sh, a, row); break;
        case 5: wgrad_row_5(xs, in_w, gs, Ho, Wo, sh, a, row); break;
        case 7: wgrad_row_7(xs, in_w, gs, Ho, Wo, sh, a, row); break;
        default: wgrad_row_9(xs, in_w, gs, Ho, Wo, sh, a, row); break;
      }
    }
    return;
  }
  for (long a = 0; a < kh; ++a)
    for (long t = 0; t < kw; ++t) {
      v16 s0 = {0}, s1 = {0}, s2 = {0}, s3 = {0};
      for (long i = 0; i < Ho; ++i) {
        const float* xr = xs + ((i * sh + a) * in_w + t) * 16;
        const float* gr = gs + i * Wo * 16;
        long j = 0;
        for (; j + 4 <= Wo; j += 4) {
          s0 += LD16(gr + j * 16) * LD16(xr + j * sw * 16);
          s1 += LD16(gr + (j + 1) * 16) * LD16(xr + (j + 1) * sw * 16);
          s2 += LD16(gr + (j + 2) * 16) * LD16(xr + (j + 2) * sw * 16);
          s3 += LD16(gr + (j + 3) * 16) * LD16(xr + (j + 3) * sw * 16);
        }
        for (; j < Wo; ++j) s0 += LD16(gr + j * 16) * LD16(xr + j * sw * 16);
      }
      ST16(acc + (a * kw + t) * 16, LD16(acc + (a * kw + t) * 16) + ((s0 + s1) + (s2 + s3)));
    }
}

/* Weight-gradient partial sums of every thread, `part` floats apart, each laid out (block, tap, lane) with
   taps + 1 slots per block (the last one: the bias), added up in thread order (deterministic) into the
   tap-major gw[tap*C + c] and, when gb, gb[c]. */
UNUSED static void reduce_parts16(const float* R parts, long part, int threads, long blocks, long taps, long C,
                                  float* R gw, float* R gb) {
  for (long blk = 0; blk < blocks; ++blk) {
    const long c0 = blk * 16, cb = c0 + 16 <= C ? 16 : C - c0;
    for (long tap = 0; tap <= taps; ++tap) {
      if (tap == taps && !gb) break;
      for (long l = 0; l < cb; ++l) {
        float s = 0.f;
        for (int th = 0; th < threads; ++th) s += parts[th * part + blk * 16 * (taps + 1) + tap * 16 + l];
        if (tap < taps) gw[tap * C + c0 + l] = s;
        else gb[c0 + l] = s;
      }
    }
  }
}
#endif
