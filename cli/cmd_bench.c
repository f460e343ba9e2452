/* SPDX-License-Identifier: Apache-2.0 */
/*
 * `reel bench generate|ops|queue`: throughput, latency and cost, measured in
 * this process with the libraries the service runs (docs/bench.md).
 *
 *   generate  the same job N times (after warm-up) with the model loaded once:
 *             per-stage p50/p95, end-to-end latency, clips/minute, peak RSS,
 *             cost per clip and per minute of video, code paths, machine
 *   ops       matmul / attention / conv3d GFLOP/s per code path (cli/bench_ops.c)
 *   queue     durable accepts/s and dispatch latency through an in-process
 *             broker with instant workers (cli/bench_queue.c)
 *
 * Exit status: 0 done, 2 bad usage (a message names the flag), 1 a run failed,
 * 130 interrupted.
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
#ifdef REEL_HAVE_ENCODER
#include "reel/encoder.h"
#endif

static volatile sig_atomic_t interrupted;

static void on_signal(int sig) {
  (void)sig;
  interrupted = 1;
}

static void bench_usage(FILE *f) {
  fprintf(f,
          "usage: reel bench generate [job options] [--runs N] [--warmup N] [--cost-per-hour USD] [--json] [PROMPT]\n"
          "       reel bench ops [--backend cpu|cuda] [--threads N] [--json] [...]\n"
          "       reel bench queue [--jobs N] [--journal on|off] [--json] [...]\n"
          "\n"
          "Measures throughput, latency and cost on this machine. Run 'reel bench <what> --help'\n"
          "for the options of each. Benchmarks print the configuration, the code paths that\n"
          "ran and medians over several runs; compare ratios within one invocation.\n");
}

/* ---- bench generate ------------------------------------------------------------------------ */

enum { OPT_JSON = REEL_JF_END, OPT_THREADS, OPT_RUNS, OPT_WARMUP, OPT_COST, OPT_MATMUL, OPT_ACTIVATIONS };

static const struct option gen_options[] = {{"output", required_argument, NULL, 'o'},
                                            {"verbose", no_argument, NULL, 'v'},
                                            {"quiet", no_argument, NULL, 'q'},
                                            {"help", no_argument, NULL, 'h'},
                                            {"json", no_argument, NULL, OPT_JSON},
                                            {"threads", required_argument, NULL, OPT_THREADS},
                                            {"runs", required_argument, NULL, OPT_RUNS},
                                            {"warmup", required_argument, NULL, OPT_WARMUP},
                                            {"cost-per-hour", required_argument, NULL, OPT_COST},
                                            {"matmul", required_argument, NULL, OPT_MATMUL},
                                            {"activations", required_argument, NULL, OPT_ACTIVATIONS},
                                            {NULL, 0, NULL, 0}};

static void gen_usage(FILE *f) {
  fprintf(f,
          "usage: reel bench generate [options] [PROMPT]\n"
          "\n"
          "Runs one job --warmup + --runs times in this process, the model loaded once, and\n"
          "reports per-stage p50/p95 (text encode, denoise and per step, VAE decode, render,\n"
          "encode, commit), end-to-end latency, throughput, peak RSS, cost and the code paths\n"
          "that ran. Without PROMPT a fixed prompt is used; without --seed, seed %u.\n"
          "\n"
          "options:\n"
          "  --runs N            timed runs, 1..1000 (default 5)\n"
          "  --warmup N          untimed runs first, 0..100 (default 1)\n"
          "  --cost-per-hour USD machine price, 0..1e6, for the cost per clip and per minute of video\n"
          "  --threads N         compute threads (and encoder threads), 0..256 (0 = all usable CPUs)\n"
          "  --matmul PATH       CPU GEMM path: auto, avx512, avx2, openblas, portable (default auto)\n"
          "  --activations DT    the denoiser's activations, f32 or bf16, where the model and backend allow\n"
          "  -o, --output PATH   where each run's clip goes (overwritten); default a temporary\n"
          "                      directory that is removed afterwards\n"
          "  --json              one JSON object on stdout (fields: docs/bench.md)\n"
          "  -v, --verbose       more log output; -q, --quiet: errors only\n"
          "  -h, --help          this help\n"
          "\n",
          BENCH_DEFAULT_SEED);
  reel_jobflags_usage(f);
}

static char *join_args(int n, char **args) {
  size_t len = 1;
  for (int i = 0; i < n; i++) len += strlen(args[i]) + 1;
  char *s = reel_malloc(len);
  if (!s) return NULL;
  s[0] = '\0';
  for (int i = 0; i < n; i++) {
    if (i) strcat(s, " ");
    strcat(s, args[i]);
  }
  return s;
}

