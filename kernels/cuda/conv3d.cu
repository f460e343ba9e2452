/* SPDX-License-Identifier: Apache-2.0 */
/*
 * CUDA conv3d (reel_op_conv3d) in the frame-major, channels-last layout of the
 * CPU op: im2col + cuBLASLt GEMM over tiles of output pixels. A gather kernel
 * writes the receptive fields of up to R output pixels into a [R, kt·kh·kw·Cin]
 * matrix in device scratch, in the weights' dtype (zeros for the padding; the
 * fused 2x nearest up-sampling reads input pixel (y/2, x/2)), and one GEMM
 * against the [Cout, kt·kh·kw·Cin] weights writes the tile's [R, Cout] outputs in
 * place with the bias fused into the epilogue. With 16-bit weights the products
 * run on the tensor cores with f32 accumulation; with f32 weights in strict f32.
 * R is chosen so the gathered tile stays within 128 MiB: scratch is bounded
 * whatever the clip size. Output rows of several frames go into one tile when the
 * output's frames are contiguous. A 1x1x1 convolution over f32 with f32 weights
 * multiplies the input rows directly.
 */
#include "common.cuh"

#define COL_MAX_BYTES ((size_t)128 << 20)

typedef struct im2col_args {
  const float *x;
  int64_t xs_t;    /* input frame stride (elements) */
  int64_t H, W, C; /* input frame before up-sampling */
  int up, st, sh, sw;
  int ph0, pw0;
  int64_t Hu, Wu;
  int64_t kt, kh, kw;
  int64_t Ho, Wo, P; /* output frame */
  int64_t K;
} im2col_args;

/* col[r, k] for output rows row0 .. row0 + n - 1 (row = t * P + pixel). */
template <typename T>
__global__ void im2col_kernel(im2col_args a, int64_t row0, int64_t n, T *col) {
  const int64_t total = n * a.K;
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += (int64_t)gridDim.x * blockDim.x) {
    const int64_t r = i / a.K, k = i % a.K;
    const int64_t row = row0 + r, t = row / a.P, pix = row % a.P, oy = pix / a.Wo, ox = pix % a.Wo;
    const int64_t c = k % a.C, tap = k / a.C, dx = tap % a.kw, dy = (tap / a.kw) % a.kh, dt = tap / (a.kw * a.kh);
    const int64_t iy = oy * a.sh + dy - a.ph0, ix = ox * a.sw + dx - a.pw0;
    float v = 0.0f;
    if (iy >= 0 && iy < a.Hu && ix >= 0 && ix < a.Wu)
      v = a.x[(t * a.st + dt) * a.xs_t + ((iy / a.up) * a.W + ix / a.up) * a.C + c];
    if constexpr (sizeof(T) == 4)
      col[i] = v;
    else
      col[i] = T(v);
  }
}

static size_t align256(size_t n) { return (n + 255) & ~(size_t)255; }

