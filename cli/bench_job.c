/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A job measured many times in one process (cli/bench.h): the backend and
 * model are made once, each run goes through reel_generate() with the model
 * lent, and the progress callback timestamps every denoising step and reads
 * which code path each stage ended on.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "reel/alloc.h"
#include "reel/backend.h"
#include "reel/clock.h"
#include "reel/model.h"
#include "reel/opbench.h"
#include "reel/testsrc.h"

struct bench_job {
  const reel_jobspec *spec; /* borrowed */
  const reel_logger *log;   /* borrowed; may be NULL */
  volatile sig_atomic_t *stop;
  int threads; /* as asked (testsrc: encoder threads) */
  reel_backend *b;
  reel_model *m;
  double load_seconds;
  char matmul[16];
  /* The run in progress. */
  int64_t step_t0; /* when the previous step ended (or denoising started) */
  double *steps;   /* step durations of the timed runs so far */
  int nsteps, cap; /* used / allocated */
  int record;      /* this run is timed */
  int oom;         /* a step sample could not be stored */
  char path_text[48], path_denoise[48], path_decode[48];
};

static void copy_path(char *dst, size_t size, const reel_backend *b) {
  snprintf(dst, size, "%s", b ? reel_backend_last_path(b) : "");
}

static int on_progress(const reel_progress *p, void *user) {
  bench_job *j = user;
  const reel_backend *b = j->b;
  if (!strcmp(p->stage, "denoise")) {
    const int64_t now = reel_now_ns();
    if (p->steps_done == 0) {
      copy_path(j->path_text, sizeof j->path_text, b); /* the text encoder has just finished */
    } else if (j->record) {
      if (j->nsteps == j->cap) {
        int cap = j->cap ? 2 * j->cap : 64;
        double *n = reel_realloc(j->steps, (size_t)cap * sizeof *n);
        if (!n) {
          j->oom = 1;
          return 1;
        }
        j->steps = n;
        j->cap = cap;
      }
      j->steps[j->nsteps++] = (double)(now - j->step_t0) / 1e9;
    }
    if (p->steps_done > 0) copy_path(j->path_denoise, sizeof j->path_denoise, b);
    j->step_t0 = now;
  } else if (!strcmp(p->stage, "finish")) {
    copy_path(j->path_decode, sizeof j->path_decode, b); /* every frame has been decoded */
  }
  return j->stop && *j->stop ? 1 : 0;
}

static reel_status open_backend(const reel_jobspec *spec, int threads, reel_backend **out, reel_error *err) {
  *out = NULL;
  if (spec->backend == REEL_BACKEND_CUDA || (spec->backend == REEL_BACKEND_AUTO && reel_backend_cuda_built())) {
    reel_error e;
    reel_error_clear(&e);
    *out = reel_backend_new_cuda(0, &e);
    if (*out) return REEL_OK;
    if (spec->backend == REEL_BACKEND_CUDA)
      return reel_error_set(err, e.code ? e.code : REEL_ENODEVICE, "job.backend", "cuda: %s", e.msg);
  }
  *out = reel_backend_new_cpu(threads, err);
  if (!*out) {
    reel_error_prefix_field(err, "job.backend", '.');
    return err && err->code ? err->code : REEL_EBACKEND;
  }
  return REEL_OK;
}

reel_status bench_job_open(const reel_jobspec *spec, int threads, const reel_logger *log, volatile sig_atomic_t *stop,
                           bench_job **out, reel_error *err) {
  *out = NULL;
  reel_status st = reel_generate_check(spec, err);
  if (st != REEL_OK) return st;
  bench_job *j = reel_calloc(1, sizeof *j);
  if (!j) return reel_error_set(err, REEL_ENOMEM, "bench", "out of memory");
  j->spec = spec;
  j->log = log;
  j->stop = stop;
  j->threads = threads;
  const char *model = spec->model ? spec->model : reel_default_model();
  if (strcmp(model, REEL_TESTSRC_MODEL) != 0) {
    char dir[4096];
    if ((st = reel_model_resolve(model, dir, sizeof dir, err)) != REEL_OK) goto fail;
    const int64_t t0 = reel_now_ns();
    if ((st = open_backend(spec, threads, &j->b, err)) != REEL_OK) goto fail;
    if ((st = reel_model_open(j->b, dir, &j->m, err)) != REEL_OK) {
      reel_error_prefix_field(err, "model", ':');
      goto fail;
    }
    j->load_seconds = (double)(reel_now_ns() - t0) / 1e9;
    snprintf(j->matmul, sizeof j->matmul, "auto");
  } else {
    snprintf(j->matmul, sizeof j->matmul, "-");
  }
  *out = j;
  return REEL_OK;
fail:
  bench_job_destroy(&j);
  return st;
}

