/* SPDX-License-Identifier: Apache-2.0 */
/*
 * CUDA matmul through cuBLASLt: f32 (strict f32 compute, no TF32) and bf16/f16
 * inputs with f32 accumulation (tensor cores). f32 activations meeting 16-bit
 * weights are converted to the weights' dtype on the device first. Row-major
 * reel tensors map onto column-major cuBLAS as C^T = op(B)^T... i.e. with the
 * operands swapped: D (N x M, col-major) = op(W) (N x K) * X^T (K x M). Batched
 * products merge the batch dims into one strided batch where the strides allow
 * and loop over the rest.
 */
#include <string.h>

#include "common.cuh"

#define LT_WORKSPACE ((size_t)32 << 20)

static cudaDataType_t cuda_type(reel_dtype dt) {
  return dt == REEL_F32 ? CUDA_R_32F : dt == REEL_F16 ? CUDA_R_16F : CUDA_R_16BF;
}

/* Largest power of two (<= 256) dividing the address: cuBLASLt's heuristics must not assume more. */
static uint32_t ptr_align(const void *p) {
  uintptr_t a = (uintptr_t)p;
  uint32_t al = 256;
  while (al > 1 && (a % al) != 0) al >>= 1;
  return al;
}

typedef struct lt_operand {
  const void *ptr;
  reel_dtype dt;
  int64_t rows, cols, ld; /* stored matrix (column-major), before op */
  int64_t batch_stride;   /* elements */
  int trans;
} lt_operand;

/* D = alpha * op(A) op(B) (column-major, m x n), `batch` times with the given strides. */
static reel_status lt_matmul(reel_backend *b, int64_t m, int64_t n, int64_t k, const lt_operand *A, const lt_operand *B,
                             void *D, reel_dtype ddt, int64_t ldd, int64_t d_stride, int batch, float alpha,
                             const void *bias, void *ws, reel_error *err) {
  reel__cuda *c = reel__cuda_of(b);
  cublasLtMatmulDesc_t op = NULL;
  cublasLtMatrixLayout_t la = NULL, lb = NULL, ld = NULL;
  cublasLtMatmulPreference_t pref = NULL;
  reel_status st = REEL_OK;
  cublasLtMatmulHeuristicResult_t heur;
  int found = 0;
  float beta = 0.0f;
  cublasOperation_t ta = A->trans ? CUBLAS_OP_T : CUBLAS_OP_N, tb = B->trans ? CUBLAS_OP_T : CUBLAS_OP_N;
  size_t wsz = LT_WORKSPACE;
  uint32_t al_a = ptr_align(A->ptr), al_b = ptr_align(B->ptr), al_d = ptr_align(D);
  const lt_operand *ops2[2] = {A, B};
  cublasLtMatrixLayout_t *lays[2] = {&la, &lb};
#define LT_TRY(stmt)                                                                              \
  do {                                                                                            \
    cublasStatus_t s_ = (stmt);                                                                   \
    if (s_ != CUBLAS_STATUS_SUCCESS) {                                                            \
      st = reel__cuda_fail(err, #stmt, __FILE__, __LINE__, cublasLtGetStatusString(s_));          \
      goto done;                                                                                  \
    }                                                                                             \
  } while (0)
  LT_TRY(cublasLtMatmulDescCreate(&op, CUBLAS_COMPUTE_32F, CUDA_R_32F));
  LT_TRY(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta));
  LT_TRY(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb));
  if (bias) {
    /* One value per row of the column-major D (per output feature), in D's dtype. */
    cublasLtEpilogue_t epi = CUBLASLT_EPILOGUE_BIAS;
    LT_TRY(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof epi));
    LT_TRY(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof bias));
  }
  for (int i = 0; i < 2; i++) {
    const lt_operand *o = ops2[i];
    LT_TRY(cublasLtMatrixLayoutCreate(lays[i], cuda_type(o->dt), (uint64_t)o->rows, (uint64_t)o->cols, o->ld));
    if (batch > 1) {
      LT_TRY(cublasLtMatrixLayoutSetAttribute(*lays[i], CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &batch, sizeof batch));
      LT_TRY(cublasLtMatrixLayoutSetAttribute(*lays[i], CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &o->batch_stride,
                                              sizeof o->batch_stride));
    }
  }
  LT_TRY(cublasLtMatrixLayoutCreate(&ld, cuda_type(ddt), (uint64_t)m, (uint64_t)n, ldd));
  if (batch > 1) {
    LT_TRY(cublasLtMatrixLayoutSetAttribute(ld, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &batch, sizeof batch));
    LT_TRY(cublasLtMatrixLayoutSetAttribute(ld, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &d_stride,
                                            sizeof d_stride));
  }
  LT_TRY(cublasLtMatmulPreferenceCreate(&pref));
  LT_TRY(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &wsz, sizeof wsz));
  LT_TRY(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &al_a, sizeof al_a));
  LT_TRY(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &al_b, sizeof al_b));
  LT_TRY(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &al_d, sizeof al_d));
  LT_TRY(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &al_d, sizeof al_d));
  LT_TRY(cublasLtMatmulAlgoGetHeuristic(c->lt, op, la, lb, ld, ld, pref, 1, &heur, &found));
  if (found < 1) {
    st = reel_error_set(err, REEL_EUNSUPPORTED, "matmul", "cuBLASLt has no algorithm for %s x %s -> %s (%lldx%lldx%lld)",
                        reel_dtype_name(A->dt), reel_dtype_name(B->dt), reel_dtype_name(ddt), (long long)m,
                        (long long)n, (long long)k);
    goto done;
  }
  LT_TRY(cublasLtMatmul(c->lt, op, &alpha, A->ptr, la, B->ptr, lb, &beta, D, ld, D, ld, &heur.algo, ws, wsz,
                        c->stream));
