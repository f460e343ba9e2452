/* SPDX-License-Identifier: Apache-2.0 */
/*
 * CPU matmul: the GEMM driver behind reel_op_matmul and reel_op_matmul_batched.
 *
 * Paths: our own packed GEMM with an AVX-512, AVX2 or portable micro-kernel
 * (gemm.h), OpenBLAS's cblas_sgemm when built with it, and a dot-product path
 * for very few rows (packing B would cost more than the product). "auto" takes
 * avx512 > avx2 > openblas > portable: we choose by our own feature detection
 * because OpenBLAS's can misdetect a CPU badly (docs/PERFORMANCE.md).
 *
 * Blocking (BLIS order): a task owns a range of C rows and columns; for each K
 * block it packs its B block (f16/bf16 converted to f32 here, panel by panel, so
 * no full f32 copy of the weights is ever made), then for each M block packs A
 * and runs the micro-kernel over the tiles, B micro-panel outermost so it stays in
 * L1. Tasks are sized so each packs B only a few times; a C element's K order is
 * fixed, so results do not depend on the thread count.
 */
#include <math.h>
#include <stdio.h>

#include "cpu_impl.h"
#include "gemm.h"

#ifdef REEL_HAVE_OPENBLAS
#include <cblas.h>
#endif

#define NC_MAX 2048      /* columns of B one task packs at a time */
#define DOT_MAX_ROWS 3   /* up to this many rows of A: dot-product path */
#define DOT_MAX_ROWS_AVX512 16 /* with the AVX-512 dot kernel (weights read once, rows from L1/L2) */
#define SHARED_NC 4096   /* columns of the B block shared by all threads (in L3) */

typedef struct gemm_problem {
  int64_t M, N, K;
  const float *a;
  int64_t lda;
  const char *b; /* bytes */
  reel_dtype bt;
  int64_t ldb;
  int trans_b; /* 1: B element (k, n) at b[n * ldb + k]; 0: at b[k * ldb + n] */
  float *c;
  int64_t ldc;
  const float *bias; /* [N] f32 or NULL */
  float alpha;
  int64_t batch;
  const int64_t *off; /* per batch: a, b, c element offsets (3 * batch), NULL for batch 1 */
} gemm_problem;

static inline float load_b(const gemm_problem *p, const char *b, int64_t idx) {
  switch (p->bt) {
    case REEL_F32: return ((const float *)(const void *)b)[idx];
    case REEL_BF16: return reel__bf16_f32(((const uint16_t *)(const void *)b)[idx]);
    default: return reel_f16_to_f32(((const uint16_t *)(const void *)b)[idx]);
  }
}

/* Packs rows [m0, m0+mc) x cols [k0, k0+kc) of A into MR-row panels [k][MR], zero-padding the last panel. */
static void pack_a(const float *a, int64_t lda, int64_t m0, int64_t mc, int64_t k0, int64_t kc, int mr, float *dst) {
  for (int64_t ip = 0; ip < mc; ip += mr) {
    int64_t rows = mc - ip < mr ? mc - ip : mr;
    for (int64_t i = 0; i < rows; i++) {
      const float *src = a + (m0 + ip + i) * lda + k0;
      for (int64_t k = 0; k < kc; k++) dst[k * mr + i] = src[k];
    }
    for (int64_t i = rows; i < mr; i++)
      for (int64_t k = 0; k < kc; k++) dst[k * mr + i] = 0.0f;
    dst += kc * mr;
  }
}

