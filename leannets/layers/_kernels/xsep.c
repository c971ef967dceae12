/* XSepConv inference (BN folded), a whole block per call: [2x2 (per-channel pad) -> act] -> 1xk stride
   (1, s) -> act -> kx1 stride (s, 1) -> act, in NCHW and NHWC. Op: leannets::xsep_block (ops.py). */
#include "common.h"

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

/* XSepConv (BN folded), NCHW: [2x2 (per-channel pad) -> act] -> 1xk stride (1,s) -> act -> kx1 stride (s,1)
   -> act, each plane through all passes while it is in cache. w2 == NULL: no 2x2 layer. x and y: float32,
   or bfloat16 when bf (a bf16 plane is widened into scratch first and the output narrowed from it). */
int xsep_forward_nchw(const void* x, void* y, long N, long C, long H, long W, const float* w2, const float* b2,
                      const int* pad, const float* w1, const float* b1, const float* wk, const float* bk, long k,
                      long s, int act, int nt, int bf) {
  const long p = k / 2, Ho = (H - 1) / s + 1, Wo = (W - 1) / s + 1;
  long need = plane_scratch(H, W, 2, 2, 1, 1);
  long n2 = plane_scratch(H, Wo, 1, k, 1, s), n3 = plane_scratch(Ho, Wo, k, 1, s, 1);
  need = need > n2 ? need : n2;
  need = need > n3 ? need : n3;
  int failed = 0;
#pragma omp parallel num_threads(nthreads_ok(nt))
  {
    float* scratch = thread_scratch(need + H * W + H * Wo + (bf ? H * W + Ho * Wo : 0), &failed);
#pragma omp for schedule(static)
    for (long nc = 0; nc < N * C; ++nc) {
      if (!scratch) continue;
      const long c = nc % C;
      float* y1 = scratch + need;
      float* y2 = y1 + H * W;
      float* xin = y2 + H * Wo;        /* bf only: the widened input plane */
      float* yout = xin + H * W;       /* bf only: the output plane before narrowing */
      const float* src = (const float*)x + nc * H * W;
      if (bf) {
        const uint16_t* xb = (const uint16_t*)x + nc * H * W;
        for (long q = 0; q < H * W; ++q) xin[q] = bf16_to_f32(xb[q]);
        src = xin;
      }
      if (w2) {
        plane_pass(src, H, W, y1, H, W, w2 + 4 * c, b2[c], 2, 2, 1, 1, pad[2 * c], pad[2 * c + 1], act, scratch);
        src = y1;
      }
      plane_pass(src, H, W, y2, H, Wo, w1 + k * c, b1[c], 1, k, 1, s, 0, p, act, scratch);
      float* dst = bf ? yout : (float*)y + nc * Ho * Wo;
      plane_pass(y2, H, Wo, dst, Ho, Wo, wk + k * c, bk[c], k, 1, s, 1, p, 0, act, scratch);
      if (bf) {
        uint16_t* yb = (uint16_t*)y + nc * Ho * Wo;
        for (long q = 0; q < Ho * Wo; ++q) yb[q] = f32_to_bf16(yout[q]);
      }
    }
    free(scratch);
  }
  return failed;
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
   so one parallel region needs no barrier between passes. x and y: float32, or bfloat16 when bf. */
int xsep_forward_nhwc(const void* x, void* y, long N, long C, long H, long W, const float* w2, const float* b2,
                      const int* pad, const float* w1, const float* b1, const float* wk, const float* bk, long k,
                      long s, int act, int nt, int bf) {
  const long p = k / 2, Ho = (H - 1) / s + 1, Wo = (W - 1) / s + 1;
  const long W1 = W + 2 * p;                       /* 1xk input: p zero columns each side */
  const long H2 = H + 2 * p;                       /* kx1 input: p zero rows each side */
  const long n0 = (H + 1) * (W + 1), n1 = H * W1, n2 = H2 * Wo;
  const long need = 16 * (n0 + n1 + n2 + 4 + 2 * k + 3);
  int failed = 0;
  FOR_BLOCKS16(nthreads_ok(nt), N, C, need, failed)
      float *s0 = buf, *s1 = s0 + 16 * n0, *s2 = s1 + 16 * n1, *wb = s2 + 16 * n2;
      float *w2v = wb, *w1v = w2v + 64, *wkv = w1v + 16 * k, *b2v = wkv + 16 * k, *b1v = b2v + 16, *bkv = b1v + 16;
      const long xn = n * H * W * C; /* element offset of the image */
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
              load_lanes(s0 + ((i + pt) * (W + 1) + j + pl) * 16 + (g0 - c0), x, xn + (i * W + j) * C + g0, g1 - g0,
                         bf);
          g0 = g1;
        }
        pass16(s0, W + 1, s1, W1, 0, p, H, W, w2v, b2v, 2, 2, 1, 1, act);
      } else {
        for (long i = 0; i < H; ++i)
          for (long j = 0; j < W; ++j) load_lanes(s1 + (i * W1 + j + p) * 16, x, xn + (i * W + j) * C + c0, cb, bf);
      }
      lanes16(w1v, b1v, w1, b1, k, C, c0, cb);
      pass16(s1, W1, s2, Wo, p, 0, H, Wo, w1v, b1v, 1, k, 1, s, act);
      lanes16(wkv, bkv, wk, bk, k, C, c0, cb);
      float* s3 = s0; /* the 2x2 input is no longer needed: it holds the last pass's output */
      pass16(s2, Wo, s3, Wo, 0, 0, Ho, Wo, wkv, bkv, k, 1, s, 1, act);
      scatter16(elem(y, n * Ho * Wo * C, bf), C, c0, cb, s3, Ho * Wo, bf);
  END_BLOCKS16
  return failed;
}