#undef LT_TRY
done:
  if (pref) cublasLtMatmulPreferenceDestroy(pref);
  if (ld) cublasLtMatrixLayoutDestroy(ld);
  if (lb) cublasLtMatrixLayoutDestroy(lb);
  if (la) cublasLtMatrixLayoutDestroy(la);
  if (op) cublasLtMatmulDescDestroy(op);
  return st;
}

/*
 * Chooses the compute dtype: 16-bit when the "weights" operand is 16-bit (the
 * other operand is converted to it), f32 otherwise. Checks the output dtype.
 */
static reel_status pick_types(const char *op, reel_dtype xdt, reel_dtype wdt, reel_dtype odt, reel_dtype *cdt,
                              reel_error *err) {
  *cdt = wdt == REEL_F32 ? REEL_F32 : wdt;
  (void)xdt;
  if (odt != REEL_F32 && odt != *cdt) {
    char f[48];
    snprintf(f, sizeof f, "%s.out", op);
    return reel_error_set(err, REEL_EUNSUPPORTED, f, "output %s with %s inputs: use f32 (or the inputs' dtype)",
                          reel_dtype_name(odt), reel_dtype_name(*cdt));
  }
  return REEL_OK;
}

static void set_path(reel_backend *b, reel_dtype cdt) {
  reel__backend_set_path(b, cdt == REEL_F32 ? "cublaslt-f32" : cdt == REEL_F16 ? "cublaslt-f16" : "cublaslt-bf16");
}

static size_t align256(size_t n) { return (n + 255) & ~(size_t)255; }

extern "C" size_t reel__cuda_gemm_ws_bytes(void) { return LT_WORKSPACE; }