/* Packs cols [n0, n0+nc) x rows [k0, k0+kc) of B into NR-column panels [k][NR] of f32, zero-padding. */
static void pack_b(const gemm_problem *p, const char *b, int64_t n0, int64_t nc, int64_t k0, int64_t kc, int nr,
                   float *dst) {
  for (int64_t jp = 0; jp < nc; jp += nr) {
    int64_t cols = nc - jp < nr ? nc - jp : nr;
    if (p->trans_b) {
      /* Each column n is a contiguous run along k. */
      for (int64_t j = 0; j < cols; j++) {
        int64_t base = (n0 + jp + j) * p->ldb + k0;
        if (p->bt == REEL_F32) {
          const float *src = (const float *)(const void *)b + base;
          for (int64_t k = 0; k < kc; k++) dst[k * nr + j] = src[k];
        } else if (p->bt == REEL_BF16) {
          const uint16_t *src = (const uint16_t *)(const void *)b + base;
          for (int64_t k = 0; k < kc; k++) dst[k * nr + j] = reel__bf16_f32(src[k]);
        } else {
          const uint16_t *src = (const uint16_t *)(const void *)b + base;
          for (int64_t k = 0; k < kc; k++) dst[k * nr + j] = reel_f16_to_f32(src[k]);
        }
      }
    } else {
      for (int64_t k = 0; k < kc; k++) {
        int64_t base = (k0 + k) * p->ldb + n0 + jp;
        float *d = dst + k * nr;
        if (p->bt == REEL_F32) {
          const float *src = (const float *)(const void *)b + base;
          for (int64_t j = 0; j < cols; j++) d[j] = src[j];
        } else {
          for (int64_t j = 0; j < cols; j++) d[j] = load_b(p, b, base + j);
        }
      }
    }
    if (cols < nr)
      for (int64_t k = 0; k < kc; k++)
        for (int64_t j = cols; j < nr; j++) dst[k * nr + j] = 0.0f;
    dst += kc * nr;
  }
}

typedef struct gemm_ctx {
  const gemm_problem *p;
  const reel__gemm_kernel *kern;
  int64_t mchunk, nchunk, mtasks, ntasks;
  float *ws;            /* per thread: A block then B block */
  size_t ws_per_thread; /* floats */
} gemm_ctx;

/* What run_gemm will do and how much scratch it needs (bytes), decided before any scratch is taken. */
typedef struct gemm_plan {
  reel__gemm_path path; /* AVX512/AVX2/PORTABLE: packed; OPENBLAS */
  int dot;              /* few rows: dot-product path */
  gemm_ctx g;           /* packed paths */
  int shared;           /* packed, one matrix with many rows: B blocks packed once, shared by all threads */
  int64_t sh_nc;        /* shared: columns per B block (multiple of NR) */
  int64_t sh_rows;      /* shared: rows per compute task (multiple of MR) */
  int64_t nb;           /* OpenBLAS: columns of B converted per call */
  size_t bytes;
} gemm_plan;

static void edge_tile(const reel__gemm_kernel *kern, int64_t kc, const float *pa, const float *pb, float *c,
                      int64_t ldc, int64_t mr, int64_t nr, int flags, float alpha, const float *bias) {
  float tmp[REEL__MR_MAX * REEL__NR_MAX] __attribute__((aligned(64)));
  kern->micro(kc, pa, pb, tmp, kern->nr, 0, 1.0f, NULL);
  for (int64_t i = 0; i < mr; i++) {
    float *ci = c + i * ldc;
    for (int64_t j = 0; j < nr; j++) {
      float v = tmp[i * kern->nr + j];
      if (flags & REEL__MK_ACC) v += ci[j];
      if (flags & REEL__MK_LAST) {
        v = v * alpha;
        if (bias) v = v + bias[j];
      }
      ci[j] = v;
    }
  }
}

