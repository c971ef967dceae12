/* Depthwise convolution kernels for CPU inference (float32), called from leannets.layers.kernels.

   Layouts: NCHW (one channel plane at a time, vectorised along rows, planes in parallel) and
   NHWC (vectorised across channels, 16-channel blocks in parallel). Entry points: xsep_forward_nchw
   and xsep_forward_nhwc (a whole BN-folded XSepConv block per call), multi_dw_forward_nhwc (the
   depthwise branches of a BN-folded Multiception layer per call), dw_backward_input_nhwc and
   dw_backward_weight_nhwc (depthwise backward for training). Every pass computes
       out = act(bias + sum_{a,t} w[a][t] * in_padded[i*sh + a][j*sw + t])
   where in_padded is the input shifted by (pad_top, pad_left) per channel with zeros around it;
   the bottom/right zeros are implied by the output size. Activations: 0 none, 1 ReLU,
   2 hard-swish. Built with the system C compiler on first use (see kernels.py). */
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

/* ------------------------------------------------------------------------------------------
   NCHW: one plane. The padded input is stored as `sw` column phases (phase p holds columns
   p, p+sw, ...), so every tap reads contiguous memory whatever the stride. */
static long plane_scratch(long Ho, long Wo, long kh, long kw, long sh, long sw) {
  const long Hp = (Ho - 1) * sh + kh, Wp = (Wo - 1) * sw + kw;
  const long Wq = (Wp + sw - 1) / sw;
  return sw * Hp * Wq + SLACK + Wo + SLACK; /* phases, over-read slack, one output row (+ its vector tail) */
}

/* Lanes past Wo read into the next row (or the slack at the end): their results are dropped. */
static void plane_pass(const float* R in, long H, long W, float* R out, long Ho, long Wo, const float* R w,
                       float b, long kh, long kw, long sh, long sw, long pt, long pl, int act, float* R scratch) {
  const long Hp = (Ho - 1) * sh + kh, Wp = (Wo - 1) * sw + kw;
  const long Wq = (Wp + sw - 1) / sw;
  float* R ph = scratch;
  float* R orow = scratch + sw * Hp * Wq + SLACK;
  const long j0 = pl < 0 ? -pl : 0, j1 = W < Wp - pl ? W : Wp - pl;
  for (long r = 0; r < Hp; ++r) {
    const long i = r - pt;
    float* dst = ph + r * Wq;
    if (i < 0 || i >= H || j1 <= j0) {
      for (long q = 0; q < sw; ++q) memset(dst + q * Hp * Wq, 0, sizeof(float) * Wq);
      continue;
    }
    const float* src = in + i * W;
    if (sw == 1) {
      if (j0 + pl > 0) memset(dst, 0, sizeof(float) * (j0 + pl));
      memcpy(dst + j0 + pl, src + j0, sizeof(float) * (j1 - j0));
      if (j1 + pl < Wp) memset(dst + j1 + pl, 0, sizeof(float) * (Wp - j1 - pl));
    } else {
      for (long q = 0; q < sw; ++q) memset(dst + q * Hp * Wq, 0, sizeof(float) * Wq);
      for (long j = j0; j < j1; ++j) {
        const long col = j + pl;
        dst[(col % sw) * Hp * Wq + col / sw] = src[j];
      }
    }
  }
  long off[64]; /* tap -> offset in the phase planes (kw <= 64 is checked by the caller) */
  for (long t = 0; t < kw; ++t) off[t] = (t % sw) * Hp * Wq + t / sw;
  const v8 zero = {0};
  for (long io = 0; io < Ho; ++io) {
    long j = 0;
    for (; j + 32 <= Wo || (j < Wo && Wo - j > 16); j += 32) {
      v8 a0 = zero + b, a1 = a0, a2 = a0, a3 = a0;
      for (long a = 0; a < kh; ++a) {
        const float* rowbase = ph + (io * sh + a) * Wq + j;
        for (long t = 0; t < kw; ++t) {
          const float* s = rowbase + off[t];
          const v8 wv = zero + w[a * kw + t];
          a0 += wv * LD(s); a1 += wv * LD(s + 8); a2 += wv * LD(s + 16); a3 += wv * LD(s + 24);
        }
      }
      ST(orow + j, vact(a0, act)); ST(orow + j + 8, vact(a1, act));
      ST(orow + j + 16, vact(a2, act)); ST(orow + j + 24, vact(a3, act));
    }
    for (; j < Wo; j += 8) {
      v8 a0 = zero + b;
      for (long a = 0; a < kh; ++a) {
        const float* rowbase = ph + (io * sh + a) * Wq + j;
        for (long t = 0; t < kw; ++t) a0 += (zero + w[a * kw + t]) * LD(rowbase + off[t]);
      }
      ST(orow + j, vact(a0, act));
    }
    memcpy(out + io * Wo, orow, sizeof(float) * Wo);
  }
}