extern "C" reel_status reel__cuda_gemm_nt(reel_backend *b, int64_t M, int64_t N, int64_t K, const void *a,
                                          int64_t lda, const void *w, int64_t ldw, reel_dtype in_dt, void *c,
                                          int64_t ldc, reel_dtype out_dt, const void *bias, void *ws,
                                          reel_error *err) {
  lt_operand A = {w, in_dt, K, N, ldw, 0, 1};
  lt_operand B = {a, in_dt, K, M, lda, 0, 0};
  reel_status st = lt_matmul(b, N, M, K, &A, &B, c, out_dt, ldc, 0, 1, 1.0f, bias, ws, err);
  if (st == REEL_EUNSUPPORTED && bias) {
    /* No algorithm with the bias epilogue: plain product, then a broadcast add over the rows. */
    st = lt_matmul(b, N, M, K, &A, &B, c, out_dt, ldc, 0, 1, 1.0f, NULL, ws, err);
    if (st == REEL_OK) {
      reel_buffer cb, bb;
      memset(&cb, 0, sizeof cb);
      memset(&bb, 0, sizeof bb);
      cb.backend = bb.backend = b;
      cb.data = c;
      bb.data = (void *)bias;
      reel_tensor tc, tb;
      int64_t cs[2] = {M, N};
      reel_tensor_init(&tc, out_dt, 2, cs, &cb, 0, NULL);
      tc.stride[0] = ldc;
      reel_tensor_init(&tb, out_dt, 1, &N, &bb, 0, NULL);
      st = reel__cuda_binary(b, REEL__BINARY_ADD, &tc, &tb, &tc, err);
    }
  }
  if (st == REEL_OK) set_path(b, in_dt);
  return st;
}

/*
 * The bias as cuBLASLt's epilogue reads it: contiguous, in the output's dtype,
 * 16-byte aligned. Used in place when it already is; otherwise converted into
 * `scratch` (at least N * 4 bytes, 256-aligned). NULL for no bias.
 */
static reel_status bias_for_epilogue(reel_backend *b, const reel_tensor *bias, reel_dtype odt, void *scratch,
                                     const void **out, reel_error *err) {
  *out = NULL;
  if (!bias) return REEL_OK;
  const void *p = reel__tensor_data(bias);
  if (bias->dtype == odt && (bias->shape[0] <= 1 || bias->stride[0] == 1) && ((uintptr_t)p % 16) == 0) {
    *out = p;
    return REEL_OK;
  }
  reel_status st = reel__cuda_convert(b, bias, scratch, odt, err);
  if (st == REEL_OK) *out = scratch;
  return st;
}

extern "C" reel_status reel__cuda_matmul(reel_backend *b, const reel_tensor *x, const reel_tensor *w,
                                         const reel_tensor *bias, reel_tensor *out, reel_error *err) {
  REEL_CUDA_CHECK(reel__cuda_use(b));
  reel_dtype cdt;
  reel_status st = pick_types("matmul", x->dtype, w->dtype, out->dtype, &cdt, err);
  if (st != REEL_OK) return st;
  const int n = x->ndim;
  const int64_t K = x->shape[n - 1], N = w->shape[0], M = reel_tensor_numel(x) / K;
  /* Row strides (ops.c checked the leading dims flatten to one). */
  int64_t ldx = K, ldo = N;
  for (int i = n - 2; i >= 0; i--)
    if (x->shape[i] != 1) {
      ldx = x->stride[i];
      break;
    }
  for (int i = n - 2; i >= 0; i--)
    if (out->shape[i] != 1) {
      ldo = out->stride[i];
      break;
    }
  size_t conv = x->dtype != cdt ? align256((size_t)(M * K) * reel_dtype_size(cdt)) : 0;
  size_t bconv = bias ? align256((size_t)N * 4) : 0;
  char *ws = (char *)reel__cuda_scratch(b, conv + bconv + LT_WORKSPACE, err);
  if (!ws) return err ? err->code : REEL_ENOMEM;
  const void *bp = NULL;
  st = bias_for_epilogue(b, bias, out->dtype, ws + conv + LT_WORKSPACE, &bp, err);
  if (st != REEL_OK) return st;
  const void *xp = reel__tensor_data(x);
  if (conv) {
    st = reel__cuda_convert(b, x, ws, cdt, err);
    if (st != REEL_OK) return st;
    xp = ws;
    ldx = K;
  }
  lt_operand A = {reel__tensor_data(w), w->dtype, K, N, N > 1 ? w->stride[0] : K, 0, 1};
  lt_operand B = {xp, cdt, K, M, ldx, 0, 0};
  st = lt_matmul(b, N, M, K, &A, &B, reel__tensor_data(out), out->dtype, ldo, 0, 1, 1.0f, bp, ws + conv, err);
  if (st == REEL_EUNSUPPORTED && bp) {
    /* No algorithm with the bias epilogue for this shape: add the bias afterwards. */
    st = lt_matmul(b, N, M, K, &A, &B, reel__tensor_data(out), out->dtype, ldo, 0, 1, 1.0f, NULL, ws + conv, err);
    if (st == REEL_OK) st = reel__cuda_binary(b, REEL__BINARY_ADD, out, bias, out, err);
  }
  if (st != REEL_OK) return st;
  set_path(b, cdt);
  return REEL_OK;
}

