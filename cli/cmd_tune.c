/* SPDX-License-Identifier: Apache-2.0 */
/*
 * `reel tune [job options] [--budget-seconds S] [--json] [PROMPT]`: a small
 * configuration search for one job on this machine. Each candidate is measured
 * with the bench machinery (cli/bench.h: the model loaded once per thread count,
 * --warmup untimed runs, --runs timed runs, the median end-to-end latency), with
 * a fixed prompt and seed so that every candidate computes the same clip.
 *
 * The search is coordinate-wise, so it stays small: at all usable CPUs, the
 * default configuration first (the reference every ratio is against), then each
 * other GEMM path this machine and build have, then the other activation dtype
 * (where the model and backend take it) with the best path so far; then fewer
 * threads (halving down to 1) with the best of those. A candidate whose
 * estimated time (its runs at the last measured latency, plus a model load when
 * the thread count changes) would pass the budget is skipped and listed as such;
 * the reference is always measured. A GEMM path that is the very kernel the
 * reference ran ("auto" picks it) is listed as "same" rather than measured again.
 * The best is the fastest measured candidate, where a later candidate must beat
 * the best so far by more than 2% (noise) to replace it. builtin:testsrc has no
 * compute backend: only the encoder thread count is searched.
 *
 * Exit status: 0 done, 2 bad usage (a message names the flag), 1 the reference
 * run failed, 130 interrupted.
 */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"
#include "cli.h"
#include "jobflags.h"
#include "reel/alloc.h"
#include "reel/clock.h"
#ifdef REEL_HAVE_ENCODER
#include "reel/encoder.h"
#endif

#define MAX_CANDIDATES 32

static const char *verb = "tune";
static volatile sig_atomic_t interrupted;

static void on_signal(int sig) {
  (void)sig;
  interrupted = 1;
}

enum { OPT_JSON = REEL_JF_END, OPT_BUDGET, OPT_RUNS, OPT_WARMUP };

static const struct option tune_options[] = {{"output", required_argument, NULL, 'o'},
                                             {"verbose", no_argument, NULL, 'v'},
                                             {"help", no_argument, NULL, 'h'},
                                             {"json", no_argument, NULL, OPT_JSON},
                                             {"budget-seconds", required_argument, NULL, OPT_BUDGET},
                                             {"runs", required_argument, NULL, OPT_RUNS},
                                             {"warmup", required_argument, NULL, OPT_WARMUP},
                                             {NULL, 0, NULL, 0}};

static void tune_usage(FILE *f) {
  fprintf(f,
          "usage: reel tune [options] [PROMPT]\n"
          "\n"
          "Searches thread count, CPU GEMM path and activation dtype for one job on this machine,\n"
          "within a time budget, and prints the candidates side by side and the best configuration\n"
          "as flags to reuse. Without PROMPT a fixed prompt is used; without --seed, seed %u.\n"
          "\n"
          "options:\n"
          "  --budget-seconds S  stop starting candidates that would end after S seconds, 1..86400\n"
          "                      (default 120; the reference configuration is always measured)\n"
          "  --runs N            timed runs per candidate, 1..100 (median; default 3)\n"
          "  --warmup N          untimed runs per candidate, 0..10 (default 1)\n"
          "  -o, --output PATH   where the clips go (overwritten); default a temporary directory\n"
          "  --json              one JSON object on stdout (fields: docs/bench.md)\n"
          "  -v, --verbose       more log output\n"
          "  -h, --help          this help\n"
          "\n",
          BENCH_DEFAULT_SEED);
  reel_jobflags_usage(f);
}

typedef enum { C_MEASURED, C_UNAVAILABLE, C_SAME, C_SKIPPED, C_FAILED } cand_status;
static const char *const status_names[] = {"measured", "unavailable", "same", "skipped", "failed"};

/* A candidate replaces the best so far only when it is faster by more than this share (noise on shared machines). */
#define TUNE_MARGIN 0.02

typedef struct candidate {
  int threads;
  char matmul[16], activations[8];
  cand_status status;
  char reason[640];
  bench_stats latency;
  double step_p50;
  double ratio; /* reference p50 / this p50: > 1 is faster */
} candidate;

typedef struct tuner {
  const reel_jobspec *spec;
  const reel_logger *log;
  const char *url;
  int runs, warmup;
  double budget;
  int64_t t0;
  candidate c[MAX_CANDIDATES];
  int n;
  double last_p50;     /* latency of the last measured candidate */
  reel_error last_err; /* why the last failed candidate failed */
  reel_status last_st;
  char ref_path[48]; /* the GEMM kernel the reference configuration ran */
} tuner;