static void gemm_task(void *vctx, int64_t begin, int64_t end, int tid) {
  const gemm_ctx *g = vctx;
  const gemm_problem *p = g->p;
  const reel__gemm_kernel *kern = g->kern;
  const int MR = kern->mr, NR = kern->nr;
  const int64_t KC = kern->kc, MC = kern->mc;
  float *pa = g->ws + (size_t)tid * g->ws_per_thread;
  float *pb = pa + (size_t)MC * (size_t)KC;
  size_t esz = reel_dtype_size(p->bt);
  for (int64_t t = begin; t < end; t++) {
    int64_t bi = t / (g->mtasks * g->ntasks);
    int64_t rem = t % (g->mtasks * g->ntasks);
    int64_t m0 = (rem / g->ntasks) * g->mchunk, n0 = (rem % g->ntasks) * g->nchunk;
    int64_t m1 = m0 + g->mchunk < p->M ? m0 + g->mchunk : p->M;
    int64_t n1 = n0 + g->nchunk < p->N ? n0 + g->nchunk : p->N;
    const float *A = p->a + (p->off ? p->off[3 * bi] : 0);
    const char *B = p->b + (size_t)(p->off ? p->off[3 * bi + 1] : 0) * esz;
    float *C = p->c + (p->off ? p->off[3 * bi + 2] : 0);
    int64_t nc = n1 - n0;
    for (int64_t pc = 0; pc < p->K; pc += KC) {
      int64_t kc = p->K - pc < KC ? p->K - pc : KC;
      int flags = (pc > 0 ? REEL__MK_ACC : 0) | (pc + kc == p->K ? REEL__MK_LAST : 0);
      if (kern->pack_bt && p->trans_b)
        kern->pack_bt(B, (int)p->bt, p->ldb, n0, nc, pc, kc, pb);
      else
        pack_b(p, B, n0, nc, pc, kc, NR, pb);
      for (int64_t ic = m0; ic < m1; ic += MC) {
        int64_t mc = m1 - ic < MC ? m1 - ic : MC;
        if (kern->pack_a)
          kern->pack_a(A, p->lda, ic, mc, pc, kc, pa);
        else
          pack_a(A, p->lda, ic, mc, pc, kc, MR, pa);
        for (int64_t jr = 0; jr < nc; jr += NR) {
          int64_t nr = nc - jr < NR ? nc - jr : NR;
          const float *bias = p->bias ? p->bias + n0 + jr : NULL;
          const float *pbj = pb + jr * kc;
          for (int64_t ir = 0; ir < mc; ir += MR) {
            int64_t mr = mc - ir < MR ? mc - ir : MR;
            float *cij = C + (ic + ir) * p->ldc + n0 + jr;
            if (mr == MR && nr == NR)
              kern->micro(kc, pa + ir * kc, pbj, cij, p->ldc, flags, p->alpha, bias);
            else
              edge_tile(kern, kc, pa + ir * kc, pbj, cij, p->ldc, mr, nr, flags, p->alpha, bias);
          }
        }
      }
    }
  }
}

static int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
static int64_t round_up(int64_t a, int64_t b) { return ceil_div(a, b) * b; }

static void plan_packed(int threads, const reel__gemm_kernel *kern, const gemm_problem *p, gemm_plan *pl) {
  /* Column chunks: as wide as possible (B packed once per K block), at most NC_MAX. */
  int64_t ntasks = ceil_div(p->N, NC_MAX);
  /* Row chunks: enough tasks for about 3 per thread. */
  int64_t want = ceil_div(3 * (int64_t)threads, p->batch);
  int64_t mtasks = ceil_div(want, ntasks);
  int64_t mmax = ceil_div(p->M, kern->mr);
  if (mtasks > mmax) mtasks = mmax;
  if (mtasks < 1) mtasks = 1;
  if (mtasks * ntasks < want) { /* few rows: split columns further */
    int64_t nmax = ceil_div(p->N, kern->nr);
    ntasks = ceil_div(want, mtasks);
    if (ntasks > nmax) ntasks = nmax;
  }
  gemm_ctx *g = &pl->g;
  g->p = p;
  g->kern = kern;
  g->mchunk = round_up(ceil_div(p->M, mtasks), kern->mr);
  g->nchunk = round_up(ceil_div(p->N, ntasks), kern->nr);
  g->mtasks = ceil_div(p->M, g->mchunk);
  g->ntasks = ceil_div(p->N, g->nchunk);
  size_t per = (size_t)kern->mc * (size_t)kern->kc + (size_t)kern->kc * (size_t)g->nchunk;
  g->ws_per_thread = (size_t)round_up((int64_t)per, 16); /* keeps every thread's block 64-byte aligned */
  pl->bytes = (size_t)threads * g->ws_per_thread * sizeof(float);
}

