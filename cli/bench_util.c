/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Small pieces shared by `reel bench` and `reel tune`: summary statistics,
 * the machine description printed next to every figure, option parsing with
 * errors that name the flag, and temporary directories for discarded output.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <ftw.h>
#include <math.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"
#include "jobflags.h"
#include "reel/alloc.h"
#include "reel/clock.h"

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

/* The q-quantile of sorted v[0..n), linear between the closest ranks. */
static double quantile(const double *v, int n, double q) {
  double pos = q * (double)(n - 1);
  int i = (int)pos;
  if (i >= n - 1) return v[n - 1];
  double frac = pos - (double)i;
  return v[i] + (v[i + 1] - v[i]) * frac;
}

int bench_stats_of(const double *v, int n, bench_stats *s) {
  memset(s, 0, sizeof *s);
  if (n <= 0) return 0;
  double *c = reel_malloc((size_t)n * sizeof *c);
  if (!c) return -1;
  memcpy(c, v, (size_t)n * sizeof *c);
  qsort(c, (size_t)n, sizeof *c, cmp_double);
  double sum = 0;
  for (int i = 0; i < n; i++) sum += c[i];
  s->n = n;
  s->min = c[0];
  s->max = c[n - 1];
  s->mean = sum / n;
  s->p50 = quantile(c, n, 0.50);
  s->p95 = quantile(c, n, 0.95);
  s->p99 = quantile(c, n, 0.99);
  reel_free(c);
  return 0;
}

json_t *bench_stats_json(const bench_stats *s) {
  return json_pack("{s:i, s:f, s:f, s:f, s:f, s:f, s:f}", "n", s->n, "p50", s->p50, "p95", s->p95, "p99", s->p99,
                   "mean", s->mean, "min", s->min, "max", s->max);
}

/* ---- machine --------------------------------------------------------------------------------- */

void bench_machine_get(bench_machine *m) {
  memset(m, 0, sizeof *m);
  snprintf(m->cpu, sizeof m->cpu, "unknown");
  FILE *f = fopen("/proc/cpuinfo", "r");
  char line[8192];
  int have_name = 0, have_flags = 0;
  while (f && fgets(line, sizeof line, f) && !(have_name && have_flags)) {
    char *colon = strchr(line, ':');
    if (!colon) continue;
    char *val = colon + 1;
    while (*val == ' ' || *val == '\t') val++;
    val[strcspn(val, "\n")] = '\0';
    if (!have_name && !strncmp(line, "model name", 10)) {
      snprintf(m->cpu, sizeof m->cpu, "%s", val);
      have_name = 1;
    } else if (!have_flags && !strncmp(line, "flags", 5)) {
      static const char *const wanted[] = {"avx2", "avx512f", "avx512_bf16", "amx_tile", "amx_bf16"};
      have_flags = 1;
      for (size_t i = 0; i < sizeof wanted / sizeof wanted[0]; i++) {
        /* Whole words only: "avx512f" must not match "avx512fp16". */
        size_t wl = strlen(wanted[i]);
        for (const char *p = strstr(val, wanted[i]); p; p = strstr(p + 1, wanted[i])) {
          if ((p == val || p[-1] == ' ') && (p[wl] == ' ' || p[wl] == '\0')) {
            size_t len = strlen(m->features);
            snprintf(m->features + len, sizeof m->features - len, "%s%s", len ? " " : "", wanted[i]);
            break;
          }
        }
      }
    }
  }
  if (f) fclose(f);
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  m->cores = n > 0 ? (int)n : 1;
  cpu_set_t set;
  CPU_ZERO(&set);
  m->cpus_allowed = sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : m->cores;
  long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
  if (pages > 0 && page > 0) m->memory_bytes = (uint64_t)pages * (uint64_t)page;
  reel_format_rfc3339(reel_wall_ms(), m->date, sizeof m->date);
}

json_t *bench_machine_json(const bench_machine *m) {
  return json_pack("{s:s, s:i, s:i, s:I, s:s, s:s}", "cpu", m->cpu, "cores", m->cores, "cpus_allowed", m->cpus_allowed,
                   "memory_bytes", (json_int_t)m->memory_bytes, "features", m->features, "date", m->date);
}

