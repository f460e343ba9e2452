/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The measuring machinery of `reel bench` and `reel tune` (cli/cmd_bench.c,
 * cli/cmd_tune.c): summary statistics, a description of the machine, and a job
 * opened once (its model loaded once on its backend) and run many times through
 * reel_generate() with per-stage and per-step timings.
 *
 * Timings come from reel_generate_result (text, denoise, decode, render, encode,
 * commit, total) and, per denoising step, from the progress callback, which
 * reel_generate calls once before the first step and once after each step. The
 * code path of each stage is reel_backend_last_path() read at the end of that
 * stage (the last op with several implementations that ran in it).
 */
#ifndef REEL_CLI_BENCH_H
#define REEL_CLI_BENCH_H

#include <signal.h>
#include <stdint.h>
#include <stdio.h>

#include "reel/generate.h"
#include "reel/json.h"
#include "reel/jobspec.h"
#include "reel/log.h"
#include "reel/status.h"

/* Summary of n samples: linear interpolation between the closest ranks (numpy's default), as for p50 = median. */
typedef struct bench_stats {
  int n;
  double p50, p95, p99, mean, min, max;
} bench_stats;

/* Fills s from v[0..n) (v is not modified). n == 0 gives all zeros. Returns nonzero when out of memory. */
int bench_stats_of(const double *v, int n, bench_stats *s /* OUT: */);
/* {"n","p50","p95","p99","mean","min","max"}; NULL when out of memory. */
json_t *bench_stats_json(const bench_stats *s);

/* The machine a figure was measured on. */
typedef struct bench_machine {
  char cpu[128];         /* /proc/cpuinfo "model name" ("unknown" when absent) */
  int cores;             /* online CPUs */
  int cpus_allowed;      /* CPUs this process may run on (affinity) */
  uint64_t memory_bytes; /* physical memory */
  char features[160];    /* of avx2, avx512f, avx512_bf16, amx_bf16, amx_tile: those present, space-separated */
  char date[40];         /* RFC 3339, UTC, when measured */
} bench_machine;

void bench_machine_get(bench_machine *m /* OUT: */);
json_t *bench_machine_json(const bench_machine *m);
/* One line: "CPU (N cores, M usable; features), X GiB". */
void bench_machine_print(FILE *f, const bench_machine *m);

/* A prompt when the command line gives none: fixed, so that runs are comparable. */
#define BENCH_DEFAULT_PROMPT "a lighthouse on a cliff at dusk, waves crashing, slow dolly in"
/* The seed when the job gives none: fixed, so that every run computes the same clip. */
#define BENCH_DEFAULT_SEED 42u

/* A job opened for measuring: the model loaded once (nothing for builtin:testsrc). */
typedef struct bench_job bench_job;

/*
 * Checks `spec` (reel_generate_check: errors name "job.<field>") and, for a
 * model, opens the spec's backend (auto: CUDA when built and present, else the
 * CPU with `threads` threads, 0 = all usable) and loads the model. `spec` is
 * borrowed and must outlive the job. `stop`, when non-NULL, cancels a run in
 * progress once it becomes nonzero (SIGINT). On failure *out is NULL.
 */
reel_status bench_job_open(const reel_jobspec *spec, int threads, const reel_logger *log, volatile sig_atomic_t *stop,
                           bench_job **out /* OUT: */, reel_error *err);
void bench_job_destroy(bench_job **j);

/* Nonzero for a model job (0 for builtin:testsrc). */
int bench_job_is_model(const bench_job *j);
/* Seconds the model load took (0 for testsrc). */
double bench_job_load_seconds(const bench_job *j);
/* "cpu", "cuda:0"; "none" for testsrc. */
const char *bench_job_backend_name(const bench_job *j);
/* Compute threads of the backend; for testsrc the encoder threads asked for (0 = automatic). */
int bench_job_threads(const bench_job *j);

/*
 * Sets the backend's GEMM path ("matmul": auto, avx512, avx2, openblas,
 * portable) and the model's "activations" (f32, bf16); NULL leaves a setting
 * as it is. REEL_EUNSUPPORTED when this machine, build, backend or model cannot
 * (err says which); REEL_EINVAL for a testsrc job, which has neither.
 */
