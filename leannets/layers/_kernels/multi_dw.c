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
  const long Hp = (Ho - 1) * s + kmax, Wp = (Wo - 1) * s + kmax, Co = nb * C;
  const long need = 16 * (Hp * Wp + Ho * Wo + kmax * kmax + 1) + 16;
  int failed = 0;
  FOR_BLOCKS16(nthreads_ok(nt), N, C, need, failed)
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
  END_BLOCKS16
  return failed;
}

/* ------------------------------------------------------------------------------------------
   Multiception training, NHWC: the gradients of the raw branch convolutions (no bias, no activation; the
   forward is multi_dw_forward_nhwc with zero bias). gy: (N, Ho, Wo, nb*C) in concatenation order; w as above.
   Op: leannets::multi_depthwise_conv_backward (ops.py). */

/* gx = sum_b conv_transpose(gy_b, w_b): each branch's gradient correlated with its flipped kernel, added up
   in the float32 scratch and written once. */
int multi_dw_backward_input_nhwc(const void* gy, const float* w, void* gx, long N, long C, long H, long W, long nb,
                                 const long* ks, long s, int nt, int bf) {
  long kmax = 1;
  for (long b = 0; b < nb; ++b) kmax = ks[b] > kmax ? ks[b] : kmax;
  const long P = kmax / 2, Ho = (H + 2 * P - kmax) / s + 1, Wo = (W + 2 * P - kmax) / s + 1;
  const long Co = nb * C, Hs = H + kmax - 1, Ws = W + kmax - 1;
  const long need = 16 * (Hs * Ws + 2 * H * W + kmax * kmax + 1) + 16;
  int failed = 0;
  FOR_BLOCKS16(nthreads_ok(nt), N, C, need, failed)
      float *gs = buf, *acc = gs + 16 * Hs * Ws, *tmp = acc + 16 * H * W, *wv = tmp + 16 * H * W;
      float* bv = wv + 16 * kmax * kmax;
      memset(bv, 0, sizeof(float) * 16);
      const float* wb = w;
      for (long b = 0; b < nb; ++b) {
        const long k = ks[b], p = k / 2;
        memset(wv, 0, sizeof(float) * 16 * k * k);
        for (long a = 0; a < k; ++a) /* flipped kernel */
          for (long t = 0; t < k; ++t)
            memcpy(wv + ((k - 1 - a) * k + (k - 1 - t)) * 16, wb + (a * k + t) * C + c0, sizeof(float) * cb);
        gather16(gs, H + k - 1, W + k - 1, elem_c(gy, n * Ho * Wo * Co, bf), Ho, Wo, Co, b * C + c0, cb, k - 1 - p,
                 k - 1 - p, s, s, bf);
        pass16(gs, W + k - 1, b ? tmp : acc, W, 0, 0, H, W, wv, bv, k, k, 1, 1, 0);
        if (b)
          for (long q = 0; q < H * W; ++q) ST16(acc + q * 16, LD16(acc + q * 16) + LD16(tmp + q * 16));
        wb += k * k * C;
      }
      scatter16(elem(gx, n * H * W * C, bf), C, c0, cb, acc, H * W, bf);
  END_BLOCKS16
  return failed;
}

/* gw_b[tap][c] = sum_{n, i, j} gy_b[n, i, j, c] * x_padded[n, i*s + a, j*s + t, c] for every branch b, into the
   layout of w. Each (image, 16-channel block) gathers its padded input once for all branches; per-thread sums
   are added at the end in thread order (deterministic). */
int multi_dw_backward_weight_nhwc(const void* gy, const void* x, float* gw, long N, long C, long H, long W, long nb,
                                  const long* ks, long s, int nt, int bf) {
  long kmax = 1, slots = 0;
  for (long b = 0; b < nb; ++b) {
    kmax = ks[b] > kmax ? ks[b] : kmax;
    slots += ks[b] * ks[b] + 1;
  }
  const long P = kmax / 2, Ho = (H + 2 * P - kmax) / s + 1, Wo = (W + 2 * P - kmax) / s + 1;
  const long blocks = (C + 15) / 16, Co = nb * C, Hp = (Ho - 1) * s + kmax, Wp = (Wo - 1) * s + kmax;
  const int threads = nthreads_ok(nt);
  const long part = blocks * 16 * slots; /* per thread, per branch: blocks x (taps + 1) x 16 */
  float* parts = zeroed_parts(part, threads);
  if (!parts) return 1;
  int failed = 0;
  FOR_BLOCKS16(threads, N, C, 16 * (Hp * Wp + Ho * Wo), failed)
      float *xs = buf, *gs = xs + 16 * Hp * Wp, *acc_b = parts + thread_id() * part;
      gather16(xs, Hp, Wp, elem_c(x, n * H * W * C, bf), H, W, C, c0, cb, P, P, 1, 1, bf);
      for (long b = 0; b < nb; ++b) {
        const long k = ks[b], o = P - k / 2;
        gather16(gs, Ho, Wo, elem_c(gy, n * Ho * Wo * Co, bf), Ho, Wo, Co, b * C + c0, cb, 0, 0, 1, 1, bf);
        wgrad16(xs + (o * Wp + o) * 16, Wp, gs, Ho, Wo, k, k, s, s, acc_b + blk * 16 * (k * k + 1));
        acc_b += blocks * 16 * (k * k + 1);
      }
  END_BLOCKS16
  for (long b = 0, at = 0, wat = 0; b < nb; ++b) {
    reduce_parts16(parts + at, part, threads, blocks, ks[b] * ks[b], C, gw + wat, NULL);
    at += blocks * 16 * (ks[b] * ks[b] + 1);
    wat += ks[b] * ks[b] * C;
  }
  free(parts);
  return failed;
}

/* ------------------------------------------------------------------------------------------
   Multiception training, the input gradient of BN1 → 1×1 at stride 1 (leannets::bn_pointwise_backward): for every
   pixel p, dz[p][j] = a[j] + b[j] * z[p][j] + sum_o g[p][o] * ws[o][j], in one pass over z (PyTorch writes dz,
   then reads and writes it again for the product). z, dz: (P, J) rows, float32 or bfloat16 when bf; g: (P, O)
   float32; ws: (O, J) float32; a, b: (J). */
int bn_pointwise_dz(const void* z, const float* g, const float* ws, const float* a, const float* b, void* dz,
                    long P, long J, long O, int nt, int bf) {
#pragma omp parallel for num_threads(nthreads_ok(nt)) schedule(static)
  for (long p = 0; p < P; ++p) {
    const float* gr = g + p * O;
    float lanes[16] __attribute__((aligned(64)));
    for (long j = 0; j < J; j += 16) {
      const long cb = j + 16 <= J ? 16 : J - j;
      load_lanes(lanes, z, p * J + j, cb, bf);
      if (cb == 16) {
        v16 acc = LD16(a + j) + LD16(b + j) * LD16(lanes);
        for (long o = 0; o < O; ++o) acc += gr[o] * LD16(ws + o * J + j);
        ST16(lanes, acc);
      } else {
        for (long l = 0; l < cb; ++l) {
          float s = a[j + l] + b[j + l] * lanes[l];
          for (long o = 0; o < O; ++o) s += gr[o] * ws[o * J + j + l];
          lanes[l] = s;
        }
      }
      store_lanes(dz, p * J + j, lanes, cb, bf);
    }
  }
  return 0;
}