static int nthreads_ok(int nt) { return nt > 0 ? nt : 1; }

/* A thread's scratch buffer (64-byte aligned, `floats` rounded up to whole vectors); on failure it sets
   *failed, and the thread skips its work items. */
static float* thread_scratch(long floats, int* failed) {
  float* buf = aligned_alloc(64, sizeof(float) * ((floats + 15) / 16 * 16));
  if (!buf) {
#pragma omp atomic write
    *failed = 1;
  }
  return buf;
}

/* XSepConv (BN folded), NCHW: [2x2 (per-channel pad) -> act] -> 1xk stride (1,s) -> act -> kx1 stride (s,1)
   -> act, each plane through all passes while it is in cache. w2 == NULL: no 2x2 layer. */
int xsep_forward_nchw(const float* x, float* y, long N, long C, long H, long W, const float* w2, const float* b2,
                      const int* pad, const float* w1, const float* b1, const float* wk, const float* bk, long k,
                      long s, int act, int nt) {
  const long p = k / 2, Ho = (H - 1) / s + 1, Wo = (W - 1) / s + 1;
  long need = plane_scratch(H, W, 2, 2, 1, 1);
  long n2 = plane_scratch(H, Wo, 1, k, 1, s), n3 = plane_scratch(Ho, Wo, k, 1, s, 1);
  need = need > n2 ? need : n2;
  need = need > n3 ? need : n3;
  int failed = 0;
#pragma omp parallel num_threads(nthreads_ok(nt))
  {
    float* scratch = thread_scratch(need + H * W + H * Wo, &failed);
#pragma omp for schedule(static)
    for (long nc = 0; nc < N * C; ++nc) {
      if (!scratch) continue;
      const long c = nc % C;
      float* y1 = scratch + need;
      float* y2 = y1 + H * W;
      const float* src = x + nc * H * W;
      if (w2) {
        plane_pass(src, H, W, y1, H, W, w2 + 4 * c, b2[c], 2, 2, 1, 1, pad[2 * c], pad[2 * c + 1], act, scratch);
        src = y1;
      }
      plane_pass(src, H, W, y2, H, Wo, w1 + k * c, b1[c], 1, k, 1, s, 0, p, act, scratch);
      plane_pass(y2, H, Wo, y + nc * Ho * Wo, Ho, Wo, wk + k * c, bk[c], k, 1, s, 1, p, 0, act, scratch);
    }
    free(scratch);
  }
  return failed;
}

/* ------------------------------------------------------------------------------------------
   NHWC: work on 16-channel blocks copied into zero-bordered scratch images (16 floats per pixel). */

/* One pass over a 16-lane scratch image whose borders are already zero: every tap is inside.
   in: rows of `in_w` pixels of 16 floats; out pixel (i, j) goes to out[(i + r0) * out_w + j + q0]. */