/* ---- Shared-B strategy: for each (N block, K block), pack B once in parallel, then spread M over threads ---- */

typedef struct shared_ctx {
  const gemm_problem *p;
  const reel__gemm_kernel *kern;
  float *pb;     /* packed B block, kc x nc */
  float *pa;     /* per-thread A blocks */
  size_t pa_per; /* floats per thread */
  int64_t n0, nc, k0, kc, rows;
  int flags;
} shared_ctx;

static void shared_pack_task(void *vctx, int64_t begin, int64_t end, int tid) {
  (void)tid;
  const shared_ctx *s = vctx;
  const gemm_problem *p = s->p;
  const int NR = s->kern->nr;
  for (int64_t panel = begin; panel < end; panel++) {
    int64_t j0 = panel * NR, cols = s->nc - j0 < NR ? s->nc - j0 : NR;
    float *dst = s->pb + j0 * s->kc;
    if (s->kern->pack_bt && p->trans_b)
      s->kern->pack_bt(p->b, (int)p->bt, p->ldb, s->n0 + j0, cols, s->k0, s->kc, dst);
    else
      pack_b(p, p->b, s->n0 + j0, cols, s->k0, s->kc, NR, dst);
  }
}

static void shared_compute_task(void *vctx, int64_t begin, int64_t end, int tid) {
  const shared_ctx *s = vctx;
  const gemm_problem *p = s->p;
  const reel__gemm_kernel *kern = s->kern;
  const int MR = kern->mr, NR = kern->nr;
  float *pa = s->pa + (size_t)tid * s->pa_per;
  for (int64_t t = begin; t < end; t++) {
    int64_t m0 = t * s->rows, mc = p->M - m0 < s->rows ? p->M - m0 : s->rows;
    if (kern->pack_a)
      kern->pack_a(p->a, p->lda, m0, mc, s->k0, s->kc, pa);
    else
      pack_a(p->a, p->lda, m0, mc, s->k0, s->kc, MR, pa);
    for (int64_t jr = 0; jr < s->nc; jr += NR) {
      int64_t nr = s->nc - jr < NR ? s->nc - jr : NR;
      const float *bias = p->bias ? p->bias + s->n0 + jr : NULL;
      const float *pbj = s->pb + jr * s->kc;
      for (int64_t ir = 0; ir < mc; ir += MR) {
        int64_t mr = mc - ir < MR ? mc - ir : MR;
        float *cij = p->c + (m0 + ir) * p->ldc + s->n0 + jr;
        if (mr == MR && nr == NR)
          kern->micro(s->kc, pa + ir * s->kc, pbj, cij, p->ldc, s->flags, p->alpha, bias);
        else
          edge_tile(kern, s->kc, pa + ir * s->kc, pbj, cij, p->ldc, mr, nr, s->flags, p->alpha, bias);
      }
    }
  }
}

