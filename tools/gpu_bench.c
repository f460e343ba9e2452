/* SPDX-License-Identifier: Apache-2.0 */
/*
 * reel_gpu_bench: seconds per classifier-free-guidance denoising step of a
 * Wan2.1-T2V-1.3B-shaped transformer on one backend, for scripts/gpu-check.
 *
 * The model is made here, in C, with no download and no Python: the exact 1.3B
 * configuration (30 layers, width 1536 = 12 heads x 128, FFN 8960, text width
 * 4096) with random bf16 weights is written as a diffusers-layout folder into a
 * work directory and loaded through the ordinary loader (weights_bf16; bf16
 * activations on CUDA). One step is what the denoising loop does per step: one
 * forward over the conditional and unconditional batch (2 x 32,760 tokens at
 * 480x832 x 81 frames, latents 16x21x60x104, 512 text tokens), the guidance
 * combination and the sampler update, then a synchronisation. It prints and
 * writes (--json) the median step time, the FLOPs counted as in PERFORMANCE.md
 * (every Linear layer plus the attention products), the achieved TFLOP/s and its
 * fraction of the reference rate (790 TFLOP/s, bf16 on an H200), the most memory
 * the backend held, and the attention and FFN-matmul rates measured alone
 * (--ops-only: just those two, in seconds, for iterating on the kernels).
 * --size tiny runs the same program at a toy size (for the CPU dry run of
 * scripts/gpu-check). A benchmark, not a test: it asserts nothing about time.
 */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "reel/backend.h"
#include "reel/safetensors.h"
#include "reel/wan.h"

typedef struct bench_cfg {
  int layers, heads, head_dim, ffn, text_dim, freq_dim;
  int64_t latent[4]; /* C, F, H, W */
  int64_t text_len;
} bench_cfg;

