/* SPDX-License-Identifier: Apache-2.0 */
/*
 * CUDA RGB -> YUV 4:2:0 (reel_op_rgb_to_yuv420) for frames that stay on the GPU
 * until the encoder takes them: one thread per 2x2 block writes four luma samples
 * and one Cb/Cr pair. The f32 expressions are those of kernels/cpu/cpu_colour.c in
 * the same order, and this file is compiled with --fmad=false, so both backends
 * write the same samples.
 */
#include "common.cuh"

typedef struct yuv_planes {
  void *p[3];
  int64_t s[3][3]; /* frame, row, column strides (elements) */
} yuv_planes;

__device__ __forceinline__ float yuv_unit(const reel__yuv_coefs &k, float c) {
  float t = (c - k.lo) * k.inv;
  if (!(t > 0.0f)) t = 0.0f;
  if (t > 1.0f) t = 1.0f;
  return t;
}

__device__ __forceinline__ void yuv_put(const yuv_planes &pl, int wide, float maxv, int plane, int64_t f, int64_t y,
                                        int64_t x, float val, float add) {
  float q = floorf((val + add) + 0.5f);
  if (q < 0.0f) q = 0.0f;
  if (q > maxv) q = maxv;
  int64_t off = f * pl.s[plane][0] + y * pl.s[plane][1] + x * pl.s[plane][2];
  if (wide)
    ((uint16_t *)pl.p[plane])[off] = (uint16_t)q;
  else
    ((uint8_t *)pl.p[plane])[off] = (uint8_t)q;
}

__global__ void yuv_kernel(const void *rgb, int rdt, int64_t rs0, int64_t rs1, int64_t rs2, int64_t rs3, int64_t F,
                           int64_t H, int64_t W, reel__yuv_coefs k, yuv_planes pl, int wide) {
  const int64_t hw = W / 2, hh = H / 2, n = F * hh * hw;
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    const int64_t cx = i % hw, cy = (i / hw) % hh, f = i / (hw * hh);
    float px[3][2][2];
#pragma unroll
    for (int ch = 0; ch < 3; ch++)
#pragma unroll
      for (int dy = 0; dy < 2; dy++)
#pragma unroll
        for (int dx = 0; dx < 2; dx++)
          px[ch][dy][dx] =
              yuv_unit(k, reel__ld(rgb, rdt, f * rs0 + ch * rs1 + (2 * cy + dy) * rs2 + (2 * cx + dx) * rs3));
#pragma unroll
    for (int dy = 0; dy < 2; dy++)
#pragma unroll
      for (int dx = 0; dx < 2; dx++) {
        float yv = k.ky[0] * px[0][dy][dx];
        yv = yv + k.ky[1] * px[1][dy][dx];
        yv = yv + k.ky[2] * px[2][dy][dx];
        yuv_put(pl, wide, k.maxv, 0, f, 2 * cy + dy, 2 * cx + dx, yv, k.yoff);
      }
    float m[3];
#pragma unroll
    for (int ch = 0; ch < 3; ch++) m[ch] = ((px[ch][0][0] + px[ch][0][1]) + (px[ch][1][0] + px[ch][1][1])) * 0.25f;
    float u = k.ku[0] * m[0];
    u = u + k.ku[1] * m[1];
    u = u + k.ku[2] * m[2];
    yuv_put(pl, wide, k.maxv, 1, f, cy, cx, u, k.coff);
    float v = k.kv[0] * m[0];
    v = v + k.kv[1] * m[1];
    v = v + k.kv[2] * m[2];
    yuv_put(pl, wide, k.maxv, 2, f, cy, cx, v, k.coff);
  }
}

extern "C" reel_status reel__cuda_rgb_to_yuv420(reel_backend *b, const reel_tensor *rgb, const reel__yuv_coefs *k,
                                                reel_tensor *y, reel_tensor *u, reel_tensor *v, reel_error *err) {
  REEL_CUDA_CHECK(reel__cuda_use(b));
  yuv_planes pl;
  reel_tensor *ps[3] = {y, u, v};
  for (int p = 0; p < 3; p++) {
    pl.p[p] = reel__tensor_data(ps[p]);
    for (int i = 0; i < 3; i++) pl.s[p][i] = ps[p]->stride[i];
  }
  const int64_t F = rgb->shape[0], H = rgb->shape[2], W = rgb->shape[3];
  yuv_kernel<<<reel__cuda_blocks(F * (H / 2) * (W / 2)), 256, 0, reel__cuda_of(b)->stream>>>(
      reel__tensor_data(rgb), rgb->dtype, rgb->stride[0], rgb->stride[1], rgb->stride[2], rgb->stride[3], F, H, W, *k,
      pl, y->dtype == REEL_U16);
  REEL_CUDA_CHECK_LAUNCH();
  reel__backend_set_path(b, "cuda-yuv420");
  return REEL_OK;
}