void bench_job_destroy(bench_job **jp) {
  if (!jp || !*jp) return;
  bench_job *j = *jp;
  reel_model_destroy(&j->m);
  reel_backend_destroy(&j->b);
  reel_free(j->steps);
  reel_free(j);
  *jp = NULL;
}

int bench_job_is_model(const bench_job *j) { return j->m != NULL; }
double bench_job_load_seconds(const bench_job *j) { return j->load_seconds; }
const char *bench_job_backend_name(const bench_job *j) { return j->b ? reel_backend_name(j->b) : "none"; }
int bench_job_threads(const bench_job *j) { return j->b ? reel_backend_threads(j->b) : j->threads; }
const char *bench_job_matmul(const bench_job *j) { return j->matmul; }

const char *bench_job_activations(const bench_job *j) {
  static const char *const names[] = {"f32", "bf16", "f16"};
  char buf[16];
  if (!j->m || reel_model_get_option(j->m, "activations", buf, sizeof buf, NULL) != REEL_OK) return "-";
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
    if (!strcmp(buf, names[i])) return names[i];
  return "-";
}

reel_status bench_job_configure(bench_job *j, const char *matmul, const char *activations, reel_error *err) {
  if ((matmul || activations) && !j->m)
    return reel_error_set(err, REEL_EINVAL, matmul ? "matmul" : "activations",
                          "%s has no compute backend or model settings", REEL_TESTSRC_MODEL);
  if (matmul) {
    reel_error e;
    reel_error_clear(&e);
    reel_status st = reel_backend_set_option(j->b, "matmul", matmul, &e);
    if (st == REEL_ENOTFOUND) {
      /* A backend without a GEMM choice (CUDA) runs "auto" by definition. */
      if (strcmp(matmul, "auto") != 0)
        return reel_error_set(err, REEL_EUNSUPPORTED, "matmul", "the %s backend has no GEMM path choice",
                              reel_backend_name(j->b));
    } else if (st != REEL_OK) {
      if (err) *err = e;
      return st;
    }
    snprintf(j->matmul, sizeof j->matmul, "%s", matmul);
  }
  if (activations) {
    reel_status st = reel_model_set_option(j->m, "activations", activations, err);
    if (st == REEL_ENOTFOUND)
      return reel_error_reset(err, REEL_EUNSUPPORTED, "activations", "the %s model has no activation dtype choice",
                              reel_model_get_family(j->m)->name);
    if (st != REEL_OK) return st;
  }
  return REEL_OK;
}

void bench_job_probe(bench_job *j, bench_paths *p) {
  if (!j->b) return;
  reel_opbench_result r;
  reel_error e;
  reel_error_clear(&e);
  if (reel_opbench_matmul(j->b, 64, 256, 256, REEL_F32, 1, &r, &e) == REEL_OK)
    snprintf(p->matmul, sizeof p->matmul, "%s", r.path);
  reel_dtype dt = !strcmp(bench_job_activations(j), "bf16") ? REEL_BF16 : REEL_F32;
  reel_error_clear(&e);
  if (reel_opbench_attention(j->b, 1, 64, 2, 64, dt, 1, &r, &e) == REEL_OK)
    snprintf(p->attention, sizeof p->attention, "%s", r.path);
}

enum { S_TEXT, S_DENOISE, S_DECODE, S_RENDER, S_ENCODE, S_COMMIT, S_TOTAL, S_COUNT };