static void pass16(const float* R in, long in_w, float* R out, long out_w, long r0, long q0, long Ho, long Wo,
                   const float* R w, const float* R b, long kh, long kw, long sh, long sw, int act) {
  const long d = sw * 16;
  for (long io = 0; io < Ho; ++io) {
    float* o = out + ((io + r0) * out_w + q0) * 16;
    long jo = 0;
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

/* Lanes [0, cb) of taps x 16 weights (and 16 biases) from tap-major (taps, C) arrays, zero beyond. */
static void lanes16(float* R w16, float* R b16, const float* w, const float* b, long taps, long C, long c0, long cb) {
  memset(w16, 0, sizeof(float) * taps * 16);
  memset(b16, 0, sizeof(float) * 16);
  for (long t = 0; t < taps; ++t) memcpy(w16 + t * 16, w + t * C + c0, sizeof(float) * cb);
  memcpy(b16, b + c0, sizeof(float) * cb);
}

/* XSepConv (BN folded), NHWC; weights tap-major (taps, C); pad: (C, 2) (top, left) of the 2x2 layer.
   Work items are (image, 16-channel block). Each copies its channels into a zero-bordered 16-lane
   scratch image and runs all three passes there (every tap inside, four pixels per weight load),
   so one parallel region needs no barrier between passes. */
int xsep_forward_nhwc(const float* x, float* y, long N, long C, long H, long W, const float* w2, const float* b2,
                      const int* pad, const float* w1, const float* b1, const float* wk, const float* bk, long k,
                      long s, int act, int nt) {
  const long p = k / 2, Ho = (H - 1) / s + 1, Wo = (W - 1) / s + 1;
  const long blocks = (C + 15) / 16;
  const long W1 = W + 2 * p;                       /* 1xk input: p zero columns each side */
  const long H2 = H + 2 * p;                       /* kx1 input: p zero rows each side */
  const long n0 = (H + 1) * (W + 1), n1 = H * W1, n2 = H2 * Wo;
  const long need = 16 * (n0 + n1 + n2 + 4 + 2 * k + 3);
  int failed = 0;
#pragma omp parallel num_threads(nthreads_ok(nt))
  {
    float* buf = thread_scratch(need, &failed);
#pragma omp for schedule(static)
    for (long item = 0; item < N * blocks; ++item) {
      if (!buf) continue;
      const long n = item / blocks, c0 = (item % blocks) * 16, cb = c0 + 16 <= C ? 16 : C - c0;
      float *s0 = buf, *s1 = s0 + 16 * n0, *s2 = s1 + 16 * n1, *wb = s2 + 16 * n2;
      float *w2v = wb, *w1v = w2v + 64, *wkv = w1v + 16 * k, *b2v = wkv + 16 * k, *b1v = b2v + 16, *bkv = b1v + 16;
      const float* xn = x + n * H * W * C;
      for (long i = 0; i < H; ++i) { /* zero borders only: the passes write every interior pixel */
        memset(s1 + i * W1 * 16, 0, sizeof(float) * 16 * p);
        memset(s1 + (i * W1 + p + W) * 16, 0, sizeof(float) * 16 * p);
      }
      memset(s2, 0, sizeof(float) * 16 * p * Wo);
      memset(s2 + (p + H) * Wo * 16, 0, sizeof(float) * 16 * p * Wo);
      if (w2) {
        lanes16(w2v, b2v, w2, b2, 4, C, c0, cb);
        memset(s0, 0, sizeof(float) * 16 * n0);
        for (long g0 = c0; g0 < c0 + cb;) { /* runs of channels with the same (top, left) zeros */
          long g1 = g0 + 1;
          while (g1 < c0 + cb && pad[2 * g1] == pad[2 * g0] && pad[2 * g1 + 1] == pad[2 * g0 + 1]) ++g1;
          const long pt = pad[2 * g0], pl = pad[2 * g0 + 1];
          for (long i = 0; i < H; ++i)
            for (long j = 0; j < W; ++j)
              memcpy(s0 + ((i + pt) * (W + 1) + j + pl) * 16 + (g0 - c0), xn + (i * W + j) * C + g0,
                     sizeof(float) * (g1 - g0));
          g0 = g1;
        }
        pass16(s0, W + 1, s1, W1, 0, p, H, W, w2v, b2v, 2, 2, 1, 1, act);
      } else {
        for (long i = 0; i < H; ++i)
          for (long j = 0; j < W; ++j) memcpy(s1 + (i * W1 + j + p) * 16, xn + (i * W + j) * C + c0, sizeof(float) * cb);
      }
      lanes16(w1v, b1v, w1, b1, k, C, c0, cb);
      pass16(s1, W1, s2, Wo, p, 0, H, Wo, w1v, b1v, 1, k, 1, s, act);
      lanes16(wkv, bkv, wk, bk, k, C, c0, cb);
      float* yn = y + n * Ho * Wo * C;
      float* s3 = s0; /* the 2x2 input is no longer needed: it holds the last pass's output */
      pass16(s2, Wo, s3, Wo, 0, 0, Ho, Wo, wkv, bkv, k, 1, s, 1, act);
      for (long q = 0; q < Ho * Wo; ++q) memcpy(yn + q * C + c0, s3 + q * 16, sizeof(float) * cb);
    }
    free(buf);
  }
  return failed;
}

/* ------------------------------------------------------------------------------------------
   Depthwise conv backward for training, NHWC: gradient w.r.t. the input and w.r.t. the weight
   (and bias). Padding: pt/pl zeros top/left (bottom/right implied by the output size). */

/* Copy lanes [c0, c0+cb) of image `src` (H x W x C) into a zero-bordered 16-lane scratch of
   Hs x Ws pixels at offset (r0, q0), with rows/columns spaced by (dr, dq) (dilation for the
   transposed conv of strided layers). */
static inline void copy_lanes(float* R dst, const float* R src, long cb) {
  if (cb == 16) ST16(dst, LD16(src));
  else memcpy(dst, src, sizeof(float) * cb);
}

static void gather16(float* R dst, long Hs, long Ws, const float* R src, long H, long W, long C, long c0, long cb,
                     long r0, long q0, long dr, long dq) {
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
      copy_lanes(dst + (r * Ws + q) * 16, src + (i * W + j) * C + c0, cb);
    }
  }
}