extern "C" reel_status reel__cuda_conv3d(reel_backend *b, const reel_tensor *x, const reel_tensor *w,
                                         const reel_tensor *bias, const reel_conv3d_params *p, reel_tensor *out,
                                         reel_error *err) {
  REEL_CUDA_CHECK(reel__cuda_use(b));
  const int64_t T = x->shape[0], H = x->shape[1], W = x->shape[2], C = x->shape[3];
  const int64_t Co = w->shape[0], kt = w->shape[1], kh = w->shape[2], kw = w->shape[3];
  const int64_t To = out->shape[0], Ho = out->shape[1], Wo = out->shape[2];
  const int64_t K = kt * kh * kw * C, P = Ho * Wo;
  const int64_t xs_t = T > 1 ? x->stride[0] : H * W * C, os_t = To > 1 ? out->stride[0] : P * Co;
  const reel_dtype cdt = w->dtype;
  const size_t esz = reel_dtype_size(cdt);
  const int pointwise = kt == 1 && kh == 1 && kw == 1 && p->stride[0] == 1 && p->stride[1] == 1 && p->stride[2] == 1 &&
                        p->upsample == 1 && !p->pad_h[0] && !p->pad_h[1] && !p->pad_w[0] && !p->pad_w[1];
  /* Output rows of all frames form one matrix when the frames are contiguous. */
  const int joined = os_t == P * Co;
  const int direct = pointwise && cdt == REEL_F32 && joined && xs_t == H * W * C;
  const int64_t rows = joined ? To * P : P;
  int64_t R = (int64_t)(COL_MAX_BYTES / ((size_t)K * esz));
  if (R < 1) R = 1;
  if (R > rows) R = rows;
  const size_t bias_bytes = bias ? align256((size_t)Co * 4) : 0,
               col_bytes = direct ? 0 : align256((size_t)(R * K) * esz);
  char *ws = (char *)reel__cuda_scratch(b, bias_bytes + col_bytes + reel__cuda_gemm_ws_bytes(), err);
  if (!ws) return err ? err->code : REEL_ENOMEM;
  const void *bp = NULL;
  if (bias) {
    reel_status st = reel__cuda_convert(b, bias, ws, REEL_F32, err);
    if (st != REEL_OK) return st;
    bp = ws;
  }
  void *col = ws + bias_bytes, *gws = ws + bias_bytes + col_bytes;
  const float *xd = (const float *)reel__tensor_data(x);
  float *od = (float *)reel__tensor_data(out);
  cudaStream_t s = reel__cuda_of(b)->stream;
  if (direct) {
    reel_status st =
        reel__cuda_gemm_nt(b, To * P, Co, K, xd, C, reel__tensor_data(w), K, REEL_F32, od, Co, REEL_F32, bp, gws, err);
    if (st == REEL_OK) reel__backend_set_path(b, "cuda-conv-1x1-gemm-f32");
    return st;
  }
  im2col_args a;
  a.x = xd;
  a.xs_t = xs_t;
  a.H = H;
  a.W = W;
  a.C = C;
  a.up = p->upsample;
  a.st = p->stride[0];
  a.sh = p->stride[1];
  a.sw = p->stride[2];
  a.ph0 = p->pad_h[0];
  a.pw0 = p->pad_w[0];
  a.Hu = H * p->upsample;
  a.Wu = W * p->upsample;
  a.kt = kt;
  a.kh = kh;
  a.kw = kw;
  a.Ho = Ho;
  a.Wo = Wo;
  a.P = P;
  a.K = K;
  const int64_t groups = joined ? 1 : To;
  for (int64_t g = 0; g < groups; g++) {
    for (int64_t r0 = 0; r0 < rows; r0 += R) {
      const int64_t n = rows - r0 < R ? rows - r0 : R, row0 = g * P + r0;
      const unsigned blocks = reel__cuda_blocks(n * K);
      if (cdt == REEL_F32)
        im2col_kernel<float><<<blocks, 256, 0, s>>>(a, row0, n, (float *)col);
      else if (cdt == REEL_F16)
        im2col_kernel<__half><<<blocks, 256, 0, s>>>(a, row0, n, (__half *)col);
      else
        im2col_kernel<__nv_bfloat16><<<blocks, 256, 0, s>>>(a, row0, n, (__nv_bfloat16 *)col);
      REEL_CUDA_CHECK_LAUNCH();
      float *dst = joined ? od + row0 * Co : od + g * os_t + r0 * Co;
      reel_status st =
          reel__cuda_gemm_nt(b, n, Co, K, col, K, reel__tensor_data(w), K, cdt, dst, Co, REEL_F32, bp, gws, err);
      if (st != REEL_OK) return st;
    }
  }
  reel__backend_set_path(b, cdt == REEL_F32 ? "cuda-conv-im2col-gemm-f32" : "cuda-conv-im2col-gemm-16bit");
  return REEL_OK;
}
