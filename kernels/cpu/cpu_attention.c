/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fused scaled dot-product attention on the CPU (flash-attention style).
 *
 * One work item is (batch, head, block of BQ queries). It keeps that block's
 * scaled queries, a running row maximum m, a running denominator l and an
 * unnormalised output O in per-thread scratch, and walks the keys in tiles of
 * BK: S = Q Kᵀ, m' = max(m, rowmax S), P = exp(S - m'), l = l e^(m-m') + rowsum P,
 * O = O e^(m-m') + P V. The output is O / l, so 32k-token attention needs no
 * tokens² buffer.
 *
 * Heads are processed one after the other: first the head's keys (transposed,
 * per tile) and values are packed once into shared scratch by all threads, then
 * the threads take its query blocks. Both products are C[4 x 16n] (+)= A[4 x K]
 * · B[K x 16n] on the packed, zero-padded tiles, computed by a register-blocked
 * AVX-512 micro-kernel when the CPU has it and by plain loops otherwise. Scratch
 * is a few hundred KB per thread plus one head's packed keys and values (linear
 * in the key count). Every output element is computed by exactly one item in a
 * fixed order, so results do not depend on the thread count.
 */
#include <math.h>

#include "cpu_impl.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define HAVE_X86_KERNEL 1
#endif

#define BQ 64  /* queries per work item (multiple of 4) */
#define BK 128 /* keys per tile (multiple of 16) */

typedef struct attn_ctx {
  const char *q, *k, *v;
  char *o;
  reel_dtype qdt, kdt, vdt, odt;
  size_t qe, ke, ve, oe;
  int64_t qs[3], ks[3], vs[3], os[3]; /* strides of dims b, t, h (elements) */
  int64_t H, Tq, Tk, D, Dv, Dvp, nqb;
  float scale;
  float *ws;         /* per-thread scratch, then the shared packed keys and values */
  size_t per_thread; /* floats of scratch per thread */
  float *kt;         /* the current head's keys, transposed per block: [nkb][D][BK] */
  float *vp;         /* its values, zero-padded: [nkb * BK][Dvp] */
  int64_t bi, h;     /* the current batch entry and head */
  int avx512;
} attn_ctx;

static int64_t round16(int64_t n) { return (n + 15) / 16 * 16; }

/* ---- micro-kernels: C[4][16*nc] (+)= A[4][K] * B[K][16*nc] -------------------------------- */

static void mk_portable(int nc, int64_t K, const float *A, int64_t lda, const float *Bm, int64_t ldb, float *C,
                        int64_t ldc, int acc) {
  const int n = 16 * nc;
  for (int r = 0; r < 4; r++) {
    float *cr = C + r * ldc;
    const float *ar = A + r * lda;
    if (!acc)
      for (int j = 0; j < n; j++) cr[j] = 0.0f;
    for (int64_t kk = 0; kk < K; kk++) {
      const float a = ar[kk];
      const float *br = Bm + kk * ldb;
      for (int j = 0; j < n; j++) cr[j] += a * br[j];
    }
  }
}

#ifdef HAVE_X86_KERNEL
#define DEF_MK512(NC)                                                                                                \
  __attribute__((target("avx512f"))) static void mk512_##NC(int64_t K, const float *A, int64_t lda, const float *Bm, \
                                                            int64_t ldb, float *C, int64_t ldc, int acc) {           \
    __m512 c[4][NC];                                                                                                 \
    for (int r = 0; r < 4; r++)                                                                                      \
      for (int j = 0; j < NC; j++) c[r][j] = acc ? _mm512_loadu_ps(C + r * ldc + 16 * j) : _mm512_setzero_ps();      \
    for (int64_t kk = 0; kk < K; kk++) {                                                                             \
      __m512 bv[NC];                                                                                                 \
      for (int j = 0; j < NC; j++) bv[j] = _mm512_loadu_ps(Bm + kk * ldb + 16 * j);                                  \
      for (int r = 0; r < 4; r++) {                                                                                  \
        __m512 a = _mm512_set1_ps(A[r * lda + kk]);                                                                  \
        for (int j = 0; j < NC; j++) c[r][j] = _mm512_fmadd_ps(a, bv[j], c[r][j]);                                   \
      }                                                                                                              \
    }                                                                                                                \
    for (int r = 0; r < 4; r++)                                                                                      \
      for (int j = 0; j < NC; j++) _mm512_storeu_ps(C + r * ldc + 16 * j, c[r][j]);                                  \
  }
