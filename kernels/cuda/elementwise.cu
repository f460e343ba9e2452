/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Elementwise CUDA ops: add/mul with broadcasting, SiLU, GELU-tanh, and the
 * strided/dtype-converting copy. One kernel walks the merged strided iteration
 * space (reel__iter, broadcast dims have stride 0) with a grid-stride loop;
 * loads convert to f32, stores round to nearest even, as the CPU ops do.
 */
#include "common.cuh"

enum { EW_ADD = 0, EW_MUL = 1, EW_SILU = 2, EW_GELU = 3, EW_COPY = 4 };

__device__ __forceinline__ float ew_apply(int kind, float x, float y) {
  switch (kind) {
    case EW_ADD: return x + y;
    case EW_MUL: return x * y;
    case EW_SILU: return x / (1.0f + expf(-x));
    case EW_GELU: {
      const float k = 0.7978845608028654f;
      return 0.5f * x * (1.0f + tanhf(k * (x + 0.044715f * x * x * x)));
    }
    default: return x;
  }
}

__global__ void ew_kernel(reel__cuda_iter it, int nops, int kind, void *out, int odt, const void *x, int xdt,
                          const void *y, int ydt, int64_t n) {
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    int64_t off[3];
    reel__iter_offsets(it, nops, i, off);
    float a = reel__ld(x, xdt, off[1]);
    float b = nops == 3 ? reel__ld(y, ydt, off[2]) : 0.0f;
    reel__st(out, odt, off[0], ew_apply(kind, a, b));
  }
}

static reel_status run_ew(reel_backend *b, int kind, const reel_tensor *out, const reel_tensor *x,
                          const reel_tensor *y, reel_error *err) {
  REEL_CUDA_CHECK(reel__cuda_use(b));
  const reel_tensor *opsv[3] = {out, x, y};
  int nops = y ? 3 : 2;
  reel__iter it;
  reel__iter_init(&it, out->ndim, out->shape, nops, opsv);
  reel__cuda_iter ci;
  reel__cuda_iter_from(&ci, &it);
  int64_t n = reel_tensor_numel(out);
  ew_kernel<<<reel__cuda_blocks(n), 256, 0, reel__cuda_of(b)->stream>>>(
      ci, nops, kind, reel__tensor_data(out), out->dtype, reel__tensor_data(x), x->dtype,
      y ? reel__tensor_data(y) : NULL, y ? y->dtype : REEL_F32, n);
  REEL_CUDA_CHECK_LAUNCH();
  return REEL_OK;
}

extern "C" reel_status reel__cuda_binary(reel_backend *b, reel__binary_op op, const reel_tensor *x,
                                         const reel_tensor *y, reel_tensor *out, reel_error *err) {
  return run_ew(b, op == REEL__BINARY_ADD ? EW_ADD : EW_MUL, out, x, y, err);
}

extern "C" reel_status reel__cuda_unary(reel_backend *b, reel__unary_op op, const reel_tensor *x, reel_tensor *out,
                                        reel_error *err) {
  return run_ew(b, op == REEL__UNARY_SILU ? EW_SILU : EW_GELU, out, x, NULL, err);
}

extern "C" reel_status reel__cuda_copy_tensor(reel_backend *b, const reel_tensor *src, reel_tensor *dst,
                                              reel_error *err) {
  return run_ew(b, EW_COPY, dst, src, NULL, err);
}

extern "C" reel_status reel__cuda_convert(reel_backend *b, const reel_tensor *src, void *dst, reel_dtype dst_dt,
                                          reel_error *err) {
  reel_tensor d;
  reel_status st = reel_tensor_init(&d, dst_dt, src->ndim, src->shape, NULL, 0, err);
  if (st != REEL_OK) return st;
  /* A descriptor whose data pointer is dst: a fake buffer on the stack, never freed. */
  reel_buffer fake;
  memset(&fake, 0, sizeof fake);
  fake.backend = b;
  fake.data = dst;
  fake.size = reel_tensor_nbytes(&d);
  d.buf = &fake;
  return run_ew(b, EW_COPY, &d, src, NULL, err);
}

/* clamp: min(max(x, lo), hi) with the CPU op's comparisons, so NaN passes through. */
__global__ void clamp_kernel(reel__cuda_iter it, void *out, int odt, const void *x, int xdt, float lo, float hi,
                             int64_t n) {
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    int64_t off[3];
    reel__iter_offsets(it, 2, i, off);
    float v = reel__ld(x, xdt, off[1]);
    if (v < lo) v = lo;
    if (v > hi) v = hi;
    reel__st(out, odt, off[0], v);
  }
}

extern "C" reel_status reel__cuda_clamp(reel_backend *b, const reel_tensor *x, float lo, float hi, reel_tensor *out,
                                        reel_error *err) {
  REEL_CUDA_CHECK(reel__cuda_use(b));
  const reel_tensor *opsv[2] = {out, x};
  reel__iter it;
  reel__iter_init(&it, out->ndim, out->shape, 2, opsv);
  reel__cuda_iter ci;
  reel__cuda_iter_from(&ci, &it);
  int64_t n = reel_tensor_numel(out);
  clamp_kernel<<<reel__cuda_blocks(n), 256, 0, reel__cuda_of(b)->stream>>>(ci, reel__tensor_data(out), out->dtype,
                                                                           reel__tensor_data(x), x->dtype, lo, hi, n);
  REEL_CUDA_CHECK_LAUNCH();
  reel__backend_set_path(b, "cuda-clamp");
  return REEL_OK;
}
