/* SPDX-License-Identifier: Apache-2.0 */
/*
 * `reel bench ops`: GFLOP/s of the compute ops that dominate a Wan2.1 job, at
 * the model's shapes, per code path side by side: the linear layers' matmuls
 * (per GEMM path and weight dtype), self-attention at a few token counts (per
 * attention kernel) and the VAE's 3x3x3 convolutions (per GEMM path, since the
 * CPU runs them as im2col + GEMM). The measuring is reel/opbench.h's, the same
 * code reel_bench_matmul uses. Ratios are against the first path of each row
 * group ("auto", the path a job takes).
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "cli.h"
#include "reel/backend.h"
#include "reel/opbench.h"

#define MAX_LIST 8

typedef struct shape_preset {
  const char *name;
  int64_t dim, ffn, text_dim, text_len, heads, head_dim;
  int64_t vae_channels[3];
  int n_vae;
} shape_preset;

/* Transformer and VAE widths: the released Wan2.1 configs, and tests/fixtures/tiny-wan. */
static const shape_preset presets[] = {
    {"1.3b", 1536, 8960, 4096, 512, 12, 128, {384, 192, 96}, 3},
    {"14b", 5120, 13824, 4096, 512, 40, 128, {384, 192, 96}, 3},
    {"tiny", 60, 112, 32, 512, 3, 20, {8, 4, 0}, 2},
};

enum {
  OPT_JSON = 0x2000,
  OPT_BACKEND,
  OPT_THREADS,
  OPT_SHAPES,
  OPT_ROWS,
  OPT_TOKENS,
  OPT_CONV,
  OPT_REPS,
  OPT_OPS,
  OPT_PATHS,
  OPT_DTYPE
};

static const struct option ops_options[] = {{"help", no_argument, NULL, 'h'},
                                            {"json", no_argument, NULL, OPT_JSON},
                                            {"backend", required_argument, NULL, OPT_BACKEND},
                                            {"threads", required_argument, NULL, OPT_THREADS},
                                            {"shapes", required_argument, NULL, OPT_SHAPES},
                                            {"rows", required_argument, NULL, OPT_ROWS},
                                            {"tokens", required_argument, NULL, OPT_TOKENS},
                                            {"conv-size", required_argument, NULL, OPT_CONV},
                                            {"reps", required_argument, NULL, OPT_REPS},
                                            {"ops", required_argument, NULL, OPT_OPS},
                                            {"paths", required_argument, NULL, OPT_PATHS},
                                            {"dtype", required_argument, NULL, OPT_DTYPE},
                                            {NULL, 0, NULL, 0}};

static const char *verb = "bench ops";

static void ops_usage(FILE *f) {
  fprintf(f,
          "usage: reel bench ops [options]\n"
          "\n"
          "GFLOP/s of matmul, attention and conv3d at Wan2.1 shapes, per code path side by side.\n"
          "\n"
          "options:\n"
          "  --backend B        auto, cpu or cuda (default auto: cuda when built and present)\n"
          "  --threads N        CPU threads, 0..1024 (0 = all usable CPUs)\n"
          "  --shapes S         1.3b, 14b or tiny (tests/fixtures/tiny-wan) widths (default 1.3b)\n"
          "  --rows M           matmul rows (tokens), 1..1048576 (default cpu 1024, cuda 32760)\n"
          "  --tokens A,B,...   attention token counts, up to %d, each 1..1048576\n"
          "                     (default cpu 256,1024,4096; cuda 4096,16384,32760)\n"
          "  --conv-size HxW    conv3d frame size (default cpu 64x64, cuda 240x416); 3 frames in, 1 out\n"
          "  --reps N           timed calls per figure, 1..%d (median; default 3)\n"
          "  --ops LIST         of matmul, attention, conv3d (default all)\n"
          "  --paths LIST       GEMM paths for matmul and conv3d (default cpu: auto,avx512,avx2,openblas,\n"
          "                     portable, those this machine has; cuda: auto)\n"
          "  --dtype D          matmul weights: f32, bf16, f16 or all (default f32 and bf16)\n"
          "  --json             one JSON object on stdout (fields: docs/bench.md)\n"
          "  -h, --help         this help\n",
          MAX_LIST, REEL_OPBENCH_MAX_REPS);
}