static void run_shared(reel__pool *pool, const gemm_plan *pl, const gemm_problem *p, float *ws) {
  const reel__gemm_kernel *kern = pl->g.kern;
  shared_ctx s;
  s.p = p;
  s.kern = kern;
  s.rows = pl->sh_rows;
  s.pb = ws;
  s.pa = ws + (size_t)kern->kc * (size_t)pl->sh_nc;
  s.pa_per = (size_t)s.rows * (size_t)kern->kc;
  int64_t mtasks = (p->M + s.rows - 1) / s.rows;
  for (int64_t n0 = 0; n0 < p->N; n0 += pl->sh_nc) {
    s.n0 = n0;
    s.nc = p->N - n0 < pl->sh_nc ? p->N - n0 : pl->sh_nc;
    for (int64_t k0 = 0; k0 < p->K; k0 += kern->kc) {
      s.k0 = k0;
      s.kc = p->K - k0 < kern->kc ? p->K - k0 : kern->kc;
      s.flags = (k0 > 0 ? REEL__MK_ACC : 0) | (k0 + s.kc == p->K ? REEL__MK_LAST : 0);
      reel__pool_run(pool, (s.nc + kern->nr - 1) / kern->nr, 4, shared_pack_task, &s);
      reel__pool_run(pool, mtasks, 1, shared_compute_task, &s);
    }
  }
}

/* ---- Few rows: one dot product per output, B rows contiguous along K ---- */

typedef struct dot_ctx {
  const gemm_problem *p;
  reel__dot_fn fn; /* NULL: portable loops below */
} dot_ctx;

static void dot_task(void *vctx, int64_t begin, int64_t end, int tid) {
  (void)tid;
  const dot_ctx *d = vctx;
  const gemm_problem *p = d->p;
  if (d->fn) {
    d->fn(p->a, p->lda, p->M, p->b, (int)p->bt, p->ldb, p->K, begin, end, p->bias, p->alpha, p->c, p->ldc);
    return;
  }
  for (int64_t n = begin; n < end; n++) {
    for (int64_t m = 0; m < p->M; m++) {
      const float *a = p->a + m * p->lda;
      float acc[16] = {0};
      int64_t k = 0;
      const int64_t base = n * p->ldb;
      if (p->bt == REEL_F32) {
        const float *w = (const float *)(const void *)p->b + base;
        for (; k + 16 <= p->K; k += 16)
          for (int l = 0; l < 16; l++) acc[l] += a[k + l] * w[k + l];
      } else if (p->bt == REEL_BF16) {
        const uint16_t *w = (const uint16_t *)(const void *)p->b + base;
        for (; k + 16 <= p->K; k += 16)
          for (int l = 0; l < 16; l++) acc[l] += a[k + l] * reel__bf16_f32(w[k + l]);
      }
      for (int l = 0; k < p->K; k++, l = (l + 1) & 15) acc[l] += a[k] * load_b(p, p->b, base + k);
      for (int w = 8; w >= 1; w /= 2)
        for (int l = 0; l < w; l++) acc[l] += acc[l + w];
      float v = acc[0] * p->alpha;
      if (p->bias) v = v + p->bias[n];
      p->c[m * p->ldc + n] = v;
    }
  }
}

/* ---- OpenBLAS ---- */

#ifdef REEL_HAVE_OPENBLAS
static void gemm_openblas(reel_backend *be, const gemm_problem *p, int64_t nb, float *conv) {
  openblas_set_num_threads(be->threads);
  size_t esz = reel_dtype_size(p->bt);
  for (int64_t bi = 0; bi < p->batch; bi++) {
    const float *A = p->a + (p->off ? p->off[3 * bi] : 0);
    const char *B = p->b + (size_t)(p->off ? p->off[3 * bi + 1] : 0) * esz;
    float *C = p->c + (p->off ? p->off[3 * bi + 2] : 0);
    if (p->bias)
      for (int64_t m = 0; m < p->M; m++) memcpy(C + m * p->ldc, p->bias, (size_t)p->N * sizeof(float));
    float beta = p->bias ? 1.0f : 0.0f;
    for (int64_t n0 = 0; n0 < p->N; n0 += nb) {
      int64_t n = p->N - n0 < nb ? p->N - n0 : nb;
      const float *Bf;
      int64_t ldb;
      if (p->bt == REEL_F32) {
        Bf = (const float *)(const void *)B + (p->trans_b ? n0 * p->ldb : n0);
        ldb = p->ldb;
      } else if (p->trans_b) {
        for (int64_t j = 0; j < n; j++)
          reel__load_row(p->bt, B + (size_t)((n0 + j) * p->ldb) * esz, 1, p->K, conv + j * p->K);
        Bf = conv;
        ldb = p->K;
      } else {
        for (int64_t k = 0; k < p->K; k++) reel__load_row(p->bt, B + (size_t)(k * p->ldb + n0) * esz, 1, n, conv + k * n);
        Bf = conv;
        ldb = n;
      }
      cblas_sgemm(CblasRowMajor, CblasNoTrans, p->trans_b ? CblasTrans : CblasNoTrans, (blasint)p->M, (blasint)n,
                  (blasint)p->K, p->alpha, A, (blasint)p->lda, Bf, (blasint)ldb, beta, C + n0, (blasint)p->ldc);
    }
  }
}
#endif

