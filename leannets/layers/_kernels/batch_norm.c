/* BatchNorm training on NHWC rows for any channel count. Op: leannets::batch_norm_train (ops.py).
   PyTorch's channels_last BatchNorm vectorises across channels and falls to a slow path when C is not a multiple
   of the vector width (DenseNet's and DxNet's growth-12 tensors); here every pass runs over whole pixel rows,
   each thread over a contiguous range of pixels, with per-thread double sums added in thread order. Activations
   (x, y, the gradients) are float32, or bfloat16 when bf; statistics and coefficients float32. Each entry point
   calls its body with bf as a constant, so the compiler specialises the loops for each element type. */
#include "common.h"

/* Element i of an activation array (float32, or bfloat16 when bf) as float32, and the store back. */
static inline float ld(const void* p, long i, int bf) {
  return bf ? bf16_to_f32(((const uint16_t*)p)[i]) : ((const float*)p)[i];
}
static inline void st(void* p, long i, float v, int bf) {
  if (bf) ((uint16_t*)p)[i] = f32_to_bf16(v);
  else ((float*)p)[i] = v;
}

/* The loop both sums share: `threads` OpenMP threads over the rows p < P, each adding into its own two double arrays
   s1 and s2 of C channels in `parts` (2C doubles per thread). Use: FOR_ROWS_SUMMING(...) body END_ROWS_SUMMING */
#define FOR_ROWS_SUMMING(threads, P, C, parts)                 \
  _Pragma("omp parallel num_threads(threads)") {               \
    double* s1 = (parts) + 2 * (C) * thread_id();              \
    double* s2 = s1 + (C);                                     \
    _Pragma("omp for schedule(static)") for (long p = 0; p < (P); ++p) {
#define END_ROWS_SUMMING \
    }                    \
  }

/* sums[c] and sums[C + c] of the 2C totals, each added up over the threads' rows in thread order. */
static void add_thread_sums(const double* parts, int threads, long C, double* sums) {
  for (long c = 0; c < 2 * C; ++c) {
    double s = 0.0;
    for (int th = 0; th < threads; ++th) s += parts[2 * C * th + c];
    sums[c] = s;
  }
}

/* mean[c] and biased var[c] of x (P, C): shifted sums (shift = pixel 0) in double, one pass. */
static inline int stats(const void* x, float* mean, float* var, long P, long C, int nt, const int bf) {
  const int threads = nthreads_ok(nt);
  double* parts = P > 0 ? calloc((size_t)(2 * C * (threads + 1)), sizeof(double)) : NULL;
  if (!parts) return 1;
  FOR_ROWS_SUMMING(threads, P, C, parts)
    for (long c = 0; c < C; ++c) {
      const double d = (double)ld(x, p * C + c, bf) - (double)ld(x, c, bf);
      s1[c] += d;
      s2[c] += d * d;
    }
  END_ROWS_SUMMING
  double* sums = parts + 2 * C * threads;
  add_thread_sums(parts, threads, C, sums);
  for (long c = 0; c < C; ++c) {
    const double m = sums[c] / (double)P, v = sums[C + c] / (double)P - m * m;
    mean[c] = (float)(m + (double)ld(x, c, bf));
    var[c] = (float)(v > 0.0 ? v : 0.0);
  }
  free(parts);
  return 0;
}

int bn_nhwc_stats(const void* x, float* mean, float* var, long P, long C, int nt, int bf) {
  return bf ? stats(x, mean, var, P, C, nt, 1) : stats(x, mean, var, P, C, nt, 0);
}

/* y = (x - mean[c]) * scale[c] + shift[c] over (P, C) rows (centred first: no cancellation when |mean| >> std). */
static inline void affine(const void* x, const float* mean, const float* scale, const float* shift, void* y, long P,
                          long C, int nt, const int bf) {
#pragma omp parallel for num_threads(nthreads_ok(nt)) schedule(static)
  for (long p = 0; p < P; ++p)
    for (long c = 0; c < C; ++c) st(y, p * C + c, (ld(x, p * C + c, bf) - mean[c]) * scale[c] + shift[c], bf);
}

int bn_nhwc_affine(const void* x, const float* mean, const float* scale, const float* shift, void* y, long P, long C,
                   int nt, int bf) {
  if (bf) affine(x, mean, scale, shift, y, P, C, nt, 1);
  else affine(x, mean, scale, shift, y, P, C, nt, 0);
  return 0;
}

/* sum_g[c] = sum_p g[p][c] and sum_gx[c] = sum_p g[p][c] * (x[p][c] - mean[c]), in double. */
static inline int grad_sums(const void* g, const void* x, const float* mean, float* sum_g, float* sum_gx, long P,
                            long C, int nt, const int bf) {
  const int threads = nthreads_ok(nt);
  double* parts = calloc((size_t)(2 * C * (threads + 1)), sizeof(double));
  if (!parts) return 1;
  FOR_ROWS_SUMMING(threads, P, C, parts)
    for (long c = 0; c < C; ++c) {
      const float gv = ld(g, p * C + c, bf);
      s1[c] += gv;
      s2[c] += (double)gv * (double)(ld(x, p * C + c, bf) - mean[c]);
    }
  END_ROWS_SUMMING
  double* sums = parts + 2 * C * threads;
  add_thread_sums(parts, threads, C, sums);
  for (long c = 0; c < C; ++c) {
    sum_g[c] = (float)sums[c];
    sum_gx[c] = (float)sums[C + c];
  }
  free(parts);
  return 0;
}

int bn_nhwc_grad_sums(const void* g, const void* x, const float* mean, float* sum_g, float* sum_gx, long P, long C,
                      int nt, int bf) {
  return bf ? grad_sums(g, x, mean, sum_g, sum_gx, P, C, nt, 1) : grad_sums(g, x, mean, sum_g, sum_gx, P, C, nt, 0);
}

/* dx = g * a[c] + (x - mean[c]) * b[c] + d[c] over (P, C) rows. */
static inline void grad_input(const void* g, const void* x, const float* mean, const float* a, const float* b,
                              const float* d, void* dx, long P, long C, int nt, const int bf) {
#pragma omp parallel for num_threads(nthreads_ok(nt)) schedule(static)
  for (long p = 0; p < P; ++p)
    for (long c = 0; c < C; ++c) {
      const long i = p * C + c;
      st(dx, i, ld(g, i, bf) * a[c] + (ld(x, i, bf) - mean[c]) * b[c] + d[c], bf);
    }
}

int bn_nhwc_grad_input(const void* g, const void* x, const float* mean, const float* a, const float* b,
                       const float* d, void* dx, long P, long C, int nt, int bf) {
  if (bf) grad_input(g, x, mean, a, b, d, dx, P, C, nt, 1);
  else grad_input(g, x, mean, a, b, d, dx, P, C, nt, 0);
  return 0;
}
