/* SPDX-License-Identifier: Apache-2.0 */
/*
 * reel_wan_bench: loads a Wan transformer folder (config.json + weights, e.g. the
 * 1.3B-shaped random weights of tools/make_wan13b_random.py) and times forwards
 * on the CPU backend. Inputs come from a reference file with hidden_states,
 * timestep and encoder_hidden_states (a fixture's transformer_forward.safetensors
 * or make_wan13b_random.py's reference.safetensors), whose "output" the result is
 * compared with; or, without one, from Philox noise at --latent. Prints load
 * time, warm-up and median forward time, achieved GFLOP/s, peak RSS, and with
 * --json one JSON object for tools/bench_wan.py. A benchmark, not a test.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "reel/backend.h"
#include "reel/noise.h"
#include "reel/safetensors.h"
#include "reel/wan.h"

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double peak_rss_mb(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (double)ru.ru_maxrss / 1024.0;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

/* A reference tensor as a new f32 array (F32 or I64 sources). NULL when absent. */
static float *read_f32(const reel_safetensors *st, const char *name, int64_t *shape, int *rank) {
  const reel_st_tensor *t = reel_safetensors_find(st, name);
  if (!t) return NULL;
  float *out = malloc((size_t)t->numel * sizeof *out + 1);
  if (!out) return NULL;
  for (uint64_t i = 0; i < t->numel; i++) {
    if (t->dtype == REEL_ST_F32) {
      memcpy(&out[i], (const char *)t->data + 4 * i, 4);
    } else if (t->dtype == REEL_ST_I64) {
      int64_t v;
      memcpy(&v, (const char *)t->data + 8 * i, 8);
      out[i] = (float)v;
    } else {
      free(out);
      return NULL;
    }
  }
  if (shape)
    for (int i = 0; i < t->rank; i++) shape[i] = t->shape[i];
  if (rank) *rank = t->rank;
  return out;
}

/* Multiply-adds x 2 of one forward: every Linear, the attention products, the patch embedding. */
static double forward_flops(const reel_wan_config *c, double B, double T, double L) {
  const double D = (double)c->dim, F = (double)c->ffn_dim;
  const double P = (double)(c->patch[0] * c->patch[1] * c->patch[2]);
  double per_layer = 2.0 * T * D * D * 4   /* self-attention q, k, v, o */
                     + 2.0 * T * D * D * 2 /* cross-attention q, o */
                     + 2.0 * L * D * D * 2 /* cross-attention k, v */
                     + 2.0 * T * D * F * 2 /* feed-forward */
                     + 4.0 * T * T * D     /* self-attention scores and weighted sum */
                     + 4.0 * T * L * D;    /* cross-attention */
  double rest = 2.0 * T * D * (double)c->in_channels * P + 2.0 * T * D * (double)c->out_channels * P +
                2.0 * L * D * ((double)c->text_dim + D);
  return B * (per_layer * (double)c->layers + rest);
}

static void usage(void) {
  fprintf(stderr,
          "usage: reel_wan_bench --model DIR [--reference FILE | --latent CxFxHxW --batch B --text-len L]\n"
          "                      [--threads N] [--runs R] [--prepared] [--json]\n");
}