static void scatter16(float* R dst, long C, long c0, long cb, const float* R src, long n_pix) {
  for (long q = 0; q < n_pix; ++q) copy_lanes(dst + q * C + c0, src + q * 16, cb);
}

/* gx = conv_transpose(gy, w): correlation of the (stride-dilated, padded) gradient with the flipped kernel. */
int dw_backward_input_nhwc(const float* gy, const float* w, float* gx, long N, long C, long H, long W, long Ho,
                           long Wo, long kh, long kw, long sh, long sw, long pt, long pl, int nt) {
  const long blocks = (C + 15) / 16, Hs = H + kh - 1, Ws = W + kw - 1;
  const long need = 16 * (Hs * Ws + H * W + kh * kw + 1) + 16;
  int failed = 0;
#pragma omp parallel num_threads(nthreads_ok(nt))
  {
    float* buf = thread_scratch(need, &failed);
#pragma omp for schedule(static)
    for (long item = 0; item < N * blocks; ++item) {
      if (!buf) continue;
      const long n = item / blocks, c0 = (item % blocks) * 16, cb = c0 + 16 <= C ? 16 : C - c0;
      float *gs = buf, *xs = gs + 16 * Hs * Ws, *wv = xs + 16 * H * W, *bv = wv + 16 * kh * kw;
      memset(wv, 0, sizeof(float) * 16 * kh * kw);
      memset(bv, 0, sizeof(float) * 16);
      for (long a = 0; a < kh; ++a) /* flipped kernel */
        for (long t = 0; t < kw; ++t)
          memcpy(wv + ((kh - 1 - a) * kw + (kw - 1 - t)) * 16, w + (a * kw + t) * C + c0, sizeof(float) * cb);
      gather16(gs, Hs, Ws, gy + n * Ho * Wo * C, Ho, Wo, C, c0, cb, kh - 1 - pt, kw - 1 - pl, sh, sw);
      pass16(gs, Ws, xs, W, 0, 0, H, W, wv, bv, kh, kw, 1, 1, 0);
      scatter16(gx + n * H * W * C, C, c0, cb, xs, H * W);
    }
    free(buf);
  }
  return failed;
}

/* gw[tap][c] = sum_{n, i, j} gy[n, i, j, c] * x_padded[n, i*sh + a, j*sw + t, c]; gb[c] = sum gy (if gb).
   Threads take images; per-thread sums are added at the end (fixed order: deterministic). */