/* Splits a comma list into at most MAX_LIST items (pointers into buf). Returns the count, -1 when too many/empty. */
static int split_list(char *buf, char **items) {
  int n = 0;
  for (char *save = NULL, *p = strtok_r(buf, ",", &save); p; p = strtok_r(NULL, ",", &save)) {
    if (n == MAX_LIST) return -1;
    items[n++] = p;
  }
  return n ? n : -1;
}

typedef struct ops_ctx {
  reel_backend *b;
  int json;
  json_t *results;
  int reps;
  int failed;
} ops_ctx;

/* Records one figure (or an unavailable path); `ref` holds the group's first GFLOP/s (0 = none yet). */
static void record(ops_ctx *c, const char *op, const char *name, json_t *shape, const char *dtype, const char *asked,
                   reel_status st, const reel_error *err, const reel_opbench_result *r, double *ref) {
  char shape_s[96] = "";
  for (size_t i = 0; i < json_array_size(shape); i++)
    snprintf(shape_s + strlen(shape_s), sizeof shape_s - strlen(shape_s), "%s%lld", i ? "x" : "",
             (long long)json_integer_value(json_array_get(shape, i)));
  json_t *o =
      json_pack("{s:s, s:s, s:o, s:s, s:s}", "op", op, "name", name, "shape", shape, "dtype", dtype, "asked", asked);
  if (st == REEL_OK) {
    if (*ref == 0) *ref = r->gflops;
    const double ratio = *ref > 0 ? r->gflops / *ref : 0.0;
    if (!c->json)
      printf("  %-9s %-8s %-22s %-5s %-9s %-24s %9.1f %10.4f  x%.2f\n", op, name, shape_s, dtype, asked, r->path,
             r->gflops, r->seconds_median * 1e3, ratio);
    if (o) {
      json_object_set_new(o, "status", json_string("ok"));
      json_object_set_new(o, "path", json_string(r->path));
      json_object_set_new(o, "gflops", json_real(r->gflops));
      json_object_set_new(o, "seconds", json_real(r->seconds_median));
      json_object_set_new(o, "seconds_min", json_real(r->seconds_min));
      json_object_set_new(o, "flop", json_real(r->flop));
      json_object_set_new(o, "reps", json_integer(r->reps));
      json_object_set_new(o, "ratio", json_real(ratio));
    }
  } else {
    const int unavailable = st == REEL_EUNSUPPORTED || st == REEL_ENOTFOUND;
    if (!unavailable) c->failed = 1;
    if (!c->json)
      printf("  %-9s %-8s %-22s %-5s %-9s %s: %s\n", op, name, shape_s, dtype, asked,
             unavailable ? "unavailable" : "FAILED", err->msg);
    if (o) {
      json_object_set_new(o, "status", json_string(unavailable ? "unavailable" : "failed"));
      json_object_set_new(o, "reason", json_string(err->msg));
    }
  }
  if (o) json_array_append_new(c->results, o);
}

/* Chooses `path` for `key` ("matmul", "attention"); CUDA has no matmul choice: only "auto" there. */
static reel_status choose(reel_backend *b, const char *key, const char *path, reel_error *err) {
  reel_status st = reel_backend_set_option(b, key, path, err);
  if (st == REEL_ENOTFOUND && !strcmp(path, "auto")) {
    reel_error_clear(err);
    return REEL_OK;
  }
  if (st == REEL_ENOTFOUND)
    reel_error_reset(err, REEL_EUNSUPPORTED, key, "the %s backend has no %s choice", reel_backend_name(b), key);
  return st;
}