/* ---- Path choice ---- */

static void plan_gemm(reel_backend *be, const gemm_problem *p, gemm_plan *pl) {
  reel__cpu *c = reel__cpu_of(be);
  memset(pl, 0, sizeof *pl);
  reel__gemm_path path = c->gemm_path;
  if (path == REEL__GEMM_AUTO) {
    path = c->have_avx512 ? REEL__GEMM_AVX512 : c->have_avx2 ? REEL__GEMM_AVX2 : REEL__GEMM_PORTABLE;
#ifdef REEL_HAVE_OPENBLAS
    if (path == REEL__GEMM_PORTABLE) path = REEL__GEMM_OPENBLAS;
#endif
  }
  pl->path = path;
  if (path == REEL__GEMM_OPENBLAS) {
    /* f16/bf16 B: convert column blocks of at most ~4 MiB to f32, never the whole matrix. */
    pl->nb = p->N;
    if (p->bt != REEL_F32) {
      pl->nb = (int64_t)((size_t)1 << 20) / p->K;
      if (pl->nb < 1) pl->nb = 1;
      if (pl->nb > p->N) pl->nb = p->N;
      pl->bytes = (size_t)pl->nb * (size_t)p->K * sizeof(float);
    }
    return;
  }
  if (p->trans_b && p->batch == 1 &&
      (p->M <= DOT_MAX_ROWS || (path == REEL__GEMM_AVX512 && p->M <= DOT_MAX_ROWS_AVX512))) {
    pl->dot = 1;
    return;
  }
  const reel__gemm_kernel *kern = &reel__gemm_kernel_portable;
#ifdef REEL__GEMM_X86
  if (path == REEL__GEMM_AVX512) kern = &reel__gemm_kernel_avx512;
  if (path == REEL__GEMM_AVX2) kern = &reel__gemm_kernel_avx2;
#endif
  int threads = reel__pool_threads(c->pool);
  if (p->batch == 1 && p->M >= 4 * (int64_t)kern->mr * threads) {
    /* B blocks of up to SHARED_NC columns (balanced), rows per task: MC, fewer if that leaves threads idle. */
    int64_t nblocks = ceil_div(p->N, SHARED_NC);
    pl->shared = 1;
    pl->g.kern = kern;
    pl->sh_nc = round_up(ceil_div(p->N, nblocks), kern->nr);
    int64_t rows = kern->mc;
    while (rows > 2 * kern->mr && ceil_div(p->M, rows) < 4 * (int64_t)threads) rows -= kern->mr;
    pl->sh_rows = rows;
    pl->bytes = ((size_t)kern->kc * (size_t)pl->sh_nc + (size_t)threads * (size_t)rows * (size_t)kern->kc) *
                sizeof(float);
    return;
  }
  plan_packed(threads, kern, p, pl);
}