reel_status bench_job_measure(bench_job *j, const char *url, int warmup, int runs, bench_summary *out,
                              reel_error *err) {
  memset(out, 0, sizeof *out);
  if (runs < 1) return reel_error_set(err, REEL_ERANGE, "runs", "must be >= 1, got %d", runs);
  if (warmup < 0) return reel_error_set(err, REEL_ERANGE, "warmup", "must be >= 0, got %d", warmup);
  out->runs = runs;
  out->warmup = warmup;
  double *v = reel_calloc((size_t)runs * S_COUNT, sizeof *v);
  out->total_samples = reel_calloc((size_t)runs, sizeof *out->total_samples);
  char first_sha[65] = "";
  reel_status st = REEL_OK;
  if (!v || !out->total_samples) {
    st = reel_error_set(err, REEL_ENOMEM, "bench", "out of memory for %d runs", runs);
    goto done;
  }
  j->nsteps = 0;
  out->identical = 1;
  reel_generate_options go;
  memset(&go, 0, sizeof go);
  go.log = j->log;
  go.progress = on_progress;
  go.progress_user = j;
  go.threads = j->threads;
  go.model = j->m;
  for (int i = 0; i < warmup + runs; i++) {
    const int k = i - warmup;
    j->record = k >= 0;
    j->path_text[0] = j->path_denoise[0] = j->path_decode[0] = '\0';
    reel_generate_result res;
    if ((st = reel_generate(j->spec, url, &go, &res, err)) != REEL_OK) {
      if (j->oom) st = reel_error_reset(err, REEL_ENOMEM, "bench", "out of memory for the step timings");
      goto done;
    }
    if (k < 0) continue;
    const double row[S_COUNT] = {res.seconds_text,   res.seconds_denoise, res.seconds_decode, res.seconds_render,
                                 res.seconds_encode, res.seconds_commit,  res.seconds_total};
    for (int s = 0; s < S_COUNT; s++) v[(size_t)s * runs + k] = row[s];
    out->total_samples[k] = res.seconds_total;
    out->wall_seconds += res.seconds_total;
    if (res.peak_rss_bytes > out->peak_rss_bytes) out->peak_rss_bytes = res.peak_rss_bytes;
    if (res.peak_scratch_bytes > out->peak_scratch_bytes) out->peak_scratch_bytes = res.peak_scratch_bytes;
    if (k == 0) memcpy(first_sha, res.sha256, sizeof first_sha);
    if (strcmp(first_sha, res.sha256) != 0) out->identical = 0;
    out->last = res;
  }
  bench_stats *dst[S_COUNT] = {&out->text,   &out->denoise, &out->decode, &out->render,
                               &out->encode, &out->commit,  &out->total};
  for (int s = 0; s < S_COUNT; s++)
    if (bench_stats_of(v + (size_t)s * runs, runs, dst[s])) st = REEL_ENOMEM;
  if (bench_stats_of(j->steps, j->nsteps, &out->step)) st = REEL_ENOMEM;
  if (st != REEL_OK) {
    reel_error_set(err, st, "bench", "out of memory");
    goto done;
  }
  out->clips_per_minute = out->wall_seconds > 0 ? 60.0 * runs / out->wall_seconds : 0.0;
  out->video_seconds = out->last.fps > 0 ? out->last.frames / out->last.fps : 0.0;
  snprintf(out->paths.text, sizeof out->paths.text, "%s", j->path_text);
  snprintf(out->paths.denoise, sizeof out->paths.denoise, "%s", j->path_denoise);
  snprintf(out->paths.decode, sizeof out->paths.decode, "%s", j->path_decode);
  bench_job_probe(j, &out->paths);
done:
  reel_free(v);
  if (st != REEL_OK) bench_summary_fini(out);
  return st;
}

void bench_summary_fini(bench_summary *s) {
  if (!s) return;
  reel_free(s->total_samples);
  s->total_samples = NULL;
}

double bench_cost_per_clip(const bench_summary *s, double per_hour) { return per_hour * s->total.p50 / 3600.0; }

double bench_cost_per_video_minute(const bench_summary *s, double per_hour) {
  return s->video_seconds > 0 ? bench_cost_per_clip(s, per_hour) / (s->video_seconds / 60.0) : 0.0;
}
