/* SPDX-License-Identifier: Apache-2.0 */
/*
 * CUDA adaptive-norm modulation and gated residual, each one pass over the
 * activations:
 *   modulate   out = x * (1 + scale) + shift
 *   gated_add  out = x + y * gate
 * Operands are split into rows (reel__cuda_rows: the per-sample vectors broadcast
 * over tokens with stride 0); a block takes a few rows and its threads walk the
 * inner dim. Every step is rounded on its own (no fused multiply-add), in the
 * order the CPU op uses, so f32 results match it bit for bit.
 */
#include "common.cuh"

enum { FUSED_MODULATE = 0, FUSED_GATED_ADD = 1 };

__global__ void fused4_kernel(int kind, reel__cuda_rows r, void *out, int odt, const void *x, int xdt, const void *a,
                              int adt, const void *bv, int bdt) {
  const int64_t rows_per_block = blockDim.y;
  for (int64_t row = (int64_t)blockIdx.x * rows_per_block + threadIdx.y; row < r.rows;
       row += (int64_t)gridDim.x * rows_per_block) {
    int64_t off[4];
    reel__row_offsets(r, row, off);
    for (int64_t j = threadIdx.x; j < r.inner; j += blockDim.x) {
      float xv = reel__ld(x, xdt, off[1] + j * r.istride[1]);
      float av = reel__ld(a, adt, off[2] + j * r.istride[2]);
      float bb = reel__ld(bv, bdt, off[3] + j * r.istride[3]);
      float o;
      if (kind == FUSED_MODULATE)
        o = __fadd_rn(__fmul_rn(xv, __fadd_rn(1.0f, bb)), av);
      else
        o = __fadd_rn(xv, __fmul_rn(av, bb));
      reel__st(out, odt, off[0] + j * r.istride[0], o);
    }
  }
}

static reel_status run_fused(reel_backend *b, int kind, const reel_tensor *out, const reel_tensor *x,
                             const reel_tensor *a, const reel_tensor *bv, reel_error *err) {
  REEL_CUDA_CHECK(reel__cuda_use(b));
  const reel_tensor *opsv[4] = {out, x, a, bv};
  reel__iter it;
  reel__iter_init(&it, out->ndim, out->shape, 4, opsv);
  reel__cuda_rows r;
  reel__cuda_rows_from(&r, &it);
  /* 256 threads: as many along the inner dim as it fills (a warp at least), the rest over rows. */
  int tx = 32;
  while (tx < 256 && tx < r.inner) tx *= 2;
  dim3 block((unsigned)tx, (unsigned)(256 / tx));
  int64_t blocks = (r.rows + block.y - 1) / block.y;
  unsigned grid = (unsigned)(blocks > 65535 * 8 ? 65535 * 8 : blocks);
  fused4_kernel<<<grid, block, 0, reel__cuda_of(b)->stream>>>(kind, r, reel__tensor_data(out), out->dtype,
                                                              reel__tensor_data(x), x->dtype, reel__tensor_data(a),
                                                              a->dtype, reel__tensor_data(bv), bv->dtype);
  REEL_CUDA_CHECK_LAUNCH();
  reel__backend_set_path(b, kind == FUSED_MODULATE ? "cuda-modulate" : "cuda-gated-add");
  return REEL_OK;
}

extern "C" reel_status reel__cuda_modulate(reel_backend *b, const reel_tensor *x, const reel_tensor *shift,
                                           const reel_tensor *scale, reel_tensor *out, reel_error *err) {
  return run_fused(b, FUSED_MODULATE, out, x, shift, scale, err);
}

extern "C" reel_status reel__cuda_gated_add(reel_backend *b, const reel_tensor *x, const reel_tensor *y,
                                            const reel_tensor *gate, reel_tensor *out, reel_error *err) {
  return run_fused(b, FUSED_GATED_ADD, out, x, y, gate, err);
}