/* Runs a planned GEMM; ws holds pl->bytes of scratch. */
static void exec_gemm(reel_backend *be, const gemm_problem *p, gemm_plan *pl, void *ws) {
  reel__cpu *c = reel__cpu_of(be);
#ifdef REEL_HAVE_OPENBLAS
  if (pl->path == REEL__GEMM_OPENBLAS) {
    reel__backend_set_path(be, p->bt == REEL_F32 ? "openblas" : "openblas+f32-panels");
    gemm_openblas(be, p, pl->nb, ws);
    return;
  }
#endif
  if (pl->dot) {
    dot_ctx d = {p, NULL};
#ifdef REEL__GEMM_X86
    if (pl->path == REEL__GEMM_AVX512) d.fn = reel__dot_avx512;
#endif
    reel__backend_set_path(be, d.fn ? "cpu-avx512-dot" : "cpu-dot");
    reel__pool_run(c->pool, p->N, 64, dot_task, &d);
    return;
  }
  if (pl->shared) {
    reel__backend_set_path(be, pl->g.kern->name);
    run_shared(c->pool, pl, p, ws);
    return;
  }
  pl->g.p = p;
  pl->g.ws = ws;
  reel__backend_set_path(be, pl->g.kern->name);
  reel__pool_run(c->pool, p->batch * pl->g.mtasks * pl->g.ntasks, 1, gemm_task, &pl->g);
}

/* Row stride of a tensor whose leading dims flatten into rows (validated by ops.c). */
static int64_t row_stride(const reel_tensor *t) {
  for (int i = t->ndim - 2; i >= 0; i--)
    if (t->shape[i] != 1) return t->stride[i];
  return t->shape[t->ndim - 1];
}

reel_status reel__cpu_matmul(reel_backend *be, const reel_tensor *x, const reel_tensor *w, const reel_tensor *bias,
                             reel_tensor *out, reel_error *err) {
  if (x->dtype != REEL_F32)
    return reel_error_set(err, REEL_EUNSUPPORTED, "matmul.x", "CPU matmul takes f32 activations, got %s",
                          reel_dtype_name(x->dtype));
  if (out->dtype != REEL_F32)
    return reel_error_set(err, REEL_EUNSUPPORTED, "matmul.out", "CPU matmul writes f32, got %s",
                          reel_dtype_name(out->dtype));
  gemm_problem p;
  memset(&p, 0, sizeof p);
  p.K = x->shape[x->ndim - 1];
  p.N = w->shape[0];
  p.M = reel_tensor_numel(x) / p.K;
  p.a = reel__tensor_data(x);
  p.lda = row_stride(x);
  p.b = reel__tensor_data(w);
  p.bt = w->dtype;
  p.ldb = p.N > 1 ? w->stride[0] : p.K;
  p.trans_b = 1;
  p.c = reel__tensor_data(out);
  p.ldc = row_stride(out);
  p.alpha = 1.0f;
  p.batch = 1;
  int convert_bias = bias && !(bias->dtype == REEL_F32 && bias->stride[0] == 1);
  if (bias && !convert_bias) p.bias = reel__tensor_data(bias);
  gemm_plan pl;
  plan_gemm(be, &p, &pl);
  /* Scratch: [bias converted to f32][GEMM scratch]. */
  size_t extra = convert_bias ? (size_t)round_up(p.N, 16) * sizeof(float) : 0;
  char *ws = reel__cpu_scratch(be, extra + pl.bytes + 64, err);
  if (!ws) return REEL_ENOMEM;
  if (convert_bias) {
    reel__load_row(bias->dtype, reel__tensor_data(bias), bias->stride[0], p.N, (float *)(void *)ws);
    p.bias = (const float *)(const void *)ws;
  }
  exec_gemm(be, &p, &pl, ws + extra);
  return REEL_OK;
}