static void run_matmuls(ops_ctx *c, const shape_preset *p, int64_t rows, char **paths, int npaths,
                        const reel_dtype *dts, int ndts) {
  const struct {
    const char *name;
    int64_t m, k, n;
  } mm[] = {{"qkvo", rows, p->dim, p->dim},
            {"ffn1", rows, p->dim, p->ffn},
            {"ffn2", rows, p->ffn, p->dim},
            {"text-kv", p->text_len, p->text_dim, p->dim}};
  for (size_t s = 0; s < sizeof mm / sizeof mm[0]; s++) {
    for (int d = 0; d < ndts; d++) {
      double ref = 0;
      for (int i = 0; i < npaths; i++) {
        reel_error err;
        reel_error_clear(&err);
        reel_opbench_result r;
        reel_status st = choose(c->b, "matmul", paths[i], &err);
        if (st == REEL_OK) st = reel_opbench_matmul(c->b, mm[s].m, mm[s].k, mm[s].n, dts[d], c->reps, &r, &err);
        record(c, "matmul", mm[s].name,
               json_pack("[I, I, I]", (json_int_t)mm[s].m, (json_int_t)mm[s].k, (json_int_t)mm[s].n),
               reel_dtype_name(dts[d]), paths[i], st, &err, &r, &ref);
      }
    }
  }
  choose(c->b, "matmul", "auto", NULL);
}

static void run_attention(ops_ctx *c, const shape_preset *p, const int64_t *tokens, int ntok) {
  const int cuda = reel_backend_get_kind(c->b) == REEL_BACKEND_CUDA;
  static const char *const cpu_paths[] = {"auto", "avx512", "portable"};
  static const char *const cuda_paths[] = {"auto", "mma", "simt"};
  const char *const *paths = cuda ? cuda_paths : cpu_paths;
  const reel_dtype dt = cuda ? REEL_BF16 : REEL_F32;
  for (int t = 0; t < ntok; t++) {
    double ref = 0;
    char name[32];
    snprintf(name, sizeof name, "T=%lld", (long long)tokens[t]);
    for (int i = 0; i < 3; i++) {
      reel_error err;
      reel_error_clear(&err);
      reel_opbench_result r;
      reel_status st = choose(c->b, "attention", paths[i], &err);
      if (st == REEL_OK) st = reel_opbench_attention(c->b, 1, tokens[t], p->heads, p->head_dim, dt, c->reps, &r, &err);
      record(c, "attention", name,
             json_pack("[I, I, I, I]", (json_int_t)1, (json_int_t)tokens[t], (json_int_t)p->heads,
                       (json_int_t)p->head_dim),
             reel_dtype_name(dt), paths[i], st, &err, &r, &ref);
    }
  }
  choose(c->b, "attention", "auto", NULL);
}

static void run_convs(ops_ctx *c, const shape_preset *p, int H, int W, char **paths, int npaths) {
  for (int v = 0; v < p->n_vae; v++) {
    const int64_t ch = p->vae_channels[v];
    double ref = 0;
    char name[32];
    snprintf(name, sizeof name, "c%lld", (long long)ch);
    for (int i = 0; i < npaths; i++) {
      reel_error err;
      reel_error_clear(&err);
      reel_opbench_result r;
      reel_status st = choose(c->b, "matmul", paths[i], &err);
      if (st == REEL_OK) st = reel_opbench_conv3d(c->b, 3, H, W, ch, ch, 3, REEL_F32, c->reps, &r, &err);
      record(c, "conv3d", name,
             json_pack("[I, I, I, I, I, I]", (json_int_t)3, (json_int_t)H, (json_int_t)W, (json_int_t)ch,
                       (json_int_t)ch, (json_int_t)3),
             "f32", paths[i], st, &err, &r, &ref);
    }
  }
  choose(c->b, "matmul", "auto", NULL);
}