DEF_MK512(1)
DEF_MK512(2)
DEF_MK512(3)
DEF_MK512(4)

/* exp(x) for 16 lanes: Cody-Waite reduction by ln 2 and a degree-6 polynomial (Cephes expf), ~1-2 ulp. */
__attribute__((target("avx512f"))) static inline __m512 exp512(__m512 x) {
  x = _mm512_max_ps(_mm512_set1_ps(-87.0f), x); /* NaN stays NaN: max returns the second operand */
  x = _mm512_min_ps(_mm512_set1_ps(88.0f), x);
  __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                  _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.9875691500e-4f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
  __m512 r2 = _mm512_mul_ps(r, r);
  __m512 y = _mm512_fmadd_ps(p, r2, _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
  return _mm512_scalef_ps(y, n);
}

/* Row softmax update on an AVX-512 CPU; see softmax_rows(). */
__attribute__((target("avx512f"))) static void softmax_rows512(float *S, int rows, int64_t nk, float *m, float *l,
                                                               float *corr) {
  const int64_t nk16 = nk / 16 * 16;
  const __mmask16 tail = (__mmask16)((1u << (nk - nk16)) - 1u);
  for (int r = 0; r < rows; r++) {
    float *s = S + (int64_t)r * BK;
    __m512 mx = _mm512_set1_ps(-INFINITY);
    for (int64_t j = 0; j < nk16; j += 16) mx = _mm512_max_ps(mx, _mm512_loadu_ps(s + j));
    if (tail) mx = _mm512_mask_max_ps(mx, tail, mx, _mm512_maskz_loadu_ps(tail, s + nk16));
    float bm = _mm512_reduce_max_ps(mx);
    float mnew = bm > m[r] ? bm : m[r];
    corr[r] = expf(m[r] - mnew);
    __m512 mv = _mm512_set1_ps(mnew), sum = _mm512_setzero_ps();
    for (int64_t j = 0; j < nk16; j += 16) {
      __m512 p = exp512(_mm512_sub_ps(_mm512_loadu_ps(s + j), mv));
      _mm512_storeu_ps(s + j, p);
      sum = _mm512_add_ps(sum, p);
    }
    if (tail) {
      __m512 p = exp512(_mm512_sub_ps(_mm512_maskz_loadu_ps(tail, s + nk16), mv));
      p = _mm512_maskz_mov_ps(tail, p);
      _mm512_mask_storeu_ps(s + nk16, tail, p);
      sum = _mm512_add_ps(sum, p);
    }
    l[r] = l[r] * corr[r] + _mm512_reduce_add_ps(sum);
    m[r] = mnew;
  }
}
#endif

/*
 * Online-softmax update of `rows` rows of S (nk valid columns): S becomes
 * P = exp(S - m'), m and l are updated and corr[r] = exp(m - m') is the factor
 * the row's partial output must be rescaled by.
 */
static void softmax_rows(float *S, int rows, int64_t nk, float *m, float *l, float *corr) {
  for (int r = 0; r < rows; r++) {
    float *s = S + (int64_t)r * BK;
    float mx = -INFINITY;
    for (int64_t j = 0; j < nk; j++) mx = s[j] > mx ? s[j] : mx;
    float mnew = mx > m[r] ? mx : m[r];
    corr[r] = expf(m[r] - mnew);
    float sum = 0.0f;
    for (int64_t j = 0; j < nk; j++) {
      s[j] = expf(s[j] - mnew);
      sum += s[j];
    }
    l[r] = l[r] * corr[r] + sum;
    m[r] = mnew;
  }
}

/* C[rows4 x ncols] (+)= A · B in column chunks of up to 64 (ncols a multiple of 16, rows4 of 4). */
static void gemm_tile(int avx512, int rows4, int64_t ncols, int64_t K, const float *A, int64_t lda, const float *Bm,
                      int64_t ldb, float *C, int64_t ldc, int acc) {
  for (int r = 0; r < rows4; r += 4) {
    for (int64_t c0 = 0; c0 < ncols; c0 += 64) {
      int nc = (int)((ncols - c0 < 64 ? ncols - c0 : 64) / 16);
      const float *a = A + r * lda;
      const float *bb = Bm + c0;
      float *cc = C + r * ldc + c0;
#ifdef HAVE_X86_KERNEL
      if (avx512) {
        switch (nc) {
          case 1:
            mk512_1(K, a, lda, bb, ldb, cc, ldc, acc);
            break;
          case 2:
            mk512_2(K, a, lda, bb, ldb, cc, ldc, acc);
            break;
          case 3:
            mk512_3(K, a, lda, bb, ldb, cc, ldc, acc);
            break;
          default:
            mk512_4(K, a, lda, bb, ldb, cc, ldc, acc);
            break;
        }
        continue;
      }
#endif
      mk_portable(nc, K, a, lda, bb, ldb, cc, ldc, acc);
    }
  }
}

/* Phase 1 of a head: transposes key blocks [begin, end) into Kt and copies their values into Vp (zero-padded). */
static void pack_blocks(void *vctx, int64_t begin, int64_t end, int tid) {
  const attn_ctx *c = vctx;
  const int64_t D = c->D, Dv = c->Dv, Dvp = c->Dvp;
  float *row = c->ws + (size_t)tid * c->per_thread; /* staging for non-f32 keys */
  for (int64_t kb = begin; kb < end; kb++) {
    const int64_t k0 = kb * BK, nk = c->Tk - k0 < BK ? c->Tk - k0 : BK;
    float *Kt = c->kt + (size_t)(kb * D * BK);
    float *Vb = c->vp + (size_t)(k0 * Dvp);
    for (int64_t j = 0; j < nk; j++) {
      const char *ks = c->k + (size_t)((c->bi * c->ks[0] + (k0 + j) * c->ks[1] + c->h * c->ks[2]) * (int64_t)c->ke);
      const float *kr;
      if (c->kdt == REEL_F32) {
        kr = (const float *)ks;
      } else {
        reel__load_row(c->kdt, ks, 1, D, row);
        kr = row;
      }
      for (int64_t d = 0; d < D; d++) Kt[d * BK + j] = kr[d];
      const char *vs = c->v + (size_t)((c->bi * c->vs[0] + (k0 + j) * c->vs[1] + c->h * c->vs[2]) * (int64_t)c->ve);
      reel__load_row(c->vdt, vs, 1, Dv, Vb + j * Dvp);
      for (int64_t d = Dv; d < Dvp; d++) Vb[j * Dvp + d] = 0.0f;
    }
    for (int64_t d = 0; d < D; d++)
      for (int64_t j = nk; j < BK; j++) Kt[d * BK + j] = 0.0f;
    for (int64_t j = nk; j < BK; j++)
      for (int64_t d = 0; d < Dvp; d++) Vb[j * Dvp + d] = 0.0f;
  }
}

/* Phase 2 of a head: query blocks [begin, end) against every packed key block. */
static void query_blocks(void *vctx, int64_t begin, int64_t end, int tid) {
  const attn_ctx *c = vctx;
  const int64_t D = c->D, Dv = c->Dv, Dvp = c->Dvp, bi = c->bi, h = c->h;
  float *ws = c->ws + (size_t)tid * c->per_thread;
  float *Qb = ws;                   /* [BQ][D] */
  float *S = Qb + round16(BQ * D);  /* [BQ][BK] */
  float *O = S + BQ * BK;           /* [BQ][Dvp] */
  float *m = O + round16(BQ * Dvp); /* [BQ] */
  float *l = m + BQ, *corr = l + BQ;

  for (int64_t qb = begin; qb < end; qb++) {
    int64_t q0 = qb * BQ, nq = c->Tq - q0 < BQ ? c->Tq - q0 : BQ;
    int rows4 = (int)((nq + 3) / 4 * 4);

    for (int64_t i = 0; i < rows4; i++) {
      float *dst = Qb + i * D;
      if (i < nq) {
        const char *src = c->q + (size_t)((bi * c->qs[0] + (q0 + i) * c->qs[1] + h * c->qs[2]) * (int64_t)c->qe);
        reel__load_row(c->qdt, src, 1, D, dst);
        for (int64_t d = 0; d < D; d++) dst[d] *= c->scale;
      } else {
        memset(dst, 0, (size_t)D * sizeof(float));
      }
      m[i] = -INFINITY;
      l[i] = 0.0f;
    }
    memset(O, 0, (size_t)rows4 * (size_t)Dvp * sizeof(float));

    for (int64_t kb = 0; kb * BK < c->Tk; kb++) {
      const int64_t k0 = kb * BK, nk = c->Tk - k0 < BK ? c->Tk - k0 : BK, nk16 = round16(nk);
      const float *Kt = c->kt + (size_t)(kb * D * BK), *Vb = c->vp + (size_t)(k0 * Dvp);
      gemm_tile(c->avx512, rows4, nk16, D, Qb, D, Kt, BK, S, BK, 0);
#ifdef HAVE_X86_KERNEL
      if (c->avx512)
        softmax_rows512(S, rows4, nk, m, l, corr);
      else
#endif
        softmax_rows(S, rows4, nk, m, l, corr);
      for (int i = 0; i < rows4; i++) {
        if (corr[i] == 1.0f) continue;
        float *orow = O + i * Dvp;
        for (int64_t d = 0; d < Dvp; d++) orow[d] *= corr[i];
      }
      gemm_tile(c->avx512, rows4, Dvp, nk, S, BK, Vb, Dvp, O, Dvp, 1);
    }

    for (int64_t i = 0; i < nq; i++) {
      float *orow = O + i * Dvp;
      const float inv = 1.0f / l[i];
      for (int64_t d = 0; d < Dv; d++) orow[d] *= inv;
      char *dst = c->o + (size_t)((bi * c->os[0] + (q0 + i) * c->os[1] + h * c->os[2]) * (int64_t)c->oe);
      reel__store_row(c->odt, dst, 1, Dv, orow);
    }
  }
}

reel_status reel__cpu_attention(reel_backend *b, const reel_tensor *q, const reel_tensor *k, const reel_tensor *v,
                                float scale, reel_tensor *out, reel_error *err) {
  reel__cpu *cpu = reel__cpu_of(b);
  attn_ctx c;
  c.q = reel__tensor_data(q);
  c.k = reel__tensor_data(k);
  c.v = reel__tensor_data(v);
  c.o = reel__tensor_data(out);
  c.qdt = q->dtype;
  c.kdt = k->dtype;
  c.vdt = v->dtype;
  c.odt = out->dtype;
  c.qe = reel_dtype_size(q->dtype);
  c.ke = reel_dtype_size(k->dtype);
  c.ve = reel_dtype_size(v->dtype);
  c.oe = reel_dtype_size(out->dtype);
  for (int i = 0; i < 3; i++) {
    c.qs[i] = q->stride[i];
    c.ks[i] = k->stride[i];
    c.vs[i] = v->stride[i];
    c.os[i] = out->stride[i];
  }
  c.H = q->shape[2];
  c.Tq = q->shape[1];
  c.Tk = k->shape[1];
  c.D = q->shape[3];
  c.Dv = v->shape[3];
  c.Dvp = round16(c.Dv);
  c.nqb = (c.Tq + BQ - 1) / BQ;
  c.scale = scale;
  c.avx512 = cpu->have_avx512 && cpu->attn_path != REEL__ATTN_PORTABLE;
  const int64_t nkb = (c.Tk + BK - 1) / BK;
  /* Per thread: Q, S, O, m, l, corr (and key staging while packing); shared: one head's packed keys and values. */
  c.per_thread = (size_t)round16(round16(BQ * c.D) + BQ * BK + round16(BQ * c.Dvp) + 3 * BQ);
  if (c.per_thread < (size_t)round16(c.D)) c.per_thread = (size_t)round16(c.D);
  const size_t shared = (size_t)(nkb * c.D * BK) + (size_t)(nkb * BK * c.Dvp);
  int threads = reel__pool_threads(cpu->pool);
  c.ws = reel__cpu_scratch(b, ((size_t)threads * c.per_thread + shared) * sizeof(float), err);
  if (!c.ws) return REEL_ENOMEM;
  c.kt = c.ws + (size_t)threads * c.per_thread;
  c.vp = c.kt + (size_t)(nkb * c.D * BK);
  reel__backend_set_path(b, c.avx512 ? "cpu-attention-avx512" : "cpu-attention-portable");
  /* Head by head: pack its keys and values once, then every query block reads them. */
  for (c.bi = 0; c.bi < q->shape[0]; c.bi++)
    for (c.h = 0; c.h < c.H; c.h++) {
      reel__pool_run(cpu->pool, nkb, 1, pack_blocks, &c);
      reel__pool_run(cpu->pool, c.nqb, 1, query_blocks, &c);
    }
  return REEL_OK;
}
