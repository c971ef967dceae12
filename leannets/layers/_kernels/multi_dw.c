/* Multiception inference, NHWC. Op: leannets::multi_depthwise (ops.py). */
#include "common.h"

/* ------------------------------------------------------------------------------------------
   Multiception inference, NHWC: nb depthwise branches over all C input channels, kernel ks[b],
   BN folded (bias), one stride s, activation act; output channel b*C + c (the concatenation
   order). Each (image, 16-channel block) gathers its zero-padded input once for every branch.
   w: the branches' tap-major (k_b*k_b, C) arrays one after another; bias: (nb*C). x and y: float32, or
   bfloat16 when bf. */
int multi_dw_forward_nhwc(const void* x, void* y, long N, long C, long H, long W, long nb, const long* ks,
                          const float* w, const float* bias, long s, int act, int nt, int bf) {
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
      gather16(xs, Hp, Wp, elem_c(x, n * H * W * C, bf), H, W, C, c0, cb, P, P, 1, 1, bf);
      const float* wb = w;
      for (long b = 0; b < nb; ++b) {
        const long k = ks[b], o = P - k / 2;
        memset(wv, 0, sizeof(float) * 16 * (k * k + 1));
        for (long t = 0; t < k * k; ++t) memcpy(wv + t * 16, wb + t * C + c0, sizeof(float) * cb);
        memset(bv, 0, sizeof(float) * 16);
        memcpy(bv, bias + b * C + c0, sizeof(float) * cb);
        pass16(xs + (o * Wp + o) * 16, Wp, ys, Wo, 0, 0, Ho, Wo, wv, bv, k, k, s, s, act);
        for (long q = 0; q < Ho * Wo; ++q) store_lanes(y, (n * Ho * Wo + q) * Co + b * C + c0, ys + q * 16, cb, bf);
        wb += k * k * C;
      }
    }
    free(buf);
  }
  return failed;
}