static double elapsed(const tuner *t) { return (double)(reel_now_ns() - t->t0) / 1e9; }

static candidate *add(tuner *t, int threads, const char *matmul, const char *act) {
  if (t->n == MAX_CANDIDATES) return NULL;
  candidate *c = &t->c[t->n++];
  memset(c, 0, sizeof *c);
  c->threads = threads;
  snprintf(c->matmul, sizeof c->matmul, "%s", matmul);
  snprintf(c->activations, sizeof c->activations, "%s", act);
  return c;
}

/* Nonzero (and c marked skipped) when running c would pass the budget; extra = seconds to load first. */
static int over_budget(tuner *t, candidate *c, double extra, double scale) {
  const double est = extra + (t->warmup + t->runs) * t->last_p50 * scale;
  if (elapsed(t) + est <= t->budget) return 0;
  c->status = C_SKIPPED;
  snprintf(c->reason, sizeof c->reason, "budget: about %.1f s needed, %.1f s left", est,
           t->budget - elapsed(t) > 0 ? t->budget - elapsed(t) : 0.0);
  return 1;
}

/* Measures c on the open job (already configured). REEL_ECANCELED passes through. */
static reel_status measure(tuner *t, bench_job *j, candidate *c) {
  bench_summary s;
  reel_error err;
  reel_error_clear(&err);
  reel_status st = bench_job_measure(j, t->url, t->warmup, t->runs, &s, &err);
  if (st != REEL_OK) {
    c->status = C_FAILED;
    snprintf(c->reason, sizeof c->reason, "%s: %s", err.field, err.msg);
    t->last_err = err;
    t->last_st = st;
    return st;
  }
  c->status = C_MEASURED;
  c->latency = s.total;
  c->step_p50 = s.step.p50;
  t->last_p50 = s.total.p50;
  if (!c->reason[0] && s.paths.matmul[0]) snprintf(c->reason, sizeof c->reason, "ran %s", s.paths.matmul);
  bench_summary_fini(&s);
  return REEL_OK;
}

/* Configures and measures one candidate on an open job. Returns REEL_ECANCELED on interrupt, else REEL_OK. */
static reel_status try_config(tuner *t, bench_job *j, int threads, const char *matmul, const char *act,
                              const char *set_matmul, const char *set_act) {
  candidate *c = add(t, threads, matmul, act);
  if (!c) return REEL_OK;
  reel_error err;
  reel_error_clear(&err);
  reel_status st = bench_job_configure(j, set_matmul, set_act, &err);
  if (st != REEL_OK) {
    c->status = C_UNAVAILABLE;
    snprintf(c->reason, sizeof c->reason, "%s", err.msg);
    return REEL_OK;
  }
  if (set_matmul && t->ref_path[0]) {
    /* An explicit path that is the kernel "auto" already ran measures the same code twice: noise, not a choice. */
    bench_paths p;
    memset(&p, 0, sizeof p);
    bench_job_probe(j, &p);
    if (!strcmp(p.matmul, t->ref_path) && !set_act) {
      c->status = C_SAME;
      snprintf(c->reason, sizeof c->reason, "the reference's kernel (%s)", p.matmul);
      return REEL_OK;
    }
  }
  if (over_budget(t, c, 0, 1.0)) return REEL_OK;
  st = measure(t, j, c);
  return st == REEL_ECANCELED ? st : REEL_OK;
}

/*
 * The best measured candidate, in the order measured (the reference first): a later one
 * wins only when it is more than TUNE_MARGIN faster, so that noise does not move the
 * choice away from the defaults. Every measured p50 is >= (1 - TUNE_MARGIN) x the best's.
 */
static const candidate *best_of(const tuner *t) {
  const candidate *b = NULL;
  for (int i = 0; i < t->n; i++)
    if (t->c[i].status == C_MEASURED && (!b || t->c[i].latency.p50 < (1.0 - TUNE_MARGIN) * b->latency.p50))
      b = &t->c[i];
  return b;
}

/* Flags that replay cand with `reel bench generate` (and the job's own flags). */
static void replay_flags(const candidate *b, int model, char *buf, size_t size) {
  if (model)
    snprintf(buf, size, "--threads %d --matmul %s --activations %s", b->threads, b->matmul, b->activations);
  else
    snprintf(buf, size, "--threads %d", b->threads);
}

