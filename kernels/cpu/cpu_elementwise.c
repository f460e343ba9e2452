/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Elementwise CPU ops: add/mul with broadcasting, SiLU, GELU-tanh, and the
 * strided/dtype-converting copy. Work is split into (row, segment) pieces of the
 * merged iteration space; every element is computed by exactly one piece, so the
 * results do not depend on the thread count. f32 operands with unit (or, for
 * broadcast inputs, zero) inner stride run straight over memory in loops the
 * compiler vectorises; everything else goes through small f32 staging arrays.
 */
#include <math.h>

#include "cpu_impl.h"
#include "reel/tensor.h"
#include "vmath.h"

#define SEG 4096 /* elements per parallel piece of a row */
#define CH 512   /* elements per staging chunk */

void reel__load_row(reel_dtype dt, const void *p, int64_t stride, int64_t n, float *dst) {
  if (dt == REEL_F32) {
    const float *s = p;
    if (stride == 1) {
      memcpy(dst, s, (size_t)n * sizeof *s);
    } else {
      for (int64_t i = 0; i < n; i++) dst[i] = s[i * stride];
    }
  } else if (dt == REEL_BF16) {
    const uint16_t *s = p;
    for (int64_t i = 0; i < n; i++) dst[i] = reel__bf16_f32(s[i * stride]);
  } else {
    const uint16_t *s = p;
    for (int64_t i = 0; i < n; i++) dst[i] = reel_f16_to_f32(s[i * stride]);
  }
}

void reel__store_row(reel_dtype dt, void *p, int64_t stride, int64_t n, const float *src) {
  if (dt == REEL_F32) {
    float *d = p;
    if (stride == 1) {
      memcpy(d, src, (size_t)n * sizeof *d);
    } else {
      for (int64_t i = 0; i < n; i++) d[i * stride] = src[i];
    }
  } else if (dt == REEL_BF16) {
    uint16_t *d = p;
    for (int64_t i = 0; i < n; i++) d[i * stride] = reel_f32_to_bf16(src[i]);
  } else {
    uint16_t *d = p;
    for (int64_t i = 0; i < n; i++) d[i * stride] = reel_f32_to_f16(src[i]);
  }
}

typedef enum ew_kind { EW_ADD, EW_MUL, EW_SILU, EW_GELU, EW_COPY } ew_kind;

typedef struct ew_ctx {
  reel__iter it;
  int nops;                /* 2 (out, x) or 3 (out, x, y) */
  char *base[3];           /* element [0..0] of out, x, y */
  reel_dtype dt[3];
  size_t esz[3];
  int64_t inner, segs;     /* inner length, segments per row */
  ew_kind kind;
  const reel__act_kernels *act; /* SiLU and GELU-tanh (vmath.h) */
} ew_ctx;

/* out[i] = f(x[i] (, y[i * ys])) over n elements, all f32; ys is 0 or 1. */
static void compute_f32(const ew_ctx *c, float *o, const float *x, const float *y, int64_t ys, int64_t n) {
  const ew_kind kind = c->kind;
  switch (kind) {
    case EW_ADD:
      if (ys) {
        for (int64_t i = 0; i < n; i++) o[i] = x[i] + y[i];
      } else {
        const float s = y[0];
        for (int64_t i = 0; i < n; i++) o[i] = x[i] + s;
      }
      break;
    case EW_MUL:
      if (ys) {
        for (int64_t i = 0; i < n; i++) o[i] = x[i] * y[i];
      } else {
        const float s = y[0];
        for (int64_t i = 0; i < n; i++) o[i] = x[i] * s;
      }
      break;
    case EW_SILU:
      c->act->silu(o, x, n);
      break;
    case EW_GELU:
      c->act->gelu_tanh(o, x, n);
      break;
    case EW_COPY:
      for (int64_t i = 0; i < n; i++) o[i] = x[i];
      break;
  }
}