void bench_machine_print(FILE *f, const bench_machine *m) {
  fprintf(f, "machine:  %s (%d cores, %d usable%s%s), %.1f GiB, %s\n", m->cpu, m->cores, m->cpus_allowed,
          m->features[0] ? "; " : "", m->features, (double)m->memory_bytes / (1024.0 * 1024.0 * 1024.0), m->date);
}

/* ---- options --------------------------------------------------------------------------------- */

int bench_usage_error(const char *verb, const char *flag, const char *msg) {
  if (flag && flag[0])
    fprintf(stderr, "reel %s: %s: %s\n", verb, flag, msg);
  else
    fprintf(stderr, "reel %s: %s\n", verb, msg);
  fprintf(stderr, "Run 'reel %s --help' for usage.\n", verb);
  return 2;
}

int bench_parse_int(const char *verb, const char *flag, const char *arg, long lo, long hi, long *out) {
  char *end = NULL;
  long v = strtol(arg, &end, 10);
  if (!arg[0] || *end || v < lo || v > hi) {
    char msg[160];
    snprintf(msg, sizeof msg, "must be an integer in %ld..%ld, got '%.40s'", lo, hi, arg);
    bench_usage_error(verb, flag, msg);
    return 1;
  }
  *out = v;
  return 0;
}

int bench_parse_double(const char *verb, const char *flag, const char *arg, double lo, double hi, double *out) {
  char *end = NULL;
  double v = strtod(arg, &end);
  if (!arg[0] || *end || !isfinite(v) || v < lo || v > hi) {
    char msg[160];
    snprintf(msg, sizeof msg, "must be a number in %g..%g, got '%.40s'", lo, hi, arg);
    bench_usage_error(verb, flag, msg);
    return 1;
  }
  *out = v;
  return 0;
}

int bench_report_failure(const char *verb, reel_status st, reel_error *err) {
  int usage = 0;
  if (!strcmp(err->field, "url")) {
    snprintf(err->field, sizeof err->field, "-o");
    usage = st == REEL_EINVAL || st == REEL_ENOTFOUND || st == REEL_EUNSUPPORTED;
  } else if (!strcmp(err->field, "matmul") || !strcmp(err->field, "activations")) {
    snprintf(err->field, sizeof err->field, "%s", err->field[0] == 'm' ? "--matmul" : "--activations");
    usage = 1;
  } else if (reel_jobflags_rename_field(err)) {
    /* As reel generate: a job field's value this build, machine or model cannot take is the flag's fault. */
    usage = st == REEL_EINVAL || st == REEL_ERANGE || st == REEL_ENOTFOUND || st == REEL_EUNSUPPORTED;
  } else {
    usage = !strcmp(err->field, "job") && (st == REEL_EINVAL || st == REEL_ERANGE);
  }
  if (usage) return bench_usage_error(verb, err->field, err->msg);
  fprintf(stderr, "reel %s: %s%s%s (%s)\n", verb, err->field, err->field[0] ? ": " : "",
          err->msg[0] ? err->msg : reel_strerror(st), reel_status_name(st));
  return 1;
}

/* ---- temporary output -------------------------------------------------------------------------- */

int bench_mkdtemp(char *buf, size_t size, const char *prefix) {
  const char *tmp = getenv("TMPDIR");
  if (!tmp || !tmp[0]) tmp = "/tmp";
  if (snprintf(buf, size, "%s/%s-XXXXXX", tmp, prefix) >= (int)size) return -1;
  return mkdtemp(buf) ? 0 : -1;
}

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
  (void)sb;
  (void)flag;
  (void)ftw;
  remove(path);
  return 0;
}

void bench_rmtree(const char *dir) {
  if (dir && dir[0]) nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

const char *bench_extension(const reel_jobspec *spec) {
  switch (spec->container) {
    case REEL_CONTAINER_MKV:
      return ".mkv";
    case REEL_CONTAINER_WEBM:
      return ".webm";
    default:
      return ".mp4";
  }
}