reel_status reel__cpu_matmul_batched(reel_backend *be, const reel_tensor *a, const reel_tensor *bm, int trans_b,
                                     float alpha, reel_tensor *out, reel_error *err) {
  if (a->dtype != REEL_F32)
    return reel_error_set(err, REEL_EUNSUPPORTED, "matmul_batched.a", "CPU takes f32, got %s",
                          reel_dtype_name(a->dtype));
  if (out->dtype != REEL_F32)
    return reel_error_set(err, REEL_EUNSUPPORTED, "matmul_batched.out", "CPU writes f32, got %s",
                          reel_dtype_name(out->dtype));
  int n = a->ndim;
  gemm_problem p;
  memset(&p, 0, sizeof p);
  p.M = a->shape[n - 2];
  p.K = a->shape[n - 1];
  p.N = out->shape[n - 1];
  p.a = reel__tensor_data(a);
  p.lda = p.M > 1 ? a->stride[n - 2] : p.K;
  p.b = reel__tensor_data(bm);
  p.bt = bm->dtype;
  p.trans_b = trans_b;
  p.ldb = bm->shape[n - 2] > 1 ? bm->stride[n - 2] : bm->shape[n - 1];
  p.c = reel__tensor_data(out);
  p.ldc = p.M > 1 ? out->stride[n - 2] : p.N;
  p.alpha = alpha;
  p.batch = 1;
  for (int d = 0; d < n - 2; d++) p.batch *= out->shape[d];
  gemm_plan pl;
  plan_gemm(be, &p, &pl);
  size_t extra = (size_t)round_up(3 * p.batch, 8) * sizeof(int64_t);
  char *ws = reel__cpu_scratch(be, extra + pl.bytes + 64, err);
  if (!ws) return REEL_ENOMEM;
  int64_t *off = (int64_t *)(void *)ws;
  for (int64_t bi = 0; bi < p.batch; bi++) {
    int64_t idx = bi, oa = 0, ob = 0, oc = 0;
    for (int d = n - 3; d >= 0; d--) {
      int64_t i = idx % out->shape[d];
      idx /= out->shape[d];
      oa += a->shape[d] == 1 ? 0 : i * a->stride[d];
      ob += bm->shape[d] == 1 ? 0 : i * bm->stride[d];
      oc += i * out->stride[d];
    }
    off[3 * bi] = oa;
    off[3 * bi + 1] = ob;
    off[3 * bi + 2] = oc;
  }
  p.off = off;
  exec_gemm(be, &p, &pl, ws + extra);
  return REEL_OK;
}

/* ---- GEMM for other CPU ops (cpu_impl.h) ---- */

static void fill_nt(gemm_problem *p, int64_t M, int64_t N, int64_t K, const float *a, int64_t lda, const void *b,
                    reel_dtype bt, int64_t ldb, float *c, int64_t ldc, const float *bias) {
  memset(p, 0, sizeof *p);
  p->M = M;
  p->N = N;
  p->K = K;
  p->a = a;
  p->lda = lda;
  p->b = (const char *)b;
  p->bt = bt;
  p->ldb = ldb;
  p->trans_b = 1;
  p->c = c;
  p->ldc = ldc;
  p->bias = bias;
  p->alpha = 1.0f;
  p->batch = 1;
}

size_t reel__cpu_gemm_nt_bytes(reel_backend *be, int64_t M, int64_t N, int64_t K, reel_dtype bt) {
  gemm_problem p;
  gemm_plan pl;
  fill_nt(&p, M, N, K, NULL, K, NULL, bt, K, NULL, N, NULL);
  plan_gemm(be, &p, &pl);
  return pl.bytes;
}

void reel__cpu_gemm_nt(reel_backend *be, int64_t M, int64_t N, int64_t K, const float *a, int64_t lda, const void *b,
                       reel_dtype bt, int64_t ldb, float *c, int64_t ldc, const float *bias, void *ws) {
  gemm_problem p;
  gemm_plan pl;
  fill_nt(&p, M, N, K, a, lda, b, bt, ldb, c, ldc, bias);
  plan_gemm(be, &p, &pl);
  exec_gemm(be, &p, &pl, ws);
}