static json_t *stage_json(const bench_summary *s, int model) {
  json_t *o = json_object();
  if (!o) return NULL;
  if (model) {
    json_object_set_new(o, "text", bench_stats_json(&s->text));
    json_object_set_new(o, "denoise", bench_stats_json(&s->denoise));
    json_object_set_new(o, "step", bench_stats_json(&s->step));
    json_object_set_new(o, "decode", bench_stats_json(&s->decode));
  }
  json_object_set_new(o, "render", bench_stats_json(&s->render));
  json_object_set_new(o, "encode", bench_stats_json(&s->encode));
  json_object_set_new(o, "commit", bench_stats_json(&s->commit));
  return o;
}

static int print_gen_json(const bench_machine *mc, const bench_job *j, const bench_summary *s, double rate,
                          int have_rate, const char *output) {
  const reel_generate_result *r = &s->last;
  const int model = bench_job_is_model(j);
  json_t *o = json_object();
  if (!o) return -1;
  json_object_set_new(o, "bench", json_string("generate"));
  json_object_set_new(o, "reel_version", json_string(REEL_VERSION_STRING));
  json_object_set_new(o, "machine", bench_machine_json(mc));
  json_t *c = json_pack("{s:s, s:s, s:i, s:s, s:s, s:i, s:i, s:i, s:f, s:s, s:s, s:s}", "model", r->model, "backend",
                        bench_job_backend_name(j), "threads", bench_job_threads(j), "matmul", bench_job_matmul(j),
                        "activations", bench_job_activations(j), "width", r->width, "height", r->height, "frames",
                        r->frames, "fps", r->fps, "codec", r->codec, "container", r->container, "encoder", r->encoder);
  if (c) {
    if (r->seed <= (uint64_t)INT64_MAX) json_object_set_new(c, "seed", json_integer((json_int_t)r->seed));
    if (model) {
      json_object_set_new(c, "family", json_string(r->family));
      json_object_set_new(c, "steps", json_integer(r->steps));
      json_object_set_new(c, "guidance", json_real(r->guidance));
      json_object_set_new(c, "shift", json_real(r->shift));
      json_object_set_new(c, "sampler", json_string(r->sampler));
    }
  }
  json_object_set_new(o, "config", c);
  json_object_set_new(o, "runs", json_integer(s->runs));
  json_object_set_new(o, "warmup", json_integer(s->warmup));
  json_object_set_new(o, "load_seconds", json_real(bench_job_load_seconds(j)));
  json_object_set_new(o, "stages", stage_json(s, model));
  json_object_set_new(o, "latency", bench_stats_json(&s->total));
  json_t *samples = json_array();
  for (int i = 0; samples && i < s->runs; i++) json_array_append_new(samples, json_real(s->total_samples[i]));
  json_object_set_new(o, "latency_samples", samples);
  json_object_set_new(
      o, "throughput",
      json_pack("{s:f, s:f, s:f}", "clips_per_minute", s->clips_per_minute, "video_seconds_per_clip", s->video_seconds,
                "realtime_factor", s->total.p50 > 0 ? s->video_seconds / s->total.p50 : 0.0));
  json_t *mem = json_pack("{s:I}", "peak_rss_bytes", (json_int_t)s->peak_rss_bytes);
  if (mem && model) {
    json_object_set_new(mem, "model_bytes", json_integer((json_int_t)r->model_bytes));
    json_object_set_new(mem, "peak_scratch_bytes", json_integer((json_int_t)s->peak_scratch_bytes));
  }
  json_object_set_new(o, "memory", mem);
  if (have_rate)
    json_object_set_new(o, "cost",
                        json_pack("{s:f, s:f, s:f}", "per_hour_usd", rate, "per_clip_usd", bench_cost_per_clip(s, rate),
                                  "per_video_minute_usd", bench_cost_per_video_minute(s, rate)));
  else
    json_object_set_new(o, "cost", json_null());
  json_object_set_new(o, "paths",
                      json_pack("{s:s, s:s, s:s, s:s, s:s}", "matmul", s->paths.matmul, "attention", s->paths.attention,
                                "text", s->paths.text, "denoise", s->paths.denoise, "decode", s->paths.decode));
  json_object_set_new(o, "output",
                      json_pack("{s:s?, s:I, s:s, s:b}", "url", output ? r->url : NULL, "bytes", (json_int_t)r->bytes,
                                "sha256", r->sha256, "identical", s->identical));
  char *text = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(15));
  json_decref(o);
  if (!text) return -1;
  printf("%s\n", text);
  free(text);
  return 0;
}