static void ew_piece(void *vctx, int64_t begin, int64_t end, int tid) {
  (void)tid;
  const ew_ctx *c = vctx;
  const int d = c->it.ndim - 1;
  float fx[CH], fy[CH], fo[CH];
  for (int64_t piece = begin; piece < end; piece++) {
    int64_t row = piece / c->segs;
    int64_t j0 = (piece % c->segs) * SEG;
    int64_t j1 = j0 + SEG < c->inner ? j0 + SEG : c->inner;
    int64_t off[3];
    reel__iter_row_offsets(&c->it, row, off);
    char *p[3];
    int64_t st[3];
    for (int k = 0; k < c->nops; k++) {
      st[k] = c->it.stride[k][d];
      p[k] = c->base[k] + (size_t)((off[k] + j0 * st[k]) * (int64_t)c->esz[k]);
    }
    int64_t n = j1 - j0;
    int fast = c->dt[0] == REEL_F32 && st[0] == 1 && c->dt[1] == REEL_F32 && st[1] == 1;
    if (fast && c->nops == 3) fast = c->dt[2] == REEL_F32 && (st[2] == 1 || st[2] == 0);
    if (fast) {
      compute_f32(c, (float *)p[0], (const float *)p[1], c->nops == 3 ? (const float *)p[2] : NULL,
                  c->nops == 3 ? st[2] : 0, n);
      continue;
    }
    if (c->kind == EW_COPY && c->dt[0] == c->dt[1] && st[0] == 1 && st[1] == 1) {
      memmove(p[0], p[1], (size_t)n * c->esz[0]);
      continue;
    }
    for (int64_t j = 0; j < n; j += CH) {
      int64_t m = n - j < CH ? n - j : CH;
      reel__load_row(c->dt[1], p[1] + (size_t)(j * st[1] * (int64_t)c->esz[1]), st[1], m, fx);
      int64_t ys = 1;
      if (c->nops == 3) {
        if (st[2] == 0) {
          reel__load_row(c->dt[2], p[2], 0, 1, fy);
          ys = 0;
        } else {
          reel__load_row(c->dt[2], p[2] + (size_t)(j * st[2] * (int64_t)c->esz[2]), st[2], m, fy);
        }
      }
      compute_f32(c, fo, fx, fy, ys, m);
      reel__store_row(c->dt[0], p[0] + (size_t)(j * st[0] * (int64_t)c->esz[0]), st[0], m, fo);
    }
  }
}

const reel__act_kernels *reel__cpu_act_kernels(reel_backend *b) {
  const reel__cpu *cpu = reel__cpu_of(b);
#if defined(__x86_64__)
  switch (cpu->act_path) {
    case REEL__ACT_AUTO: return cpu->have_avx512 ? &reel__act_avx512 : cpu->have_avx2 ? &reel__act_avx2 : &reel__act_portable;
    case REEL__ACT_AVX512: return &reel__act_avx512;
    case REEL__ACT_AVX2: return &reel__act_avx2;
    default: break;
  }
#else
  (void)cpu;
#endif
  return &reel__act_portable;
}

static reel_status run_ew(reel_backend *b, ew_kind kind, const reel_tensor *out, const reel_tensor *x,
                          const reel_tensor *y) {
  ew_ctx c;
  c.act = reel__cpu_act_kernels(b);
  if (kind == EW_SILU || kind == EW_GELU) reel__backend_set_path(b, c.act->name);
  const reel_tensor *opsv[3] = {out, x, y};
  c.nops = y ? 3 : 2;
  reel__iter_init(&c.it, out->ndim, out->shape, c.nops, opsv);
  for (int k = 0; k < c.nops; k++) {
    c.base[k] = reel__tensor_data(opsv[k]);
    c.dt[k] = opsv[k]->dtype;
    c.esz[k] = reel_dtype_size(opsv[k]->dtype);
  }
  c.kind = kind;
  c.inner = c.it.shape[c.it.ndim - 1];
  c.segs = (c.inner + SEG - 1) / SEG;
  int64_t pieces = reel__iter_rows(&c.it) * c.segs;
  /* About 16K elements per chunk of work handed to a thread. */
  int64_t per_piece = c.inner < SEG ? c.inner : SEG;
  int64_t grain = (16384 + per_piece - 1) / per_piece;
  reel__pool_run(reel__cpu_of(b)->pool, pieces, grain, ew_piece, &c);
  return REEL_OK;
}

reel_status reel__cpu_binary(reel_backend *b, reel__binary_op op, const reel_tensor *x, const reel_tensor *y,
                             reel_tensor *out, reel_error *err) {
  (void)err;
  return run_ew(b, op == REEL__BINARY_ADD ? EW_ADD : EW_MUL, out, x, y);
}

reel_status reel__cpu_unary(reel_backend *b, reel__unary_op op, const reel_tensor *x, reel_tensor *out,
                            reel_error *err) {
  (void)err;
  return run_ew(b, op == REEL__UNARY_SILU ? EW_SILU : EW_GELU, out, x, NULL);
}

reel_status reel__cpu_copy_tensor(reel_backend *b, const reel_tensor *src, reel_tensor *dst, reel_error *err) {
  (void)err;
  return run_ew(b, EW_COPY, dst, src, NULL);
}
