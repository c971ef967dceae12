/* Depthwise conv for training, NHWC: the bfloat16 forward, and the gradients w.r.t. the input and w.r.t. the
   weight (and bias) in float32 or bfloat16. Padding: pt/pl zeros top/left (bottom/right implied by the
   output size). Weights, biases and their gradients are float32; x, y, gy and gx are float32, or bfloat16
   when bf. Ops: leannets::depthwise_conv2d and leannets::depthwise_conv2d_backward (ops.py). */
#include "common.h"

/* y = conv(x, w) + b, w tap-major (kh*kw, C), b (C) or NULL. PyTorch's float32 forward (oneDNN) is
   faster than this one; bfloat16 input runs here, with float32 sums, instead of oneDNN's bf16 depthwise. */
int dw_forward_nhwc(const void* x, const float* w, const float* b, void* y, long N, long C, long H, long W, long Ho,
                    long Wo, long kh, long kw, long sh, long sw, long pt, long pl, int nt, int bf) {
  const long Hp = (Ho - 1) * sh + kh, Wp = (Wo - 1) * sw + kw;
  const long need = 16 * (Hp * Wp + Ho * Wo + kh * kw + 1) + 16;
  int failed = 0;
  FOR_BLOCKS16(nthreads_ok(nt), N, C, need, failed)
      float *xs = buf, *ys = xs + 16 * Hp * Wp, *wv = ys + 16 * Ho * Wo, *bv = wv + 16 * kh * kw;
      memset(wv, 0, sizeof(float) * 16 * kh * kw);
      memset(bv, 0, sizeof(float) * 16);
      for (long t = 0; t < kh * kw; ++t) memcpy(wv + t * 16, w + t * C + c0, sizeof(float) * cb);
      if (b) memcpy(bv, b + c0, sizeof(float) * cb);
      gather16(xs, Hp, Wp, elem_c(x, n * H * W * C, bf), H, W, C, c0, cb, pt, pl, 1, 1, bf);
      pass16(xs, Wp, ys, Wo, 0, 0, Ho, Wo, wv, bv, kh, kw, sh, sw, 0);
      scatter16(elem(y, n * Ho * Wo * C, bf), C, c0, cb, ys, Ho * Wo, bf);
  END_BLOCKS16
  return failed;
}

/* gx = conv_transpose(gy, w): correlation of the (stride-dilated, padded) gradient with the flipped kernel. */
int dw_backward_input_nhwc(const void* gy, const float* w, void* gx, long N, long C, long H, long W, long Ho,
                           long Wo, long kh, long kw, long sh, long sw, long pt, long pl, int nt, int bf) {
  const long Hs = H + kh - 1, Ws = W + kw - 1;
  const long need = 16 * (Hs * Ws + H * W + kh * kw + 1) + 16;
  int failed = 0;
  FOR_BLOCKS16(nthreads_ok(nt), N, C, need, failed)
      float *gs = buf, *xs = gs + 16 * Hs * Ws, *wv = xs + 16 * H * W, *bv = wv + 16 * kh * kw;
      memset(wv, 0, sizeof(float) * 16 * kh * kw);
      memset(bv, 0, sizeof(float) * 16);
      for (long a = 0; a < kh; ++a) /* flipped kernel */
        for (long t = 0; t < kw; ++t)
          memcpy(wv + ((kh - 1 - a) * kw + (kw - 1 - t)) * 16, w + (a * kw + t) * C + c0, sizeof(float) * cb);
      gather16(gs, Hs, Ws, elem_c(gy, n * Ho * Wo * C, bf), Ho, Wo, C, c0, cb, kh - 1 - pt, kw - 1 - pl, sh, sw, bf);
      pass16(gs, Ws, xs, W, 0, 0, H, W, wv, bv, kh, kw, 1, 1, 0);
      scatter16(elem(gx, n * H * W * C, bf), C, c0, cb, xs, H * W, bf);
  END_BLOCKS16
  return failed;
}

/* gw[tap][c] = sum_{n, i, j} gy[n, i, j, c] * x_padded[n, i*sh + a, j*sw + t, c]; gb[c] = sum gy (if gb).
   Threads take images; per-thread sums are added at the end (fixed order: deterministic). */
int dw_backward_weight_nhwc(const void* gy, const void* x, float* gw, float* gb, long N, long C, long H, long W,
                            long Ho, long Wo, long kh, long kw, long sh, long sw, long pt, long pl, int nt, int bf) {
  const long blocks = (C + 15) / 16, Hp = (Ho - 1) * sh + kh, Wp = (Wo - 1) * sw + kw, taps = kh * kw;
  const int threads = nthreads_ok(nt);
  const long part = blocks * 16 * (taps + 1); /* per thread: (taps + bias) x padded channels */
  float* parts = zeroed_parts(part, threads);
  if (!parts) return 1;
  int failed = 0;
  FOR_BLOCKS16(threads, N, C, 16 * (Hp * Wp + Ho * Wo), failed)
      float *xs = buf, *gs = xs + 16 * Hp * Wp;
      float* acc = parts + thread_id() * part + blk * 16 * (taps + 1);
      gather16(xs, Hp, Wp, elem_c(x, n * H * W * C, bf), H, W, C, c0, cb, pt, pl, 1, 1, bf);
      gather16(gs, Ho, Wo, elem_c(gy, n * Ho * Wo * C, bf), Ho, Wo, C, c0, cb, 0, 0, 1, 1, bf);
      wgrad16(xs, Wp, gs, Ho, Wo, kh, kw, sh, sw, acc);
      if (gb) {
        v16 s0 = {0};
        for (long q = 0; q < Ho * Wo; ++q) s0 += LD16(gs + q * 16);
        ST16(acc + taps * 16, LD16(acc + taps * 16) + s0);
      }
  END_BLOCKS16
  reduce_parts16(parts, part, threads, blocks, taps, C, gw, gb);
  free(parts);
  return failed;
}