reel_status bench_job_configure(bench_job *j, const char *matmul, const char *activations, reel_error *err);
/* The current settings: "auto"/"-" and "f32"/"-" ("-" when not applicable). */
const char *bench_job_matmul(const bench_job *j);
const char *bench_job_activations(const bench_job *j);

/* Which implementation ran: after a matmul / attention probe on the job's backend, and at the end of each stage. */
typedef struct bench_paths {
  char matmul[48];                        /* a 64x256 -> 256 f32 matmul probe with the current settings */
  char attention[48];                     /* a [1, 64, 2, 64] attention probe */
  char text[48], denoise[48], decode[48]; /* seen at the end of each stage of the last timed run */
} bench_paths;

/* Everything measured over the timed runs of one configuration. */
typedef struct bench_summary {
  int runs, warmup;
  reel_generate_result last; /* the last timed run's result (sizes, model, encoder, url, ...) */
  bench_stats text, denoise, step, decode, render, encode, commit, total;
  double wall_seconds;         /* sum of the timed runs' end-to-end times */
  double clips_per_minute;     /* 60 * runs / wall_seconds */
  double video_seconds;        /* of one clip: frames / fps */
  uint64_t peak_rss_bytes;     /* the most any run reported */
  uint64_t peak_scratch_bytes; /* the most any run reported */
  int identical;               /* every timed run wrote the same bytes (SHA-256) */
  bench_paths paths;
  double *total_samples; /* runs end-to-end seconds, in run order (owned) */
} bench_summary;

/* Fills p->matmul and p->attention from the probes (nothing for testsrc); the stage fields are left alone. */
void bench_job_probe(bench_job *j, bench_paths *p);

/*
 * Runs the job `warmup` times untimed and `runs` times timed, each into `url`
 * (overwritten every run), and summarises. REEL_ECANCELED when `stop` was set.
 * Release with bench_summary_fini.
 */
reel_status bench_job_measure(bench_job *j, const char *url, int warmup, int runs, bench_summary *out /* OUT: */,
                              reel_error *err);
void bench_summary_fini(bench_summary *s);

/*
 * Cost of one clip at `per_hour` USD per machine-hour: per_hour * latency p50 / 3600;
 * per minute of video: that / (video_seconds / 60).
 */
double bench_cost_per_clip(const bench_summary *s, double per_hour);
double bench_cost_per_video_minute(const bench_summary *s, double per_hour);

/* Parses an integer option in [lo, hi]; returns nonzero (and prints "VERB: FLAG: ...") when invalid. */
int bench_parse_int(const char *verb, const char *flag, const char *arg, long lo, long hi, long *out);
/* Parses a finite number in [lo, hi]; as above. */
int bench_parse_double(const char *verb, const char *flag, const char *arg, double lo, double hi, double *out);
/* Prints "VERB: FLAG: MSG" and the help hint; returns 2. */
int bench_usage_error(const char *verb, const char *flag, const char *msg);

/*
 * Reports a failed job, its model or a bench setting with the flag that set it:
 * "url" -> -o, "matmul"/"activations" -> --matmul/--activations, "job.<field>" ->
 * its job flag. Returns the exit status: 2 (usage, via bench_usage_error) when the
 * flag's value is at fault, else 1 after printing the error.
 */
int bench_report_failure(const char *verb, reel_status st, reel_error *err);

/* Makes a fresh temporary directory (under $TMPDIR or /tmp) into buf; nonzero on failure. */
int bench_mkdtemp(char *buf, size_t size, const char *prefix);
/* Removes a directory tree (what bench_mkdtemp made and the runs wrote into it). */
void bench_rmtree(const char *dir);

/* The file extension reel would use for the spec's container: ".mp4", ".mkv", ".webm". */
const char *bench_extension(const reel_jobspec *spec);

#ifdef REEL_HAVE_QUEUE
/* `reel bench queue` (cli/bench_queue.c). */
int bench_queue_main(int argc, char **argv);
#endif
/* `reel bench ops` (cli/bench_ops.c). */
int bench_ops_main(int argc, char **argv);

#endif