int main(int argc, char **argv) {
  const char *model = NULL, *reference = NULL;
  int threads = 0, runs = 3, json = 0, prepared = 0;
  int64_t latent[4] = {16, 1, 16, 16}, batch = 1, text_len = 512;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(a, "--json")) {
      json = 1;
      continue;
    }
    if (!strcmp(a, "--prepared")) {
      prepared = 1;
      continue;
    }
    if (!v) {
      usage();
      return 2;
    }
    i++;
    if (!strcmp(a, "--model")) {
      model = v;
    } else if (!strcmp(a, "--reference")) {
      reference = v;
    } else if (!strcmp(a, "--threads")) {
      threads = atoi(v);
    } else if (!strcmp(a, "--runs")) {
      runs = atoi(v);
    } else if (!strcmp(a, "--batch")) {
      batch = atoll(v);
    } else if (!strcmp(a, "--text-len")) {
      text_len = atoll(v);
    } else if (!strcmp(a, "--latent")) {
      long long c, f, h, w;
      if (sscanf(v, "%lldx%lldx%lldx%lld", &c, &f, &h, &w) != 4) {
        usage();
        return 2;
      }
      latent[0] = c;
      latent[1] = f;
      latent[2] = h;
      latent[3] = w;
    } else {
      usage();
      return 2;
    }
  }
  if (!model || runs < 1 || runs > 1000 || batch < 1 || text_len < 1) {
    usage();
    return 2;
  }

  reel_error err = {0};
  reel_backend *b = reel_backend_new_cpu(threads, &err);
  if (!b) {
    fprintf(stderr, "backend: %s\n", err.msg);
    return 1;
  }
  double t0 = now();
  reel_wan_transformer *m = NULL;
  if (reel_wan_transformer_load_dir(b, model, &m, &err) != REEL_OK) {
    fprintf(stderr, "load %s: %s: %s\n", model, err.field, err.msg);
    return 1;
  }
  double load_s = now() - t0;
  const reel_wan_config *c = reel_wan_transformer_config(m);

  /* Inputs. */
  float *lat = NULL, *ctx = NULL, *ts = NULL, *want = NULL;
  int64_t ls[5], cs[3];
  reel_safetensors *ref = NULL;
  if (reference) {
    int r1, r2;
    if (reel_safetensors_open(reference, &ref, &err) != REEL_OK) {
      fprintf(stderr, "reference: %s\n", err.msg);
      return 1;
    }
    lat = read_f32(ref, "hidden_states", ls, &r1);
    ctx = read_f32(ref, "encoder_hidden_states", cs, &r2);
    ts = read_f32(ref, "timestep", NULL, NULL);
    want = read_f32(ref, "output", NULL, NULL);
    if (!lat || !ctx || !ts || r1 != 5 || r2 != 3) {
      fprintf(stderr, "reference: needs hidden_states [B,C,F,H,W], timestep, encoder_hidden_states [B,L,D]\n");
      return 1;
    }
  } else {
    ls[0] = batch;
    for (int i = 0; i < 4; i++) ls[1 + i] = latent[i];
    cs[0] = batch;
    cs[1] = text_len;
    cs[2] = c->text_dim;
    size_t nl = (size_t)(ls[0] * ls[1] * ls[2] * ls[3] * ls[4]), nc = (size_t)(cs[0] * cs[1] * cs[2]);
    lat = malloc(nl * sizeof *lat);
    ctx = malloc(nc * sizeof *ctx);
    ts = malloc((size_t)batch * sizeof *ts);
    if (!lat || !ctx || !ts) return 1;
    reel_noise_fill(0, 0, lat, nl);
    reel_noise_fill(1, 0, ctx, nc);
    for (int64_t i = 0; i < batch; i++) ts[i] = 999.0f - 250.0f * (float)i;
  }
  int64_t os[5] = {ls[0], c->out_channels, ls[2], ls[3], ls[4]};
  reel_tensor tl, tc, to;
  if (reel_tensor_new(b, REEL_F32, 5, ls, &tl, &err) != REEL_OK ||
      reel_tensor_new(b, REEL_F32, 3, cs, &tc, &err) != REEL_OK ||
      reel_tensor_new(b, REEL_F32, 5, os, &to, &err) != REEL_OK ||
      reel_tensor_upload(&tl, lat, reel_tensor_nbytes(&tl), &err) != REEL_OK ||
      reel_tensor_upload(&tc, ctx, reel_tensor_nbytes(&tc), &err) != REEL_OK) {
    fprintf(stderr, "inputs: %s: %s\n", err.field, err.msg);
    return 1;
  }
  size_t need = 0;
  if (reel_wan_forward_arena_bytes(m, ls[0], ls[2], ls[3], ls[4], cs[1], &need, &err) != REEL_OK) {
    fprintf(stderr, "sizes: %s: %s\n", err.field, err.msg);
    return 1;
  }
  /* --prepared: the text side once (reel_wan_prepare_text, not timed), then forwards from it, as the loop runs. */
  size_t text_need = 0;
  if (prepared && reel_wan_text_arena_bytes(m, cs[0], cs[1], &text_need, &err) != REEL_OK) {
    fprintf(stderr, "sizes: %s: %s\n", err.field, err.msg);
    return 1;
  }
  reel_tensor_arena *arena = reel_tensor_arena_new(b, need + text_need, &err);
  reel_tensor text;
  if (arena && prepared && reel_wan_prepare_text(m, &tc, arena, &text, &err) != REEL_OK) {
    fprintf(stderr, "prepare_text: %s: %s\n", err.field, err.msg);
    return 1;
  }
  if (!arena) {
    fprintf(stderr, "arena: %s\n", err.msg);
    return 1;
  }

  double *times = calloc((size_t)runs + 1, sizeof *times);
  double warm = 0;
  for (int r = -1; r < runs; r++) {
    double s = now();
    reel_status fst = prepared ? reel_wan_forward_text(m, &tl, ts, &text, arena, &to, &err)
                               : reel_wan_forward(m, &tl, ts, &tc, arena, &to, &err);
    if (fst != REEL_OK) {
      fprintf(stderr, "forward: %s: %s\n", err.field, err.msg);
      return 1;
    }
    double dt = now() - s;
    if (r < 0)
      warm = dt;
    else
      times[r] = dt;
  }
  qsort(times, (size_t)runs, sizeof *times, cmp_double);
  double median = times[runs / 2];
  double max_err = -1;
  size_t no = (size_t)reel_tensor_numel(&to);
  if (want) {
    float *got = malloc(no * sizeof *got);
    reel_tensor_download(&to, got, no * sizeof *got, &err);
    max_err = 0;
    for (size_t i = 0; i < no; i++) {
      double d = fabs((double)got[i] - (double)want[i]);
      if (!(d <= max_err)) max_err = d;
    }
    free(got);
  }
  const int64_t T = (ls[2] / c->patch[0]) * (ls[3] / c->patch[1]) * (ls[4] / c->patch[2]);
  double flops = forward_flops(c, (double)ls[0], (double)T, (double)cs[1]);
  if (prepared) /* the text embedder and the cross-attention keys and values were done once, outside the timing */
    flops -= (double)ls[0] * (double)cs[1] * (double)c->dim *
             (2.0 * ((double)c->text_dim + (double)c->dim) + 4.0 * (double)c->dim * (double)c->layers);
  const char *attn_path = reel_backend_last_path(b);
  if (json) {
    printf(
        "{\"model\": \"%s\", \"params\": %lld, \"threads\": %d, \"batch\": %lld, \"latent\": [%lld, %lld, %lld, %lld], "
        "\"tokens\": %lld, \"text_len\": %lld, \"load_seconds\": %.4f, \"warmup_seconds\": %.4f, "
        "\"median_seconds\": %.4f, \"min_seconds\": %.4f, \"runs\": %d, \"gflop\": %.3f, \"gflops\": %.2f, "
        "\"peak_rss_mb\": %.1f, \"arena_mb\": %.1f, \"max_abs_error\": %.3g, \"last_path\": \"%s\", "
        "\"prepared\": %d}\n",
        model, (long long)reel_wan_transformer_params(m), reel_backend_threads(b), (long long)ls[0], (long long)ls[1],
        (long long)ls[2], (long long)ls[3], (long long)ls[4], (long long)T, (long long)cs[1], load_s, warm, median,
        times[0], runs, flops / 1e9, flops / 1e9 / median, peak_rss_mb(), (double)need / 1048576.0, max_err, attn_path,
        prepared);
  } else {
    printf("model %s: %.3f G parameters, dim %lld, %lld layers; %d threads\n", model,
           (double)reel_wan_transformer_params(m) / 1e9, (long long)c->dim, (long long)c->layers,
           reel_backend_threads(b));
    printf("input: batch %lld, latent %lldx%lldx%lldx%lld (%lld tokens), text %lld tokens%s\n", (long long)ls[0],
           (long long)ls[1], (long long)ls[2], (long long)ls[3], (long long)ls[4], (long long)T, (long long)cs[1],
           prepared ? " (prepared once)" : "");
    printf("load %.3f s; warm-up forward %.3f s; median of %d: %.3f s (min %.3f); %.1f GFLOP -> %.1f GFLOP/s\n", load_s,
           warm, runs, median, times[0], flops / 1e9, flops / 1e9 / median);
    printf("peak RSS %.0f MB; arena %.1f MB; op scratch %.1f MB; last path %s\n", peak_rss_mb(),
           (double)need / 1048576.0, (double)reel_backend_scratch_bytes(b) / 1048576.0, attn_path);
    if (want) printf("max abs error vs reference output: %.3g\n", max_err);
  }
  free(times);
  reel_tensor_arena_destroy(&arena);
  reel_tensor_free(&tl);
  reel_tensor_free(&tc);
  reel_tensor_free(&to);
  reel_wan_transformer_destroy(&m);
  reel_backend_destroy(&b);
  reel_safetensors_close(&ref);
  free(lat);
  free(ctx);
  free(ts);
  free(want);
  return 0;
}