int dw_backward_weight_nhwc(const float* gy, const float* x, float* gw, float* gb, long N, long C, long H, long W,
                            long Ho, long Wo, long kh, long kw, long sh, long sw, long pt, long pl, int nt) {
  const long blocks = (C + 15) / 16, Hp = (Ho - 1) * sh + kh, Wp = (Wo - 1) * sw + kw, taps = kh * kw;
  const int threads = nthreads_ok(nt);
  const long part = blocks * 16 * (taps + 1); /* per thread: (taps + bias) x padded channels */
  float* parts = aligned_alloc(64, sizeof(float) * ((part * threads + 15) / 16 * 16));
  if (!parts) return 1;
  memset(parts, 0, sizeof(float) * part * threads);
  int failed = 0;
#pragma omp parallel num_threads(threads)
  {
#ifdef _OPENMP
    const int tid = omp_get_thread_num();
#else
    const int tid = 0;
#endif
    float* acc_all = parts + tid * part;
    float* buf = thread_scratch(16 * (Hp * Wp + Ho * Wo), &failed);
#pragma omp for schedule(static)
    for (long item = 0; item < N * blocks; ++item) {
      if (!buf) continue;
      const long n = item / blocks, blk = item % blocks, c0 = blk * 16, cb = c0 + 16 <= C ? 16 : C - c0;
      float *xs = buf, *gs = xs + 16 * Hp * Wp;
      float* acc = acc_all + blk * 16 * (taps + 1);
      gather16(xs, Hp, Wp, x + n * H * W * C, H, W, C, c0, cb, pt, pl, 1, 1);
      gather16(gs, Ho, Wo, gy + n * Ho * Wo * C, Ho, Wo, C, c0, cb, 0, 0, 1, 1);
      for (long a = 0; a < kh; ++a)
        for (long t = 0; t < kw; ++t) {
          v16 s0 = {0}, s1 = {0}, s2 = {0}, s3 = {0};
          for (long i = 0; i < Ho; ++i) {
            const float* xr = xs + ((i * sh + a) * Wp + t) * 16;
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
      if (gb) {
        v16 s0 = {0};
        for (long q = 0; q < Ho * Wo; ++q) s0 += LD16(gs + q * 16);
        ST16(acc + taps * 16, LD16(acc + taps * 16) + s0);
      }
    }
    free(buf);
  }
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
  free(parts);
  return failed;
}

/* ------------------------------------------------------------------------------------------
   Multiception inference, NHWC: nb depthwise branches over all C input channels, kernel ks[b],
   BN folded (bias), one stride s, activation act; output channel b*C + c (the concatenation
   order). Each (image, 16-channel block) gathers its zero-padded input once for every branch.
   w: the branches' tap-major (k_b*k_b, C) arrays one after another; bias: (nb*C). */
int multi_dw_forward_nhwc(const float* x, float* y, long N, long C, long H, long W, long nb, const long* ks,
                          const float* w, const float* bias, long s, int act, int nt) {
  long kmax = 1;
  for (long b = 0; b < nb; ++b) kmax = ks[b] > kmax ? ks[b] : kmax;
  const long P = kmax / 2, Ho = (H + 2 * P - kmax) / s + 1, Wo = (W + 2 * P - kmax) / s + 1;
  const long Hp = (Ho - 1) * s + kmax, Wp = (Wo - 1) * s + kmax, blocks = (C + 15) / 16, Co = nb * C;
  const long need = 16 * (Hp * Wp + Ho * Wo + kmax * kmax + 1) + 16;
  int failed = 0;
#pragma omp parallel num_threads(nthreads_ok(nt))
  {
    float* buf = thread_scratch(need, &failed);
#pragma omp for schedule(static)
    for (long item = 0; item < N * blocks; ++item) {
      if (!buf) continue;
      const long n = item / blocks, c0 = (item % blocks) * 16, cb = c0 + 16 <= C ? 16 : C - c0;
      float *xs = buf, *ys = xs + 16 * Hp * Wp, *wv = ys + 16 * Ho * Wo, *bv = wv + 16 * kmax * kmax;
      gather16(xs, Hp, Wp, x + n * H * W * C, H, W, C, c0, cb, P, P, 1, 1);
      const float* wb = w;
      for (long b = 0; b < nb; ++b) {
        const long k = ks[b], o = P - k / 2;
        memset(wv, 0, sizeof(float) * 16 * (k * k + 1));
        for (long t = 0; t < k * k; ++t) memcpy(wv + t * 16, wb + t * C + c0, sizeof(float) * cb);
        memset(bv, 0, sizeof(float) * 16);
        memcpy(bv, bias + b * C + c0, sizeof(float) * cb);
        pass16(xs + (o * Wp + o) * 16, Wp, ys, Wo, 0, 0, Ho, Wo, wv, bv, k, k, s, s, act);
        float* yn = y + n * Ho * Wo * Co;
        for (long q = 0; q < Ho * Wo; ++q) copy_lanes(yn + q * Co + b * C + c0, ys + q * 16, cb);
        wb += k * k * C;
      }
    }
    free(buf);
  }
  return failed;
}