extern "C" reel_status reel__cuda_matmul_batched(reel_backend *b, const reel_tensor *a, const reel_tensor *bm,
                                                 int trans_b, float alpha, reel_tensor *out, reel_error *err) {
  REEL_CUDA_CHECK(reel__cuda_use(b));
  reel_dtype cdt;
  reel_status st = pick_types("matmul_batched", a->dtype, bm->dtype, out->dtype, &cdt, err);
  if (st != REEL_OK) return st;
  const int n = a->ndim;
  const int64_t M = a->shape[n - 2], K = a->shape[n - 1], N = out->shape[n - 1];
  size_t conv = a->dtype != cdt ? align256((size_t)reel_tensor_numel(a) * reel_dtype_size(cdt)) : 0;
  char *ws = (char *)reel__cuda_scratch(b, conv + LT_WORKSPACE, err);
  if (!ws) return err ? err->code : REEL_ENOMEM;
  reel_tensor av = *a;
  const char *abase = (const char *)reel__tensor_data(a);
  if (conv) {
    st = reel__cuda_convert(b, a, ws, cdt, err);
    if (st != REEL_OK) return st;
    reel_tensor_init(&av, cdt, a->ndim, a->shape, NULL, 0, NULL); /* contiguous strides */
    abase = ws;
  }
  int64_t lda = M > 1 ? av.stride[n - 2] : K, ldb = bm->shape[n - 2] > 1 ? bm->stride[n - 2] : bm->shape[n - 1];
  int64_t ldo = M > 1 ? out->stride[n - 2] : N;
  /* Batch iteration: operands out, a, b over the batch dims; the last merged dim becomes cuBLASLt's batch. */
  reel_tensor to = *out, ta = av, tb = *bm;
  to.ndim = ta.ndim = tb.ndim = n - 2;
  const reel_tensor *opsv[3] = {&to, &ta, &tb};
  reel__iter it;
  reel__iter_init(&it, n - 2, out->shape, 3, opsv);
  const int last = it.ndim - 1;
  const int64_t count = it.shape[last], rows = reel__iter_rows(&it);
  if (count > 0x7fffffff) return reel_error_set(err, REEL_ERANGE, "matmul_batched", "too many matrices");
  const size_t ae = reel_dtype_size(av.dtype), be = reel_dtype_size(bm->dtype), oe = reel_dtype_size(out->dtype);
  for (int64_t r = 0; r < rows; r++) {
    int64_t off[3];
    reel__iter_row_offsets(&it, r, off);
    /* op(bm): trans_b -> stored K x N (col-major view of row-major [N,K]), transposed; else stored N x K. */
    lt_operand A = {(const char *)reel__tensor_data(bm) + off[2] * (int64_t)be, bm->dtype, trans_b ? K : N,
                    trans_b ? N : K, ldb, it.stride[2][last], trans_b};
    lt_operand B = {abase + off[1] * (int64_t)ae, cdt, K, M, lda, it.stride[1][last], 0};
    st = lt_matmul(b, N, M, K, &A, &B, (char *)reel__tensor_data(out) + off[0] * (int64_t)oe, out->dtype, ldo,
                   it.stride[0][last], (int)count, alpha, NULL, ws + conv, err);
    if (st != REEL_OK) return st;
  }
  set_path(b, cdt);
  return REEL_OK;
}