static void stage_line(const char *name, const bench_stats *st, double total) {
  printf("  %-12s %10.4f %10.4f %10.4f %7.1f%%\n", name, st->p50, st->p95, st->mean,
         total > 0 ? 100.0 * st->p50 / total : 0.0);
}

static void print_gen_text(const bench_machine *mc, const bench_job *j, const bench_summary *s, double rate,
                           int have_rate, const char *output) {
  const reel_generate_result *r = &s->last;
  const int model = bench_job_is_model(j);
  printf("reel bench generate (reel %s)\n", REEL_VERSION_STRING);
  bench_machine_print(stdout, mc);
  char threads[16];
  if (bench_job_threads(j) > 0)
    snprintf(threads, sizeof threads, "%d", bench_job_threads(j));
  else
    snprintf(threads, sizeof threads, "auto");
  printf("config:   model=%s backend=%s threads=%s matmul=%s activations=%s\n", r->model, bench_job_backend_name(j),
         threads, bench_job_matmul(j), bench_job_activations(j));
  printf("job:      %dx%d, %d frames at %g fps (%.2f s of video), seed %llu, %s/%s in %s", r->width, r->height,
         r->frames, r->fps, s->video_seconds, (unsigned long long)r->seed, r->codec, r->encoder, r->container);
  if (model) printf(", %d steps %s cfg %g shift %g", r->steps, r->sampler, r->guidance, r->shift);
  printf("\n");
  printf("runs:     %d timed after %d warm-up", s->runs, s->warmup);
  if (model) printf("; model loaded once in %.3f s", bench_job_load_seconds(j));
  printf("; outputs %s\n", s->identical ? "identical (same SHA-256)" : "DIFFER between runs");
  printf("  %-12s %10s %10s %10s %8s\n", "stage", "p50 (s)", "p95 (s)", "mean (s)", "of p50");
  if (model) {
    stage_line("text", &s->text, s->total.p50);
    stage_line("denoise", &s->denoise, s->total.p50);
    stage_line("  per step", &s->step, s->total.p50);
    stage_line("decode", &s->decode, s->total.p50);
  } else {
    stage_line("render", &s->render, s->total.p50);
  }
  stage_line("encode", &s->encode, s->total.p50);
  stage_line("commit", &s->commit, s->total.p50);
  stage_line("total", &s->total, s->total.p50);
  printf("latency:  p50 %.4f s, p95 %.4f s, min %.4f s, max %.4f s\n", s->total.p50, s->total.p95, s->total.min,
         s->total.max);
  printf("throughput: %.2f clips/minute (one job at a time), %.3fx real time\n", s->clips_per_minute,
         s->total.p50 > 0 ? s->video_seconds / s->total.p50 : 0.0);
  printf("memory:   peak RSS %.1f MiB", (double)s->peak_rss_bytes / 1048576.0);
  if (model)
    printf(", model files %.1f MiB, peak scratch %.1f MiB", (double)r->model_bytes / 1048576.0,
           (double)s->peak_scratch_bytes / 1048576.0);
  printf("\n");
  if (have_rate)
    printf("cost:     $%.6f per clip, $%.6f per minute of video at $%g/hour\n", bench_cost_per_clip(s, rate),
           bench_cost_per_video_minute(s, rate), rate);
  if (model)
    printf("paths:    matmul %s, attention %s; stages ended on text %s, denoise %s, decode %s\n", s->paths.matmul,
           s->paths.attention, s->paths.text, s->paths.denoise, s->paths.decode);
  if (output) printf("output:   %s (%llu bytes)\n", r->url, (unsigned long long)r->bytes);
}