static const bench_cfg full_cfg = {30, 12, 128, 8960, 4096, 256, {16, 21, 60, 104}, 512};
static const bench_cfg tiny_cfg = {2, 2, 128, 512, 64, 256, {16, 3, 8, 12}, 24};

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static double median(double *v, int n) {
  qsort(v, (size_t)n, sizeof *v, cmp_double);
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* ---- the random checkpoint ---------------------------------------------------------------- */

typedef struct wtensor {
  char name[96];
  int rank;
  int64_t shape[5];
  uint16_t *data; /* bf16 */
  float scale;    /* uniform in [-scale, scale]; 0: all ones */
} wtensor;

typedef struct wlist {
  wtensor *t;
  size_t n, cap;
} wlist;

static int add(wlist *l, const char *name, int rank, const int64_t *shape, float scale) {
  if (l->n == l->cap) {
    size_t cap = l->cap ? 2 * l->cap : 512;
    wtensor *t = realloc(l->t, cap * sizeof *t);
    if (!t) return -1;
    l->t = t;
    l->cap = cap;
  }
  wtensor *t = &l->t[l->n++];
  memset(t, 0, sizeof *t);
  snprintf(t->name, sizeof t->name, "%s", name);
  t->rank = rank;
  for (int i = 0; i < rank; i++) t->shape[i] = shape[i];
  t->scale = scale;
  return 0;
}

static int add_linear(wlist *l, const char *name, int64_t out, int64_t in) {
  char n[96];
  int64_t ws[2] = {out, in}, bs[1] = {out};
  snprintf(n, sizeof n, "%s.weight", name);
  if (add(l, n, 2, ws, 1.0f / sqrtf((float)in)) != 0) return -1;
  snprintf(n, sizeof n, "%s.bias", name);
  return add(l, n, 1, bs, 0.01f);
}

/* Every tensor of WanTransformer3DModel for the config, in diffusers' names. */
static int build_list(const bench_cfg *c, wlist *l) {
  const int64_t D = (int64_t)c->heads * c->head_dim;
  char n[96];
  int64_t pe[5] = {D, c->latent[0], 1, 2, 2}, d1[1] = {D}, sst[3] = {1, 6, D}, hs[3] = {1, 2, D};
  int rc = add(l, "patch_embedding.weight", 5, pe, 1.0f / sqrtf((float)(c->latent[0] * 4)));
  rc |= add(l, "patch_embedding.bias", 1, d1, 0.01f);
  rc |= add_linear(l, "condition_embedder.time_embedder.linear_1", D, c->freq_dim);
  rc |= add_linear(l, "condition_embedder.time_embedder.linear_2", D, D);
  rc |= add_linear(l, "condition_embedder.time_proj", 6 * D, D);
  rc |= add_linear(l, "condition_embedder.text_embedder.linear_1", D, c->text_dim);
  rc |= add_linear(l, "condition_embedder.text_embedder.linear_2", D, D);
  for (int i = 0; i < c->layers && rc == 0; i++) {
    static const char *const lin[] = {"attn1.to_q", "attn1.to_k", "attn1.to_v", "attn1.to_out.0",
                                      "attn2.to_q", "attn2.to_k", "attn2.to_v", "attn2.to_out.0"};
    for (size_t k = 0; k < sizeof lin / sizeof lin[0]; k++) {
      snprintf(n, sizeof n, "blocks.%d.%s", i, lin[k]);
      rc |= add_linear(l, n, D, D);
    }
    static const char *const vec[] = {"attn1.norm_q.weight", "attn1.norm_k.weight", "attn2.norm_q.weight",
                                      "attn2.norm_k.weight", "norm2.weight"};
    for (size_t k = 0; k < sizeof vec / sizeof vec[0]; k++) {
      snprintf(n, sizeof n, "blocks.%d.%s", i, vec[k]);
      rc |= add(l, n, 1, d1, 0.0f);
    }
    snprintf(n, sizeof n, "blocks.%d.norm2.bias", i);
    rc |= add(l, n, 1, d1, 0.01f);
    snprintf(n, sizeof n, "blocks.%d.ffn.net.0.proj", i);
    rc |= add_linear(l, n, c->ffn, D);
    snprintf(n, sizeof n, "blocks.%d.ffn.net.2", i);
    rc |= add_linear(l, n, D, c->ffn);
    snprintf(n, sizeof n, "blocks.%d.scale_shift_table", i);
    rc |= add(l, n, 3, sst, 0.1f);
  }
  rc |= add(l, "scale_shift_table", 3, hs, 0.1f);
  rc |= add_linear(l, "proj_out", c->latent[0] * 4, D);
  return rc;
}

static uint64_t splitmix(uint64_t *s) {
  uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

/* Fills every tensor with uniform bf16 values (or ones). Returns the bytes, 0 on allocation failure. */
static size_t fill_all(wlist *l) {
  size_t total = 0;
  for (size_t i = 0; i < l->n; i++) {
    wtensor *t = &l->t[i];
    size_t n = 1;
    for (int d = 0; d < t->rank; d++) n *= (size_t)t->shape[d];
    t->data = malloc(n * 2 + 2);
    if (!t->data) return 0;
    uint64_t s = 0x5EED0000ull + i;
    if (t->scale == 0.0f) {
      for (size_t j = 0; j < n; j++) t->data[j] = reel_f32_to_bf16(1.0f);
    } else {
      for (size_t j = 0; j < n; j += 4) {
        uint64_t r = splitmix(&s);
        for (size_t k = 0; k < 4 && j + k < n; k++) {
          float u = (float)((r >> (16 * k)) & 0xffff) * (1.0f / 32768.0f) - 1.0f;
          t->data[j + k] = reel_f32_to_bf16(u * t->scale);
        }
      }
    }
    total += n * 2;
  }
  return total;
}

static int write_model(const bench_cfg *c, const char *dir, wlist *l, reel_error *err) {
  char path[4200];
  snprintf(path, sizeof path, "%s/config.json", dir);
  FILE *f = fopen(path, "w");
  if (!f) {
    reel_error_set(err, REEL_EIO, path, "cannot create: %s", strerror(errno));
    return -1;
  }
  fprintf(f,
          "{\"_class_name\": \"WanTransformer3DModel\", \"patch_size\": [1, 2, 2], \"num_attention_heads\": %d, "
          "\"attention_head_dim\": %d, \"in_channels\": %lld, \"out_channels\": %lld, \"text_dim\": %d, "
          "\"freq_dim\": %d, \"ffn_dim\": %d, \"num_layers\": %d, \"cross_attn_norm\": true, "
          "\"qk_norm\": \"rms_norm_across_heads\", \"eps\": 1e-06, \"image_dim\": null, \"added_kv_proj_dim\": null, "
          "\"rope_max_seq_len\": 1024, \"pos_embed_seq_len\": null}\n",
          c->heads, c->head_dim, (long long)c->latent[0], (long long)c->latent[0], c->text_dim, c->freq_dim, c->ffn,
          c->layers);
  if (fclose(f) != 0) {
    reel_error_set(err, REEL_EIO, path, "write failed");
    return -1;
  }
  reel_st_entry *e = calloc(l->n, sizeof *e);
  if (!e) return -1;
  for (size_t i = 0; i < l->n; i++) {
    e[i].name = l->t[i].name;
    e[i].dtype = REEL_ST_BF16;
    e[i].rank = l->t[i].rank;
    e[i].shape = l->t[i].shape;
    e[i].data = l->t[i].data;
  }
  snprintf(path, sizeof path, "%s/diffusion_pytorch_model.safetensors", dir);
  reel_status st = reel_safetensors_write(path, e, l->n, NULL, 0, err);
  free(e);
  return st == REEL_OK ? 0 : -1;
}

/* ---- FLOPs -------------------------------------------------------------------------------- */

/* Multiply-adds x 2 of one forward over B samples: every Linear layer and the attention products. */
static void forward_flops(const reel_wan_config *c, double B, double T, double L, double *linear, double *attn) {
  const double D = (double)c->dim, F = (double)c->ffn_dim, P = (double)(c->patch[0] * c->patch[1] * c->patch[2]);
  const double layer_lin = 2.0 * T * D * D * 6 /* q, k, v, o; cross q, o */ + 2.0 * L * D * D * 2 /* cross k, v */ +
                           2.0 * T * D * F * 2 /* feed-forward */;
  const double layer_att = 4.0 * T * T * D /* self */ + 4.0 * T * L * D /* cross */;
  const double rest = 2.0 * T * D * (double)c->in_channels * P + 2.0 * T * D * (double)c->out_channels * P +
                      2.0 * L * D * ((double)c->text_dim + D);
  *linear = B * (layer_lin * (double)c->layers + rest);
  *attn = B * layer_att * (double)c->layers;
}

/* ---- main --------------------------------------------------------------------------------- */

static void usage(void) {
  fprintf(stderr,
          "usage: reel_gpu_bench [--backend cuda|cpu] [--size full|tiny] [--steps N] [--warmup N]\n"
          "                      [--workdir DIR] [--keep] [--json PATH] [--no-ops | --ops-only]\n"
          "                      [--peak TFLOPS]\n");
}

#define FAIL(...)                        \
  do {                                   \
    fprintf(stderr, "reel_gpu_bench: "); \
    fprintf(stderr, __VA_ARGS__);        \
    fprintf(stderr, "\n");               \
    goto done;                           \
  } while (0)

#define CHECK(expr)                                                       \
  do {                                                                    \
    if ((expr) != REEL_OK) FAIL("%s: %s: %s", #expr, err.field, err.msg); \
  } while (0)

/* Median seconds of `reps` runs of one op (after one warm-up), synchronised. */
typedef reel_status (*op_fn)(void *ctx, reel_error *err);
static double time_op(reel_backend *b, op_fn fn, void *ctx, int reps, reel_error *err) {
  double t[16];
  if (reps > 16) reps = 16;
  if (fn(ctx, err) != REEL_OK || reel_backend_synchronize(b, err) != REEL_OK) return -1;
  for (int i = 0; i < reps; i++) {
    double t0 = now();
    if (fn(ctx, err) != REEL_OK || reel_backend_synchronize(b, err) != REEL_OK) return -1;
    t[i] = now() - t0;
  }
  return median(t, reps);
}

typedef struct attn_ctx {
  reel_backend *b;
  reel_tensor q, o;
} attn_ctx;

static reel_status run_attn(void *vctx, reel_error *err) {
  attn_ctx *c = vctx;
  return reel_op_attention(c->b, &c->q, &c->q, &c->q, 0.0883883f, &c->o, err);
}

/* Fills a contiguous float tensor with Philox noise (through an f32 buffer for 16-bit tensors). */
static reel_status fill_noise(reel_backend *b, reel_tensor *t, uint64_t seed, reel_error *err) {
  int64_t n[1] = {reel_tensor_numel(t)};
  reel_tensor flat, tmp;
  reel_status st = reel_tensor_reshape(t, 1, n, &flat, err);
  if (st != REEL_OK || t->dtype == REEL_F32) return st == REEL_OK ? reel_op_noise(b, seed, 0, &flat, err) : st;
  if ((st = reel_tensor_new(b, REEL_F32, 1, n, &tmp, err)) != REEL_OK) return st;
  st = reel_op_noise(b, seed, 0, &tmp, err);
  if (st == REEL_OK) st = reel_op_copy(b, &tmp, &flat, err);
  if (st == REEL_OK) st = reel_backend_synchronize(b, err);
  reel_tensor_free(&tmp);
  return st;
}

typedef struct mm_ctx {
  reel_backend *b;
  reel_tensor x, w, o;
} mm_ctx;

static reel_status run_mm(void *vctx, reel_error *err) {
  mm_ctx *c = vctx;
  return reel_op_matmul(c->b, &c->x, &c->w, NULL, &c->o, err);
}

/*
 * The two kernels that decide a step, alone at its shapes: attention over [2, T, heads, head_dim]
 * and the FFN's first matmul [2T, dim] x [ffn, dim]^T, in the activation dtype. Prints and
 * records their rates in res. Returns 0, or -1 with err set.
 */
#define OPCHECK(expr)                 \
  do {                                \
    if ((expr) != REEL_OK) goto fail; \
  } while (0)
static int run_ops(reel_backend *b, reel_dtype act, int64_t T, int64_t heads, int64_t head_dim, int64_t ffn,
                   json_t *res, reel_error *err) {
  const int64_t dim = heads * head_dim;
  attn_ctx ac = {b, {0}, {0}};
  mm_ctx mc = {b, {0}, {0}, {0}};
  /* The two kernels that decide the step, alone at the step's shapes. */
  int64_t qs[4] = {2, T, heads, head_dim};
  OPCHECK(reel_tensor_new(b, act, 4, qs, &ac.q, err));
  OPCHECK(reel_tensor_new(b, act, 4, qs, &ac.o, err));
  OPCHECK(fill_noise(b, &ac.q, 3, err));
  double ta = time_op(b, run_attn, &ac, 3, err);
  const char *apath = reel_backend_last_path(b);
  json_object_set_new(res, "attention_path", json_string(apath));
  double afl = 4.0 * 2.0 * (double)T * (double)T * (double)dim;
  if (ta > 0) {
    printf("attention alone [2, %lld, %lld, %lld] %s (%s): %.3f s, %.1f TFLOP/s\n", (long long)T, (long long)heads,
           (long long)head_dim, reel_dtype_name(act), apath, ta, afl / ta / 1e12);
    json_object_set_new(res, "attention_seconds", json_real(ta));
    json_object_set_new(res, "attention_tflops", json_real(afl / ta / 1e12));
  }
  reel_tensor_free(&ac.q);
  reel_tensor_free(&ac.o);
  if (ta < 0) goto fail;
  int64_t xs2[2] = {2 * T, dim}, ws2[2] = {ffn, dim}, os2[2] = {2 * T, ffn};
  OPCHECK(reel_tensor_new(b, act, 2, xs2, &mc.x, err));
  OPCHECK(reel_tensor_new(b, REEL_BF16, 2, ws2, &mc.w, err));
  OPCHECK(reel_tensor_new(b, act, 2, os2, &mc.o, err));
  OPCHECK(fill_noise(b, &mc.x, 4, err));
  OPCHECK(fill_noise(b, &mc.w, 5, err));
  double tm = time_op(b, run_mm, &mc, 5, err);
  double mfl = 2.0 * (double)(2 * T) * (double)dim * (double)ffn;
  if (tm > 0) {
    printf("FFN matmul alone [%lld x %lld] x [%lld x %lld]^T (%s): %.4f s, %.1f TFLOP/s\n", (long long)(2 * T),
           (long long)dim, (long long)ffn, (long long)dim, reel_backend_last_path(b), tm, mfl / tm / 1e12);
    json_object_set_new(res, "matmul_seconds", json_real(tm));
    json_object_set_new(res, "matmul_tflops", json_real(mfl / tm / 1e12));
    json_object_set_new(res, "matmul_path", json_string(reel_backend_last_path(b)));
  }
  reel_tensor_free(&mc.x);
  reel_tensor_free(&mc.w);
  reel_tensor_free(&mc.o);
  if (tm < 0) goto fail;
  return 0;
fail:
  fprintf(stderr, "reel_gpu_bench: kernels alone: %s: %s\n", err->field, err->msg);
  reel_tensor_free(&ac.q);
  reel_tensor_free(&ac.o);
  reel_tensor_free(&mc.x);
  reel_tensor_free(&mc.w);
  reel_tensor_free(&mc.o);
  return -1;
}

int main(int argc, char **argv) {
  const char *backend_name = "cuda", *size = "full", *workdir = NULL, *json_path = NULL;
  int steps = 3, warmup = 1, keep = 0, ops = 1, ops_only = 0;
  double peak_tflops = 790.0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(a, "--backend") && v)
      backend_name = argv[++i];
    else if (!strcmp(a, "--size") && v)
      size = argv[++i];
    else if (!strcmp(a, "--steps") && v)
      steps = atoi(argv[++i]);
    else if (!strcmp(a, "--warmup") && v)
      warmup = atoi(argv[++i]);
    else if (!strcmp(a, "--workdir") && v)
      workdir = argv[++i];
    else if (!strcmp(a, "--json") && v)
      json_path = argv[++i];
    else if (!strcmp(a, "--peak") && v)
      peak_tflops = atof(argv[++i]);
    else if (!strcmp(a, "--keep"))
      keep = 1;
    else if (!strcmp(a, "--ops-only"))
      ops_only = 1;
    else if (!strcmp(a, "--no-ops"))
      ops = 0;
    else {
      usage();
      return 2;
    }
  }
  if (steps < 1 || steps > 100 || warmup < 0 || warmup > 10 || !(peak_tflops > 0) ||
      (strcmp(size, "full") && strcmp(size, "tiny")) || (strcmp(backend_name, "cuda") && strcmp(backend_name, "cpu"))) {
    usage();
    return 2;
  }
  const bench_cfg *bc = strcmp(size, "full") == 0 ? &full_cfg : &tiny_cfg;
  int rc = 1;
  reel_error err = {0};
  reel_backend *b = NULL;
  reel_wan_transformer *m = NULL;
  reel_tensor_arena *arena = NULL;
  reel_tensor lat = {0}, ctx = {0}, pred = {0}, x = {0}, out = {0};
  wlist wl = {0};
  char dir[4096] = "", tdir[4200] = "";
  double *st_times = calloc((size_t)steps, sizeof(double));
  json_t *res = json_object();
  if (!st_times || !res) FAIL("out of memory");

  if (ops_only) {
    /* Only the attention and FFN kernels at the step's shapes: no model, a few seconds. */
    b = strcmp(backend_name, "cuda") == 0 ? reel_backend_new_cuda(0, &err) : reel_backend_new_cpu(0, &err);
    if (!b) FAIL("backend %s: %s: %s", backend_name, err.field, err.msg);
    const reel_dtype oact = reel_backend_get_kind(b) == REEL_BACKEND_CUDA ? REEL_BF16 : REEL_F32;
    const int64_t oT = bc->latent[1] * (bc->latent[2] / 2) * (bc->latent[3] / 2);
    json_object_set_new(res, "size", json_string(size));
    json_object_set_new(res, "backend", json_string(reel_backend_name(b)));
    if (run_ops(b, oact, oT, bc->heads, bc->head_dim, bc->ffn, res, &err) != 0) goto done;
    if (json_path && json_dump_file(res, json_path, JSON_INDENT(2) | JSON_SORT_KEYS) != 0)
      FAIL("cannot write %s", json_path);
    rc = 0;
    goto done;
  }

  /* The model folder. */
  if (workdir) {
    snprintf(dir, sizeof dir, "%s", workdir);
    mkdir(dir, 0755);
  } else {
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/reel-gpu-bench-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir)) FAIL("mkdtemp %s: %s", dir, strerror(errno));
  }
  snprintf(tdir, sizeof tdir, "%s/transformer", dir);
  mkdir(tdir, 0755);
  double t0 = now();
  if (build_list(bc, &wl) != 0) FAIL("out of memory");
  size_t wbytes = fill_all(&wl);
  if (!wbytes) FAIL("out of memory for %zu tensors", wl.n);
  if (write_model(bc, tdir, &wl, &err) != 0) FAIL("writing the model: %s: %s", err.field, err.msg);
  for (size_t i = 0; i < wl.n; i++) free(wl.t[i].data);
  free(wl.t);
  wl.t = NULL;
  const double gen_s = now() - t0;
  printf("model: %zu tensors, %.2f GB of bf16 weights, made and written in %.1f s (%s)\n", wl.n, (double)wbytes / 1e9,
         gen_s, tdir);

  b = strcmp(backend_name, "cuda") == 0 ? reel_backend_new_cuda(0, &err) : reel_backend_new_cpu(0, &err);
  if (!b) FAIL("backend %s: %s: %s", backend_name, err.field, err.msg);
  t0 = now();
  const reel_wan_load_opts lo = {1};
  CHECK(reel_wan_transformer_load_dir_opts(b, tdir, &lo, &m, &err));
  const reel_dtype act = reel_backend_get_kind(b) == REEL_BACKEND_CUDA ? REEL_BF16 : REEL_F32;
  CHECK(reel_wan_transformer_set_activations(m, act, &err));
  CHECK(reel_backend_synchronize(b, &err));
  const double load_s = now() - t0;
  const reel_wan_config *c = reel_wan_transformer_config(m);

  /* Inputs: noise latents and text embeddings, both samples of the CFG batch. */
  const int64_t C = bc->latent[0], F = bc->latent[1], H = bc->latent[2], W = bc->latent[3], L = bc->text_len;
  const int64_t T = F * (H / 2) * (W / 2);
  int64_t ls[5] = {2, C, F, H, W}, cs[3] = {2, L, c->text_dim}, xs[5] = {1, C, F, H, W};
  CHECK(reel_tensor_new(b, REEL_F32, 5, ls, &lat, &err));
  CHECK(reel_tensor_new(b, REEL_F32, 5, ls, &out, &err));
  CHECK(reel_tensor_new(b, REEL_F32, 3, cs, &ctx, &err));
  CHECK(reel_tensor_new(b, REEL_F32, 5, xs, &x, &err));
  CHECK(reel_tensor_new(b, REEL_F32, 5, xs, &pred, &err));
  CHECK(reel_op_noise(b, 42, 0, &x, &err));
  CHECK(reel_op_noise(b, 7, 0, &ctx, &err));
  size_t arena_bytes = 0;
  CHECK(reel_wan_forward_arena_bytes(m, 2, F, H, W, L, &arena_bytes, &err));
  arena = reel_tensor_arena_new(b, arena_bytes, &err);
  if (!arena) FAIL("arena of %zu bytes: %s: %s", arena_bytes, err.field, err.msg);

  /* One CFG step: both halves of the batch hold the current latents; forward; guidance; Euler update. */
  const double guidance = 5.0, dt = -0.02;
  const float ts[2] = {999.0f, 999.0f};
  reel_tensor cond, uncond, half0, half1;
  CHECK(reel_tensor_slice(&out, 0, 0, 1, &cond, &err));
  CHECK(reel_tensor_slice(&out, 0, 1, 1, &uncond, &err));
  CHECK(reel_tensor_slice(&lat, 0, 0, 1, &half0, &err));
  CHECK(reel_tensor_slice(&lat, 0, 1, 1, &half1, &err));
  for (int s = -warmup; s < steps; s++) {
    double s0 = now();
    CHECK(reel_op_copy(b, &x, &half0, &err));
    CHECK(reel_op_copy(b, &x, &half1, &err));
    CHECK(reel_wan_forward(m, &lat, ts, &ctx, arena, &out, &err));
    const double gc[2] = {guidance, 1.0 - guidance}, ec[2] = {1.0, dt};
    const reel_tensor *gin[2] = {&cond, &uncond}, *ein[2] = {&x, &pred};
    CHECK(reel_op_lincomb(b, 2, gc, gin, &pred, &err));
    CHECK(reel_op_lincomb(b, 2, ec, ein, &x, &err));
    CHECK(reel_backend_synchronize(b, &err));
    double el = now() - s0;
    if (s >= 0) st_times[s] = el;
    printf("%s step %d: %.3f s\n", s < 0 ? "warm-up" : "timed", s < 0 ? s + warmup : s, el);
  }
  /* The result must be numbers: a broken kernel shows here as NaN or Inf. */
  {
    size_t n = (size_t)reel_tensor_numel(&x);
    float *h = malloc(n * sizeof *h);
    if (!h) FAIL("out of memory");
    CHECK(reel_tensor_download(&x, h, n * sizeof *h, &err));
    size_t bad = 0;
    double sum2 = 0;
    for (size_t i = 0; i < n; i++) {
      if (!isfinite(h[i]))
        bad++;
      else
        sum2 += (double)h[i] * h[i];
    }
    free(h);
    json_object_set_new(res, "latents_rms", json_real(sqrt(sum2 / (double)n)));
    if (bad) FAIL("%zu of %zu latents are not finite after the steps", bad, n);
  }
  size_t live = 0, peak = 0;
  reel_backend_memory(b, &live, &peak);
  double lin = 0, att = 0;
  forward_flops(c, 2.0, (double)T, (double)L, &lin, &att);
  double times_copy[100];
  memcpy(times_copy, st_times, (size_t)steps * sizeof(double));
  const double med = median(times_copy, steps);
  const double tflops = (lin + att) / med / 1e12;
  printf(
      "config: %lld layers, dim %lld (%lld heads x %lld), ffn %lld, text %lld x %lld; latents %lldx%lldx%lldx%lld = "
      "%lld tokens, CFG batch 2\n",
      (long long)c->layers, (long long)c->dim, (long long)c->heads, (long long)c->head_dim, (long long)c->ffn_dim,
      (long long)L, (long long)c->text_dim, (long long)C, (long long)F, (long long)H, (long long)W, (long long)T);
  printf("backend %s, activations %s\n", reel_backend_name(b), reel_dtype_name(act));
  printf(
      "step: median %.3f s over %d; %.1f TFLOP per step (linear %.1f + attention %.1f) -> %.1f TFLOP/s = %.1f%% of "
      "%.0f\n",
      med, steps, (lin + att) / 1e12, lin / 1e12, att / 1e12, tflops, 100.0 * tflops / peak_tflops, peak_tflops);
  printf("memory held by the backend: peak %.2f GB (weights %.2f GB, activations arena %.2f GB)\n", (double)peak / 1e9,
         (double)wbytes / 1e9, (double)arena_bytes / 1e9);

  json_t *cfgj =
      json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:[I,I,I,I], s:I, s:I}", "layers", (json_int_t)c->layers, "dim",
                (json_int_t)c->dim, "heads", (json_int_t)c->heads, "head_dim", (json_int_t)c->head_dim, "ffn_dim",
                (json_int_t)c->ffn_dim, "text_dim", (json_int_t)c->text_dim, "latents", (json_int_t)C, (json_int_t)F,
                (json_int_t)H, (json_int_t)W, "tokens", (json_int_t)T, "text_len", (json_int_t)L);
  json_t *arr = json_array();
  for (int s = 0; s < steps; s++) json_array_append_new(arr, json_real(st_times[s]));
  json_object_set_new(res, "size", json_string(size));
  json_object_set_new(res, "backend", json_string(reel_backend_name(b)));
  json_object_set_new(res, "activations", json_string(reel_dtype_name(act)));
  json_object_set_new(res, "config", cfgj);
  json_object_set_new(res, "cfg_batch", json_integer(2));
  json_object_set_new(res, "step_seconds", arr);
  json_object_set_new(res, "step_seconds_median", json_real(med));
  json_object_set_new(res, "tflop_per_step", json_real((lin + att) / 1e12));
  json_object_set_new(res, "tflop_linear_per_step", json_real(lin / 1e12));
  json_object_set_new(res, "tflop_attention_per_step", json_real(att / 1e12));
  json_object_set_new(res, "tflops", json_real(tflops));
  json_object_set_new(res, "reference_tflops", json_real(peak_tflops));
  json_object_set_new(res, "fraction_of_reference", json_real(tflops / peak_tflops));
  json_object_set_new(res, "backend_peak_bytes", json_integer((json_int_t)peak));
  json_object_set_new(res, "weights_bytes", json_integer((json_int_t)wbytes));
  json_object_set_new(res, "arena_bytes", json_integer((json_int_t)arena_bytes));
  json_object_set_new(res, "model_write_seconds", json_real(gen_s));
  json_object_set_new(res, "load_seconds", json_real(load_s));

  reel_tensor_arena_destroy(&arena);
  if (ops && run_ops(b, act, T, c->heads, c->head_dim, c->ffn_dim, res, &err) != 0) goto done;
  if (json_path && json_dump_file(res, json_path, JSON_INDENT(2) | JSON_SORT_KEYS) != 0)
    FAIL("cannot write %s", json_path);
  rc = 0;
done:
  reel_tensor_arena_destroy(&arena);
  reel_tensor_free(&lat);
  reel_tensor_free(&ctx);
  reel_tensor_free(&out);
  reel_tensor_free(&x);
  reel_tensor_free(&pred);
  reel_wan_transformer_destroy(&m);
  reel_backend_destroy(&b);
  if (wl.t) {
    for (size_t i = 0; i < wl.n; i++) free(wl.t[i].data);
    free(wl.t);
  }
  if (!keep && tdir[0]) {
    char p[4300];
    snprintf(p, sizeof p, "%s/config.json", tdir);
    unlink(p);
    snprintf(p, sizeof p, "%s/diffusion_pytorch_model.safetensors", tdir);
    unlink(p);
    rmdir(tdir);
    if (!workdir) rmdir(dir);
  }
  json_decref(res);
  free(st_times);
  return rc;
}