static void worker_flags(const candidate *b, const char *backend, int model, char *buf, size_t size) {
  if (model)
    snprintf(buf, size, "--backend %s --threads %d", strncmp(backend, "cuda", 4) ? "cpu" : "cuda", b->threads);
  else
    snprintf(buf, size, "--threads %d", b->threads);
}

int cmd_tune(int argc, char **argv) {
  struct option table[64];
  if (!reel_jobflags_table(tune_options, table, sizeof table / sizeof table[0])) return 1;
  reel_jobspec spec;
  reel_jobspec_init(&spec);
  reel_error err;
  reel_error_clear(&err);
  const char *output = NULL;
  int json = 0, verbose = 0, rc = 1;
  long runs = 3, warmup = 1;
  double budget = 120;
  bench_job *job = NULL;
  char tmpdir[512] = "", url[600];
  tuner t;
  memset(&t, 0, sizeof t);

  optind = 1;
  opterr = 0;
  for (;;) {
    int c = getopt_long(argc, argv, ":o:vh", table, NULL);
    if (c == -1) break;
    int applied = reel_jobflags_apply(c, optarg, &spec, &err);
    if (applied < 0) {
      rc = bench_usage_error(verb, err.field, err.msg);
      goto out;
    }
    if (applied > 0) continue;
    switch (c) {
      case 'o':
        if (!optarg[0]) {
          rc = bench_usage_error(verb, "-o", "must be a file path or URL, got an empty string");
          goto out;
        }
        output = optarg;
        break;
      case 'v':
        verbose++;
        break;
      case 'h':
        tune_usage(stdout);
        rc = 0;
        goto out;
      case OPT_JSON:
        json = 1;
        break;
      case OPT_BUDGET:
        if (bench_parse_double(verb, "--budget-seconds", optarg, 1, 86400, &budget)) goto usage;
        break;
      case OPT_RUNS:
        if (bench_parse_int(verb, "--runs", optarg, 1, 100, &runs)) goto usage;
        break;
      case OPT_WARMUP:
        if (bench_parse_int(verb, "--warmup", optarg, 0, 10, &warmup)) goto usage;
        break;
      case ':': {
        char msg[160];
        snprintf(msg, sizeof msg, "option '%.60s' needs a value", argv[optind - 1]);
        rc = bench_usage_error(verb, NULL, msg);
        goto out;
      }
      default: {
        char msg[160];
        snprintf(msg, sizeof msg, "unknown option '%.60s'", argv[optind - 1]);
        rc = bench_usage_error(verb, NULL, msg);
        goto out;
      }
    }
  }
  spec.prompt = optind < argc ? NULL : reel_strdup(BENCH_DEFAULT_PROMPT);
  if (optind < argc) {
    size_t len = 1;
    for (int i = optind; i < argc; i++) len += strlen(argv[i]) + 1;
    spec.prompt = reel_malloc(len);
    if (spec.prompt) {
      spec.prompt[0] = '\0';
      for (int i = optind; i < argc; i++) {
        if (i > optind) strcat(spec.prompt, " ");
        strcat(spec.prompt, argv[i]);
      }
    }
  }
  if (!spec.prompt) {
    fprintf(stderr, "reel %s: out of memory\n", verb);
    goto out;
  }
  if (!spec.seed_set) {
    spec.seed = BENCH_DEFAULT_SEED;
    spec.seed_set = 1;
  }
  if (reel_jobflags_validate(&spec, &err) != REEL_OK) {
    rc = bench_usage_error(verb, err.field, err.msg);
    goto out;
  }

  reel_logger lg;
  reel_logger_init(&lg, verbose >= 2 ? REEL_LOG_DEBUG : verbose ? REEL_LOG_INFO : REEL_LOG_WARN, REEL_LOG_TEXT, 2);
#ifdef REEL_HAVE_ENCODER
  reel_ffmpeg_route_logs();
  setenv("SVT_LOG", verbose >= 2 ? "3" : "1", 0);
#endif
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);

  bench_machine mc;
  bench_machine_get(&mc);
  const int cores = mc.cpus_allowed > 0 ? mc.cpus_allowed : 1;
  t.spec = &spec;
  t.log = &lg;
  t.runs = (int)runs;
  t.warmup = (int)warmup;
  t.budget = budget;
  t.t0 = reel_now_ns();

  /* Stage 1: all usable CPUs, one model load. */
  reel_status st = bench_job_open(&spec, cores, &lg, &interrupted, &job, &err);
  if (st != REEL_OK) {
    rc = bench_report_failure(verb, st, &err);
    goto out;
  }
  if (!output) {
    if (bench_mkdtemp(tmpdir, sizeof tmpdir, "reel-tune")) {
      fprintf(stderr, "reel %s: cannot create a temporary directory\n", verb);
      goto out;
    }
    snprintf(url, sizeof url, "%s/clip%s", tmpdir, bench_extension(&spec));
  } else {
    snprintf(url, sizeof url, "%s", output);
  }
  t.url = url;
  const int model = bench_job_is_model(job);
  char backend[32];
  snprintf(backend, sizeof backend, "%s", bench_job_backend_name(job));
  const double load_s = bench_job_load_seconds(job);
  const char *act0 = bench_job_activations(job);
  char default_act[8];
  snprintf(default_act, sizeof default_act, "%s", act0);

  if (!json && isatty(2)) fprintf(stderr, "reel %s: measuring (budget %.0f s)...\n", verb, budget);
  candidate *ref = add(&t, cores, model ? "auto" : "-", default_act);
  st = measure(&t, job, ref);
  if (st == REEL_ECANCELED && interrupted) goto interrupted;
  if (st != REEL_OK) {
    /* The model's own rules (sizes, frame counts) are checked once it is loaded: the flag's fault then. */
    rc = bench_report_failure(verb, t.last_st, &t.last_err);
    goto out;
  }
  snprintf(ref->reason, sizeof ref->reason, "reference");
  {
    bench_paths p;
    memset(&p, 0, sizeof p);
    bench_job_probe(job, &p);
    snprintf(t.ref_path, sizeof t.ref_path, "%s", p.matmul);
  }
  const candidate *bestc = ref;
  if (model) {
    static const char *const paths[] = {"avx512", "avx2", "openblas", "portable"};
    const int cuda = !strncmp(backend, "cuda", 4);
    for (size_t i = 0; !cuda && i < sizeof paths / sizeof paths[0]; i++) {
      if ((st = try_config(&t, job, cores, paths[i], default_act, paths[i], NULL)) == REEL_ECANCELED) goto interrupted;
    }
    bestc = best_of(&t);
    char best_path[16];
    snprintf(best_path, sizeof best_path, "%s", bestc->matmul);
    const char *other = !strcmp(default_act, "bf16") ? "f32" : "bf16";
    if ((st = try_config(&t, job, cores, best_path, other, best_path, other)) == REEL_ECANCELED) goto interrupted;
    bestc = best_of(&t);
  }
  bench_job_destroy(&job);

  /* Stage 2: fewer threads, halving, with the best settings so far (a model load each). */
  char bm[16], ba[8];
  snprintf(bm, sizeof bm, "%s", bestc->matmul);
  snprintf(ba, sizeof ba, "%s", bestc->activations);
  int fewer = 0; /* the largest power of two below cores */
  if (cores > 1)
    for (fewer = 1; fewer * 2 < cores;) fewer *= 2;
  for (int th = fewer; th >= 1; th /= 2) {
    candidate *c = add(&t, th, bm, ba);
    if (!c) break;
    if (over_budget(&t, c, load_s, (double)cores / th)) continue;
    reel_error_clear(&err);
    st = bench_job_open(&spec, th, &lg, &interrupted, &job, &err);
    if (st == REEL_OK && model) st = bench_job_configure(job, bm, ba, &err);
    if (st != REEL_OK) {
      c->status = C_FAILED;
      snprintf(c->reason, sizeof c->reason, "%s: %s", err.field, err.msg);
      bench_job_destroy(&job);
      continue;
    }
    st = measure(&t, job, c);
    bench_job_destroy(&job);
    if (st == REEL_ECANCELED && interrupted) goto interrupted;
  }
  for (int i = 0; i < t.n; i++)
    if (t.c[i].status == C_MEASURED) t.c[i].ratio = t.c[i].latency.p50 > 0 ? ref->latency.p50 / t.c[i].latency.p50 : 0;
  bestc = best_of(&t);

  char replay[160], wflags[96];
  replay_flags(bestc, model, replay, sizeof replay);
  worker_flags(bestc, backend, model, wflags, sizeof wflags);
  const int worker_can = !model || (!strcmp(bestc->matmul, "auto") && !strcmp(bestc->activations, default_act));
  if (json) {
    json_t *o = json_object(), *arr = json_array();
    if (!o || !arr) {
      json_decref(o);
      json_decref(arr);
      fprintf(stderr, "reel %s: out of memory\n", verb);
      goto out;
    }
    json_object_set_new(o, "bench", json_string("tune"));
    json_object_set_new(o, "reel_version", json_string(REEL_VERSION_STRING));
    json_object_set_new(o, "machine", bench_machine_json(&mc));
    json_object_set_new(o, "model", json_string(spec.model ? spec.model : reel_default_model()));
    json_object_set_new(o, "backend", json_string(backend));
    if (spec.seed <= (uint64_t)INT64_MAX) json_object_set_new(o, "seed", json_integer((json_int_t)spec.seed));
    json_object_set_new(o, "budget_seconds", json_real(budget));
    json_object_set_new(o, "elapsed_seconds", json_real(elapsed(&t)));
    json_object_set_new(o, "runs", json_integer(t.runs));
    json_object_set_new(o, "warmup", json_integer(t.warmup));
    for (int i = 0; i < t.n; i++) {
      const candidate *c = &t.c[i];
      json_t *e = json_pack("{s:i, s:s, s:s, s:s, s:s}", "threads", c->threads, "matmul", c->matmul, "activations",
                            c->activations, "status", status_names[c->status], "note", c->reason);
      if (e && c->status == C_MEASURED) {
        json_object_set_new(e, "latency", bench_stats_json(&c->latency));
        json_object_set_new(e, "step_p50", json_real(c->step_p50));
        json_object_set_new(e, "speedup", json_real(c->ratio));
      }
      json_array_append_new(arr, e);
    }
    json_object_set_new(o, "candidates", arr);
    json_t *b = json_pack("{s:i, s:i, s:s, s:s, s:f, s:f, s:s, s:s}", "index", (int)(bestc - t.c), "threads",
                          bestc->threads, "matmul", bestc->matmul, "activations", bestc->activations, "latency_p50",
                          bestc->latency.p50, "speedup", bestc->ratio, "bench_flags", replay, "worker_flags", wflags);
    if (b) json_object_set_new(b, "worker_flags_complete", json_boolean(worker_can));
    json_object_set_new(o, "best", b);
    char *text = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(15));
    json_decref(o);
    if (!text) {
      fprintf(stderr, "reel %s: out of memory\n", verb);
      goto out;
    }
    printf("%s\n", text);
    free(text);
  } else {
    printf("reel tune (reel %s)\n", REEL_VERSION_STRING);
    bench_machine_print(stdout, &mc);
    printf("job:      model=%s backend=%s seed %llu; %d timed runs per candidate (median) after %d warm-up\n",
           spec.model ? spec.model : reel_default_model(), backend, (unsigned long long)spec.seed, t.runs, t.warmup);
    printf("budget:   %.0f s, used %.1f s\n", budget, elapsed(&t));
    printf("  %2s %7s %-9s %-6s %10s %10s %10s %8s  %s\n", "#", "threads", "matmul", "act", "p50 (s)", "p95 (s)",
           "step p50", "speedup", "status");
    for (int i = 0; i < t.n; i++) {
      const candidate *c = &t.c[i];
      if (c->status == C_MEASURED)
        printf("  %2d %7d %-9s %-6s %10.4f %10.4f %10.4f %7.2fx  %s%s%s\n", i + 1, c->threads, c->matmul,
               c->activations, c->latency.p50, c->latency.p95, c->step_p50, c->ratio, status_names[c->status],
               c->reason[0] ? ": " : "", c->reason);
      else
        printf("  %2d %7d %-9s %-6s %10s %10s %10s %8s  %s: %s\n", i + 1, c->threads, c->matmul, c->activations, "-",
               "-", "-", "-", status_names[c->status], c->reason);
    }
    printf("best:     #%d threads=%d matmul=%s activations=%s: p50 %.4f s (%.2fx the reference)\n",
           (int)(bestc - t.c) + 1, bestc->threads, bestc->matmul, bestc->activations, bestc->latency.p50, bestc->ratio);
    printf("reuse:    reel bench generate <job flags> %s\n", replay);
    printf("          reel worker <worker flags> %s%s\n", wflags,
           worker_can ? "" : "   (reel worker has no GEMM path / activation flags: it runs auto / the default)");
  }
  rc = 0;
  goto out;
interrupted:
  fprintf(stderr, "reel %s: interrupted\n", verb);
  rc = 130;
  goto out;
usage:
  rc = 2;
out:
  bench_job_destroy(&job);
  if (tmpdir[0]) bench_rmtree(tmpdir);
  reel_jobspec_fini(&spec);
  return rc;
}