static int bench_generate(int argc, char **argv) {
  static const char *verb = "bench generate";
  struct option table[64];
  if (!reel_jobflags_table(gen_options, table, sizeof table / sizeof table[0])) return 1;
  reel_jobspec spec;
  reel_jobspec_init(&spec);
  reel_error err;
  reel_error_clear(&err);
  const char *output = NULL, *matmul = NULL, *activations = NULL;
  int json = 0, verbose = 0, quiet = 0, rc = 1, have_rate = 0;
  long threads = 0, runs = 5, warmup = 1;
  double rate = 0;
  bench_job *job = NULL;
  bench_summary sum;
  memset(&sum, 0, sizeof sum);
  char tmpdir[512] = "", url[600];

  optind = 1;
  opterr = 0;
  for (;;) {
    int c = getopt_long(argc, argv, ":o:vqh", table, NULL);
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
      case 'q':
        quiet = 1;
        break;
      case 'h':
        gen_usage(stdout);
        rc = 0;
        goto out;
      case OPT_JSON:
        json = 1;
        break;
      case OPT_THREADS:
        if (bench_parse_int(verb, "--threads", optarg, 0, 256, &threads)) goto usage;
        break;
      case OPT_RUNS:
        if (bench_parse_int(verb, "--runs", optarg, 1, 1000, &runs)) goto usage;
        break;
      case OPT_WARMUP:
        if (bench_parse_int(verb, "--warmup", optarg, 0, 100, &warmup)) goto usage;
        break;
      case OPT_COST:
        if (bench_parse_double(verb, "--cost-per-hour", optarg, 0, 1e6, &rate)) goto usage;
        have_rate = 1;
        break;
      case OPT_MATMUL:
        if (strcmp(optarg, "auto") && strcmp(optarg, "avx512") && strcmp(optarg, "avx2") &&
            strcmp(optarg, "openblas") && strcmp(optarg, "portable")) {
          rc = bench_usage_error(verb, "--matmul", "must be auto, avx512, avx2, openblas or portable");
          goto out;
        }
        matmul = optarg;
        break;
      case OPT_ACTIVATIONS:
        if (strcmp(optarg, "f32") && strcmp(optarg, "bf16")) {
          rc = bench_usage_error(verb, "--activations", "must be f32 or bf16");
          goto out;
        }
        activations = optarg;
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
  spec.prompt = optind < argc ? join_args(argc - optind, argv + optind) : reel_strdup(BENCH_DEFAULT_PROMPT);
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
  reel_logger_init(&lg,
                   quiet          ? REEL_LOG_ERROR
                   : verbose >= 2 ? REEL_LOG_DEBUG
                   : verbose      ? REEL_LOG_INFO
                                  : REEL_LOG_WARN,
                   REEL_LOG_TEXT, 2);
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

  reel_error_clear(&err);
  reel_status st = bench_job_open(&spec, (int)threads, &lg, &interrupted, &job, &err);
  if (st == REEL_OK && (matmul || activations)) st = bench_job_configure(job, matmul, activations, &err);
  if (st != REEL_OK) {
    rc = bench_report_failure(verb, st, &err);
    goto out;
  }
  if (!output) {
    if (bench_mkdtemp(tmpdir, sizeof tmpdir, "reel-bench")) {
      fprintf(stderr, "reel %s: cannot create a temporary directory\n", verb);
      goto out;
    }
    snprintf(url, sizeof url, "%s/clip%s", tmpdir, bench_extension(&spec));
  } else {
    snprintf(url, sizeof url, "%s", output);
  }
  if (!quiet && !json && isatty(2)) fprintf(stderr, "reel %s: %ld warm-up + %ld timed runs...\n", verb, warmup, runs);
  bench_machine mc;
  bench_machine_get(&mc);
  st = bench_job_measure(job, url, (int)warmup, (int)runs, &sum, &err);
  if (st == REEL_ECANCELED && interrupted) {
    fprintf(stderr, "reel %s: interrupted\n", verb);
    rc = 130;
    goto out;
  }
  if (st != REEL_OK) {
    rc = bench_report_failure(verb, st, &err);
    goto out;
  }
  if (json) {
    if (print_gen_json(&mc, job, &sum, rate, have_rate, output) != 0) {
      fprintf(stderr, "reel %s: out of memory\n", verb);
      goto out;
    }
  } else {
    print_gen_text(&mc, job, &sum, rate, have_rate, output);
  }
  rc = 0;
  goto out;
usage:
  rc = 2;
out:
  bench_summary_fini(&sum);
  bench_job_destroy(&job);
  if (tmpdir[0]) bench_rmtree(tmpdir);
  reel_jobspec_fini(&spec);
  return rc;
}

int cmd_bench(int argc, char **argv) {
  if (argc < 2) {
    bench_usage(stderr);
    return 2;
  }
  const char *what = argv[1];
  if (!strcmp(what, "-h") || !strcmp(what, "--help") || !strcmp(what, "help")) {
    bench_usage(stdout);
    return 0;
  }
  if (!strcmp(what, "generate")) return bench_generate(argc - 1, argv + 1);
  if (!strcmp(what, "ops")) return bench_ops_main(argc - 1, argv + 1);
  if (!strcmp(what, "queue")) {
#ifdef REEL_HAVE_QUEUE
    return bench_queue_main(argc - 1, argv + 1);
#else
    fprintf(stderr, "reel bench: queue: this reel was built without the queue (libzmq)\n");
    return 2;
#endif
  }
  char msg[160];
  snprintf(msg, sizeof msg, "unknown benchmark '%.60s' (generate, ops or queue)", what);
  return bench_usage_error("bench", NULL, msg);
}
