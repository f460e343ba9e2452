/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Benchmark (not a test) of issue 5's model code: Wan VAE decode and UMT5 encode on the
 * CPU backend, for tools/bench_runtime2.py, which runs diffusers/transformers on the same
 * folders side by side. Prints one line of key=value results per run.
 *
 *   reel_bench_wan vae  DIR --latent HxW --frames N [--threads T] [--reps R]
 *       decodes N video frames (1 + 4k) from random latents, streaming frames out;
 *       reports seconds per video frame, the arena bytes and the process's peak RSS
 *   reel_bench_wan umt5 DIR --tokens N [--threads T] [--reps R]
 *       encodes N random token ids; reports seconds per forward
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "reel/backend.h"
#include "reel/umt5.h"
#include "reel/wan_vae.h"

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

static float frand(uint32_t *state) {
  *state = *state * 1664525u + 1013904223u;
  return (float)((*state >> 8) & 0xFFFFFF) / (float)0x1000000 * 2.0f - 1.0f;
}

static reel_status discard(void *user, const reel_tensor *frames, int64_t first, reel_error *err) {
  (void)first;
  (void)err;
  *(int64_t *)user += frames->shape[1];
  return REEL_OK;
}

static int fail(const char *what, const reel_error *err) {
  fprintf(stderr, "%s: %s: %s\n", what, err->field, err->msg);
  return 1;
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: %s vae DIR --latent HxW --frames N | umt5 DIR --tokens N [--threads T] [--reps R]\n",
            argv[0]);
    return 2;
  }
  const char *mode = argv[1], *dir = argv[2];
  int threads = 2, reps = 1;
  long lh = 8, lw = 8, frames = 17, tokens = 128;
  for (int i = 3; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "--threads"))
      threads = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--reps"))
      reps = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--frames"))
      frames = atol(argv[i + 1]);
    else if (!strcmp(argv[i], "--tokens"))
      tokens = atol(argv[i + 1]);
    else if (!strcmp(argv[i], "--latent"))
      sscanf(argv[i + 1], "%ldx%ld", &lh, &lw);
  }
  if (reps < 1 || reps > 50) reps = 1;
  reel_error err = {0};
  reel_backend *b = reel_backend_new_cpu(threads, &err);
  if (!b) return fail("backend", &err);
  double times[50];
  if (!strcmp(mode, "vae")) {
    reel_wan_vae *v = NULL;
    if (reel_wan_vae_load(b, dir, &v, &err) != REEL_OK) return fail("load", &err);
    int64_t z = reel_wan_vae_get_config(v)->z_dim, tf = reel_wan_vae_temporal_factor(v);
    int64_t F = 1 + (frames - 1) / tf;
    size_t need = 0;
    if (reel_wan_vae_decode_arena_bytes(v, lh, lw, &need, &err) != REEL_OK) return fail("plan", &err);
    reel_tensor_arena *arena = reel_tensor_arena_new(b, need, &err);
    int64_t s[4] = {z, F, lh, lw};
    reel_tensor lat;
    if (!arena || reel_tensor_new(b, REEL_F32, 4, s, &lat, &err) != REEL_OK) return fail("alloc", &err);
    size_t n = (size_t)(z * F * lh * lw);
    float *host = malloc(n * sizeof *host);
    uint32_t seed = 12345u;
    for (size_t i = 0; i < n; i++) host[i] = frand(&seed);
    reel_tensor_upload(&lat, host, n * sizeof *host, &err);
    free(host);
    int64_t got = 0;
    for (int r = 0; r < reps; r++) {
      got = 0;
      double t0 = now();
      if (reel_wan_vae_decode_stream(v, &lat, arena, discard, &got, &err) != REEL_OK) return fail("decode", &err);
      times[r] = now() - t0;
    }
    qsort(times, (size_t)reps, sizeof times[0], cmp_double);
    double med = times[reps / 2];
    printf(
        "impl=reel op=vae_decode latent=%ldx%ld video_frames=%lld threads=%d seconds=%.3f per_frame=%.4f "
        "arena_mb=%.1f peak_rss_mb=%.1f conv_path=%s\n",
        lh, lw, (long long)got, threads, med, med / (double)got, (double)need / 1048576.0, peak_rss_mb(),
        reel_backend_last_path(b));
    reel_tensor_free(&lat);
    reel_tensor_arena_destroy(&arena);
    reel_wan_vae_destroy(&v);
  } else if (!strcmp(mode, "umt5")) {
    reel_umt5 *m = NULL;
    if (reel_umt5_load(b, dir, &m, &err) != REEL_OK) return fail("load", &err);
    const reel_umt5_config *c = reel_umt5_get_config(m);
    reel_tensor_arena *arena = reel_tensor_arena_new(b, reel_umt5_arena_bytes(m, (size_t)tokens) + (1 << 20), &err);
    int64_t s[2] = {tokens, c->d_model};
    reel_tensor out;
    if (!arena || reel_tensor_new(b, REEL_F32, 2, s, &out, &err) != REEL_OK) return fail("alloc", &err);
    int32_t *ids = malloc((size_t)tokens * sizeof *ids);
    for (long i = 0; i < tokens; i++) ids[i] = (int32_t)((i * 7919) % c->vocab_size);
    for (int r = 0; r < reps; r++) {
      double t0 = now();
      if (reel_umt5_forward(m, ids, (size_t)tokens, arena, &out, &err) != REEL_OK) return fail("forward", &err);
      times[r] = now() - t0;
    }
    qsort(times, (size_t)reps, sizeof times[0], cmp_double);
    printf("impl=reel op=umt5_forward tokens=%ld threads=%d seconds=%.4f peak_rss_mb=%.1f matmul_path=%s\n", tokens,
           threads, times[reps / 2], peak_rss_mb(), reel_backend_last_path(b));
    free(ids);
    reel_tensor_free(&out);
    reel_tensor_arena_destroy(&arena);
    reel_umt5_destroy(&m);
  } else {
    fprintf(stderr, "unknown mode %s\n", mode);
    return 2;
  }
  reel_backend_destroy(&b);
  return 0;
}