int bench_ops_main(int argc, char **argv) {
  int json = 0, reps = 3, rc = 1;
  long threads = 0, rows = 0, v = 0;
  const char *backend = "auto";
  const shape_preset *preset = &presets[0];
  int64_t tokens[MAX_LIST];
  int ntok = 0, conv_h = 0, conv_w = 0;
  int do_mm = 1, do_attn = 1, do_conv = 1;
  char paths_buf[256] = "", *paths[MAX_LIST];
  int npaths = 0;
  reel_dtype dts[3] = {REEL_F32, REEL_BF16, REEL_F16};
  int ndts = 2;
  reel_backend *b = NULL;
  ops_ctx c;
  memset(&c, 0, sizeof c);

  optind = 1;
  opterr = 0;
  for (int o; (o = getopt_long(argc, argv, ":h", ops_options, NULL)) != -1;) {
    switch (o) {
      case 'h':
        ops_usage(stdout);
        return 0;
      case OPT_JSON:
        json = 1;
        break;
      case OPT_BACKEND:
        if (strcmp(optarg, "auto") && strcmp(optarg, "cpu") && strcmp(optarg, "cuda"))
          return bench_usage_error(verb, "--backend", "must be auto, cpu or cuda");
        backend = optarg;
        break;
      case OPT_THREADS:
        if (bench_parse_int(verb, "--threads", optarg, 0, 1024, &threads)) return 2;
        break;
      case OPT_SHAPES: {
        preset = NULL;
        for (size_t i = 0; i < sizeof presets / sizeof presets[0]; i++)
          if (!strcmp(optarg, presets[i].name)) preset = &presets[i];
        if (!preset) return bench_usage_error(verb, "--shapes", "must be 1.3b, 14b or tiny");
        break;
      }
      case OPT_ROWS:
        if (bench_parse_int(verb, "--rows", optarg, 1, 1048576, &rows)) return 2;
        break;
      case OPT_TOKENS: {
        char buf[256], *items[MAX_LIST];
        snprintf(buf, sizeof buf, "%s", optarg);
        int n = split_list(buf, items);
        if (n < 0) return bench_usage_error(verb, "--tokens", "must be 1 to 8 comma-separated counts");
        for (int i = 0; i < n; i++) {
          if (bench_parse_int(verb, "--tokens", items[i], 1, 1048576, &v)) return 2;
          tokens[i] = v;
        }
        ntok = n;
        break;
      }
      case OPT_CONV: {
        int h = 0, w = 0;
        char tail;
        if (sscanf(optarg, "%dx%d%c", &h, &w, &tail) != 2 || h < 1 || w < 1 || h > 4096 || w > 4096)
          return bench_usage_error(verb, "--conv-size", "must be HxW with H and W in 1..4096");
        conv_h = h;
        conv_w = w;
        break;
      }
      case OPT_REPS:
        if (bench_parse_int(verb, "--reps", optarg, 1, REEL_OPBENCH_MAX_REPS, &v)) return 2;
        reps = (int)v;
        break;
      case OPT_OPS: {
        char buf[256], *items[MAX_LIST];
        snprintf(buf, sizeof buf, "%s", optarg);
        int n = split_list(buf, items);
        if (n < 0) return bench_usage_error(verb, "--ops", "must list matmul, attention and/or conv3d");
        do_mm = do_attn = do_conv = 0;
        for (int i = 0; i < n; i++) {
          if (!strcmp(items[i], "matmul"))
            do_mm = 1;
          else if (!strcmp(items[i], "attention"))
            do_attn = 1;
          else if (!strcmp(items[i], "conv3d"))
            do_conv = 1;
          else
            return bench_usage_error(verb, "--ops", "must list matmul, attention and/or conv3d");
        }
        break;
      }
      case OPT_PATHS: {
        snprintf(paths_buf, sizeof paths_buf, "%s", optarg);
        npaths = split_list(paths_buf, paths);
        if (npaths < 0) return bench_usage_error(verb, "--paths", "must be 1 to 8 comma-separated GEMM paths");
        for (int i = 0; i < npaths; i++)
          if (strcmp(paths[i], "auto") && strcmp(paths[i], "avx512") && strcmp(paths[i], "avx2") &&
              strcmp(paths[i], "openblas") && strcmp(paths[i], "portable"))
            return bench_usage_error(verb, "--paths", "each must be auto, avx512, avx2, openblas or portable");
        break;
      }
      case OPT_DTYPE:
        if (!strcmp(optarg, "all")) {
          ndts = 3;
        } else {
          reel_dtype dt;
          if (reel_dtype_parse(optarg, &dt) != REEL_OK || !reel_dtype_is_float(dt))
            return bench_usage_error(verb, "--dtype", "must be f32, bf16, f16 or all");
          dts[0] = dt;
          ndts = 1;
        }
        break;
      case ':': {
        char msg[160];
        snprintf(msg, sizeof msg, "option '%.60s' needs a value", argv[optind - 1]);
        return bench_usage_error(verb, NULL, msg);
      }
      default: {
        char msg[160];
        snprintf(msg, sizeof msg, "unknown option '%.60s'", argv[optind - 1]);
        return bench_usage_error(verb, NULL, msg);
      }
    }
  }
  if (optind < argc) {
    char msg[160];
    snprintf(msg, sizeof msg, "unexpected argument '%.60s'", argv[optind]);
    return bench_usage_error(verb, NULL, msg);
  }

  reel_error err;
  reel_error_clear(&err);
  if (strcmp(backend, "cpu") != 0 && reel_backend_cuda_built()) {
    b = reel_backend_new_cuda(0, &err);
    if (!b && !strcmp(backend, "cuda")) {
      fprintf(stderr, "reel %s: --backend: cuda: %s\n", verb, err.msg);
      return 1;
    }
  } else if (!strcmp(backend, "cuda")) {
    fprintf(stderr, "reel %s: --backend: cuda: this reel was built without CUDA\n", verb);
    return 1;
  }
  if (!b) {
    reel_error_clear(&err);
    b = reel_backend_new_cpu((int)threads, &err);
    if (!b) {
      fprintf(stderr, "reel %s: cpu backend: %s\n", verb, err.msg);
      return 1;
    }
  }
  const int cuda = reel_backend_get_kind(b) == REEL_BACKEND_CUDA;
  if (!rows) rows = cuda ? 32760 : 1024;
  if (!ntok) {
    static const int64_t cpu_t[] = {256, 1024, 4096}, cuda_t[] = {4096, 16384, 32760};
    memcpy(tokens, cuda ? cuda_t : cpu_t, sizeof cpu_t);
    ntok = 3;
  }
  if (!conv_h) {
    conv_h = cuda ? 240 : 64;
    conv_w = cuda ? 416 : 64;
  }
  if (!npaths) {
    snprintf(paths_buf, sizeof paths_buf, "%s", cuda ? "auto" : "auto,avx512,avx2,openblas,portable");
    npaths = split_list(paths_buf, paths);
    if (!cuda) { /* only the paths this machine and build have */
      int k = 0;
      for (int i = 0; i < npaths; i++)
        if (reel_backend_set_option(b, "matmul", paths[i], NULL) == REEL_OK) paths[k++] = paths[i];
      npaths = k;
      reel_backend_set_option(b, "matmul", "auto", NULL);
    }
  }

  bench_machine mc;
  bench_machine_get(&mc);
  c.b = b;
  c.json = json;
  c.reps = reps;
  c.results = json_array();
  if (!c.results) goto out;
  if (!json) {
    printf("reel bench ops (reel %s)\n", REEL_VERSION_STRING);
    bench_machine_print(stdout, &mc);
    const char *env = getenv("OPENBLAS_CORETYPE");
    printf("config:   backend=%s threads=%d shapes=%s rows=%ld reps=%d (median) OPENBLAS_CORETYPE=%s\n",
           reel_backend_name(b), reel_backend_threads(b), preset->name, rows, reps, env ? env : "(unset)");
    printf("  %-9s %-8s %-22s %-5s %-9s %-24s %9s %10s  %s\n", "op", "name", "shape", "dtype", "asked", "ran",
           "GFLOP/s", "ms", "ratio to first");
  }
  if (do_mm) run_matmuls(&c, preset, rows, paths, npaths, dts, ndts);
  if (do_attn) run_attention(&c, preset, tokens, ntok);
  if (do_conv) run_convs(&c, preset, conv_h, conv_w, paths, npaths);
  if (json) {
    json_t *o = json_pack("{s:s, s:s, s:o, s:s, s:i, s:s, s:I, s:i, s:o}", "bench", "ops", "reel_version",
                          REEL_VERSION_STRING, "machine", bench_machine_json(&mc), "backend", reel_backend_name(b),
                          "threads", reel_backend_threads(b), "shapes", preset->name, "rows", (json_int_t)rows, "reps",
                          reps, "results", json_incref(c.results));
    char *text = o ? json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(15)) : NULL;
    json_decref(o);
    if (!text) {
      fprintf(stderr, "reel %s: out of memory\n", verb);
      goto out;
    }
    printf("%s\n", text);
    free(text);
  }
  rc = c.failed ? 1 : 0;
  if (c.failed) fprintf(stderr, "reel %s: some measurements failed (see above)\n", verb);
out:
  json_decref(c.results);
  reel_backend_destroy(&b);
  return rc;
}
