/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Row-wise CUDA ops over the last dimension: softmax, layer norm, RMS norm. One
 * block of 256 threads per row; block reductions with warp shuffles. Rows of any
 * stride and dtype; statistics in f32 like the CPU ops.
 */
#include <math.h>

#include "common.cuh"

enum { ROW_SOFTMAX = 0, ROW_LN = 1, ROW_RMS = 2 };

#define ROW_THREADS 256

/* Sum (or max) of v over the block; every thread gets the result. */
__device__ float block_reduce(float v, bool is_max) {
  __shared__ float part[ROW_THREADS / 32];
  for (int o = 16; o > 0; o >>= 1) {
    float w = __shfl_xor_sync(0xffffffffu, v, o);
    v = is_max ? fmaxf(v, w) : v + w;
  }
  int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  if (lane == 0) part[warp] = v;
  __syncthreads();
  if (warp == 0) {
    v = lane < ROW_THREADS / 32 ? part[lane] : (is_max ? -INFINITY : 0.0f);
    for (int o = 16; o > 0; o >>= 1) {
      float w = __shfl_xor_sync(0xffffffffu, v, o);
      v = is_max ? fmaxf(v, w) : v + w;
    }
    if (lane == 0) part[0] = v;
  }
  __syncthreads();
  float r = part[0];
  __syncthreads(); /* part[] is reused by the next reduction */
  return r;
}

__global__ void row_kernel(int kind, reel__cuda_iter it, void *out, int odt, int64_t ost, const void *x, int xdt,
                           int64_t xst, int64_t D, const void *w, int wdt, int64_t wst, const void *bias, int bdt,
                           int64_t bst, float eps, int64_t rows) {
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    int64_t off[3];
    reel__iter_offsets(it, 2, r, off);
    const int64_t oo = off[0], xo = off[1];
    if (kind == ROW_SOFTMAX) {
      float m = -INFINITY;
      for (int64_t i = threadIdx.x; i < D; i += blockDim.x) m = fmaxf(m, reel__ld(x, xdt, xo + i * xst));
      m = block_reduce(m, true);
      float s = 0.0f;
      for (int64_t i = threadIdx.x; i < D; i += blockDim.x) s += expf(reel__ld(x, xdt, xo + i * xst) - m);
      s = block_reduce(s, false);
      float inv = 1.0f / s;
      for (int64_t i = threadIdx.x; i < D; i += blockDim.x)
        reel__st(out, odt, oo + i * ost, expf(reel__ld(x, xdt, xo + i * xst) - m) * inv);
    } else {
      float mean = 0.0f;
      if (kind == ROW_LN) {
        float s = 0.0f;
        for (int64_t i = threadIdx.x; i < D; i += blockDim.x) s += reel__ld(x, xdt, xo + i * xst);
        mean = block_reduce(s, false) / (float)D;
      }
      float q = 0.0f;
      for (int64_t i = threadIdx.x; i < D; i += blockDim.x) {
        float d = reel__ld(x, xdt, xo + i * xst) - mean;
        q += d * d;
      }
      float rs = rsqrtf(block_reduce(q, false) / (float)D + eps);
      for (int64_t i = threadIdx.x; i < D; i += blockDim.x) {
        float v = (reel__ld(x, xdt, xo + i * xst) - mean) * rs;
        if (w) v = v * reel__ld(w, wdt, i * wst);
        if (bias) v = v + reel__ld(bias, bdt, i * bst);
        reel__st(out, odt, oo + i * ost, v);
      }
    }
  }
}

static reel_status run_rows(reel_backend *b, int kind, const reel_tensor *x, const reel_tensor *w,
                            const reel_tensor *bias, float eps, reel_tensor *out, reel_error *err) {
  REEL_CUDA_CHECK(reel__cuda_use(b));
  int n = x->ndim;
  reel_tensor ox = *x, oo = *out;
  ox.ndim = oo.ndim = n - 1;
  const reel_tensor *opsv[2] = {&oo, &ox};
  reel__iter it;
  reel__iter_init(&it, n - 1, out->shape, 2, opsv);
  reel__cuda_iter ci;
  reel__cuda_iter_from(&ci, &it);
  int64_t rows = 1;
  for (int d = 0; d < it.ndim; d++) rows *= it.shape[d];
  unsigned grid = (unsigned)(rows < 65535 * 16 ? rows : 65535 * 16);
  row_kernel<<<grid, ROW_THREADS, 0, reel__cuda_of(b)->stream>>>(
      kind, ci, reel__tensor_data(out), out->dtype, out->stride[n - 1], reel__tensor_data(x), x->dtype,
      x->stride[n - 1], x->shape[n - 1], w ? reel__tensor_data(w) : NULL, w ? w->dtype : REEL_F32,
      w ? w->stride[0] : 0, bias ? reel__tensor_data(bias) : NULL, bias ? bias->dtype : REEL_F32,
      bias ? bias->stride[0] : 0, eps, rows);
  REEL_CUDA_CHECK_LAUNCH();
  return REEL_OK;
}

extern "C" reel_status reel__cuda_softmax(reel_backend *b, const reel_tensor *x, reel_tensor *out, reel_error *err) {
  return run_rows(b, ROW_SOFTMAX, x, NULL, NULL, 0.0f, out, err);
}

extern "C" reel_status reel__cuda_layer_norm(reel_backend *b, const reel_tensor *x, const reel_tensor *w,
                                             const reel_tensor *bias, float eps, reel_tensor *out, reel_error *err) {
  return run_rows(b, ROW_LN, x, w, bias, eps, out, err);
}

extern "C" reel_status reel__cuda_rms_norm(reel_backend *b, const reel_tensor *x, const reel_tensor *w, float eps,
                                           reel_tensor *out, reel_error *err) {
  return run_rows(b, ROW_RMS, x, w, NULL, eps, out, err);
}
