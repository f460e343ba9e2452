/* SPDX-License-Identifier: Apache-2.0 */
/*
 * `reel generate [options] [-o OUTPUT] PROMPT`: one clip in this process, no
 * broker. Flags describe the job (cli/jobflags.h) and how to run it; the clip
 * goes to a file (or any sink URL). A progress line is drawn on a terminal;
 * --json prints one machine-readable result object on stdout.
 *
 * Exit status: 0 done, 2 bad usage (a message names the flag), 1 the job failed,
 * 130 interrupted (nothing is left at the output).
 */
#include <getopt.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "jobflags.h"
#include "reel/alloc.h"
#include "reel/clock.h"
#include "reel/generate.h"
#include "reel/json.h"
#include "reel/log.h"
#ifdef REEL_HAVE_ENCODER
#include "reel/encoder.h"
#endif

enum { OPT_JSON = REEL_JF_END, OPT_THREADS, OPT_LATENTS, OPT_DUMP_LATENTS, OPT_PREVIEW_EVERY };

static const struct option own_options[] = {{"output", required_argument, NULL, 'o'},
                                            {"verbose", no_argument, NULL, 'v'},
                                            {"quiet", no_argument, NULL, 'q'},
                                            {"help", no_argument, NULL, 'h'},
                                            {"json", no_argument, NULL, OPT_JSON},
                                            {"threads", required_argument, NULL, OPT_THREADS},
                                            {"latents", required_argument, NULL, OPT_LATENTS},
                                            {"dump-latents", required_argument, NULL, OPT_DUMP_LATENTS},
                                            {NULL, 0, NULL, 0}};

/* Set by SIGINT/SIGTERM; the progress callback turns it into a cancel. */
static volatile sig_atomic_t interrupted;

static void on_signal(int sig) {
  (void)sig;
  interrupted = 1;
}

static void usage(FILE *f) {
  fprintf(f,
          "usage: reel generate [options] [-o OUTPUT] PROMPT\n"
          "\n"
          "Generates one clip from PROMPT in this process and writes it to OUTPUT.\n"
          "\n"
          "options:\n"
          "  -o, --output PATH  where the clip goes: a file path or URL (file:///abs/path.mp4);\n"
          "                     default reel-YYYYMMDD-HHMMSS.mp4 in the current directory\n"
          "  --json             print one JSON object with the result on stdout\n"
          "  --threads N        compute and encoder threads, 0..256 (0 = automatic)\n"
          "  --latents FILE     start from the initial latents in FILE (safetensors, tensor\n"
          "                     \"latents\" [1, C, F, H, W]) instead of seeded noise\n"
          "  --dump-latents FILE  write the initial and final latents (\"latents_init\",\n"
          "                     \"latents_final\") to FILE (safetensors), to compare step by step\n"
          "  -v, --verbose      more log output (repeat for more)\n"
          "  -q, --quiet        no progress, notes or summary; errors only\n"
          "  -h, --help         this help\n"
          "\n");
  reel_jobflags_usage(f);
  fprintf(f,
          "\n--model takes a model directory in the diffusers layout (e.g. a Wan2.1 T2V\n"
          "checkpoint), a model name found under $REEL_MODEL_PATH or samples/models, or\n"
          "builtin:testsrc, a deterministic moving test pattern (size, frames, fps and\n"
          "seed apply; steps, cfg, shift, sampler and negative prompt are ignored).\n"
          "Fields left out take the model's defaults. Without --model: %s.\n",
          reel_default_model());
}

static int usage_error(const char *flag, const char *msg) {
  if (flag && flag[0])
    fprintf(stderr, "reel generate: %s: %s\n", flag, msg);
  else
    fprintf(stderr, "reel generate: %s\n", msg);
  fprintf(stderr, "Run 'reel generate --help' for usage.\n");
  return 2;
}

typedef struct progress_state {
  int draw;         /* draw a progress line (stderr is a terminal, not quiet) */
  int drawn;        /* something is on the line */
  int64_t last_ns;  /* last redraw */
  int64_t step0_ns; /* when denoising started (it/s) */
} progress_state;

static int on_progress(const reel_progress *p, void *user) {
  progress_state *ps = user;
  if (ps->draw) {
    int64_t now = reel_now_ns();
    int last = !strcmp(p->stage, "denoise") ? p->steps_done == p->steps_total : p->frames_done == p->frames_total;
    char eta[32] = "";
    if (p->eta_seconds >= 0) snprintf(eta, sizeof eta, "  ETA %.1f s", p->eta_seconds);
    if (!strcmp(p->stage, "finish")) {
      fprintf(stderr, "\r\033[Kfinishing: %d frames, flushing the encoder and writing the file", p->frames_total);
      fflush(stderr);
      ps->drawn = 1;
    } else if (!strcmp(p->stage, "load") || !strcmp(p->stage, "text")) {
      fprintf(stderr, "\r\033[K%s", !strcmp(p->stage, "load") ? "loading the model" : "encoding the prompt");
      fflush(stderr);
      ps->drawn = 1;
    } else if (!strcmp(p->stage, "denoise")) {
      if (p->steps_done == 0) ps->step0_ns = now;
      if (last || now - ps->last_ns >= 100000000) {
        ps->last_ns = now;
        double secs = (double)(now - ps->step0_ns) / 1e9;
        double rate = p->steps_done > 0 && secs > 0 ? p->steps_done / secs : 0.0;
        fprintf(stderr, "\r\033[Kdenoise: step %d/%d  %.2f it/s%s", p->steps_done, p->steps_total, rate, eta);
        fflush(stderr);
        ps->drawn = 1;
      }
    } else if (last || now - ps->last_ns >= 100000000) {
      ps->last_ns = now;
      double rate = p->elapsed_seconds > 0 ? p->frames_done / p->elapsed_seconds : 0.0;
      if (p->steps_total > 0)
        fprintf(stderr, "\r\033[K%s: frame %d/%d%s", p->stage, p->frames_done, p->frames_total, eta);
      else
        fprintf(stderr, "\r\033[K%s: frame %d/%d  %.1f fps%s", p->stage, p->frames_done, p->frames_total, rate, eta);
      fflush(stderr);
      ps->drawn = 1;
    }
  }
  return interrupted ? 1 : 0;
}

/* Joins the positional arguments into one prompt (so that unquoted words work too). */
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

static const char *extension(const char *path) {
  const char *slash = strrchr(path, '/');
  const char *dot = strrchr(path, '.');
  return dot && (!slash || dot > slash) ? dot : "";
}

static int print_json(const reel_generate_result *r) {
  json_t *o = json_object();
  if (!o) return -1;
  json_object_set_new(o, "url", json_string(r->url));
  json_object_set_new(o, "bytes", json_integer((json_int_t)r->bytes));
  json_object_set_new(o, "sha256", json_string(r->sha256));
  json_object_set_new(o, "frames", json_integer(r->frames));
  json_object_set_new(o, "width", json_integer(r->width));
  json_object_set_new(o, "height", json_integer(r->height));
  json_object_set_new(o, "fps", json_real(r->fps));
  json_object_set_new(o, "seconds", json_real(r->seconds_total));
  if (r->seed <= (uint64_t)INT64_MAX) {
    json_object_set_new(o, "seed", json_integer((json_int_t)r->seed));
  } else {
    char buf[32];
    snprintf(buf, sizeof buf, "%llu", (unsigned long long)r->seed);
    json_object_set_new(o, "seed", json_string(buf));
  }
  json_object_set_new(o, "model", json_string(r->model));
  json_object_set_new(o, "codec", json_string(r->codec));
  json_object_set_new(o, "container", json_string(r->container));
  json_object_set_new(o, "encoder", json_string(r->encoder));
  if (r->steps > 0) {
    json_object_set_new(o, "family", json_string(r->family));
    json_object_set_new(o, "backend", json_string(r->backend));
    json_object_set_new(o, "steps", json_integer(r->steps));
    json_object_set_new(o, "guidance", json_real(r->guidance));
    json_object_set_new(o, "shift", json_real(r->shift));
    json_object_set_new(o, "sampler", json_string(r->sampler));
  }
  if (r->poster_url[0]) {
    json_object_set_new(o, "poster", json_string(r->poster_url));
    json_object_set_new(o, "poster_frame", json_integer(r->poster_frame));
  }
  if (r->preview_url[0]) {
    json_object_set_new(o, "preview_anim", json_string(r->preview_url));
    json_object_set_new(o, "preview_frames", json_integer(r->preview_frames));
  }
  json_t *t = json_object();
  if (t) {
    if (r->steps > 0) {
      json_object_set_new(t, "load", json_real(r->seconds_load));
      json_object_set_new(t, "text", json_real(r->seconds_text));
      json_object_set_new(t, "denoise", json_real(r->seconds_denoise));
      json_object_set_new(t, "decode", json_real(r->seconds_decode));
    }
    json_object_set_new(t, "render", json_real(r->seconds_render));
    json_object_set_new(t, "encode", json_real(r->seconds_encode));
    json_object_set_new(t, "commit", json_real(r->seconds_commit));
    json_object_set_new(o, "timings", t);
  }
  json_t *mem = json_object();
  if (mem) {
    if (r->steps > 0) {
      json_object_set_new(mem, "model_bytes", json_integer((json_int_t)r->model_bytes));
      json_object_set_new(mem, "peak_scratch_bytes", json_integer((json_int_t)r->peak_scratch_bytes));
    }
    json_object_set_new(mem, "peak_rss_bytes", json_integer((json_int_t)r->peak_rss_bytes));
    json_object_set_new(o, "memory", mem);
  }
  char *s = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(10));
  json_decref(o);
  if (!s) return -1;
  printf("%s\n", s);
  free(s);
  return 0;
}

int cmd_generate(int argc, char **argv) {
  struct option table[64];
  if (!reel_jobflags_table(own_options, table, sizeof table / sizeof table[0])) return 1;
  reel_jobspec spec;
  reel_jobspec_init(&spec);
  reel_error err = {0};
  const char *output = NULL, *latents = NULL, *dump_latents = NULL;
  int json = 0, verbose = 0, quiet = 0, threads = 0, rc = 1;
  char default_out[64];

  optind = 1;
  opterr = 0;
  for (;;) {
    int longidx = -1;
    int c = getopt_long(argc, argv, ":o:vqh", table, &longidx);
    if (c == -1) break;
    int applied = reel_jobflags_apply(c, optarg, &spec, &err);
    if (applied < 0) {
      rc = usage_error(err.field, err.msg);
      goto out;
    }
    if (applied > 0) continue;
    switch (c) {
      case 'o':
        if (!optarg[0]) {
          rc = usage_error("-o", "must be a file path or URL, got an empty string");
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
        usage(stdout);
        rc = 0;
        goto out;
      case OPT_JSON:
        json = 1;
        break;
      case OPT_LATENTS:
        if (!optarg[0]) {
          rc = usage_error("--latents", "must name a safetensors file, got an empty string");
          goto out;
        }
        latents = optarg;
        break;
      case OPT_DUMP_LATENTS:
        if (!optarg[0]) {
          rc = usage_error("--dump-latents", "must name a file, got an empty string");
          goto out;
        }
        dump_latents = optarg;
        break;
      case OPT_THREADS: {
        char *end = NULL;
        long v = strtol(optarg, &end, 10);
        if (!optarg[0] || *end || v < 0 || v > 256) {
          char msg[128];
          snprintf(msg, sizeof msg, "must be an integer in 0..256 (0 = automatic), got '%.40s'", optarg);
          rc = usage_error("--threads", msg);
          goto out;
        }
        threads = (int)v;
        break;
      }
      case ':': {
        char msg[160];
        snprintf(msg, sizeof msg, "option '%.60s' needs a value", argv[optind - 1]);
        rc = usage_error(NULL, msg);
        goto out;
      }
      default: {
        char msg[160];
        snprintf(msg, sizeof msg, "unknown option '%.60s'", argv[optind - 1]);
        rc = usage_error(NULL, msg);
        goto out;
      }
    }
  }
  if (optind >= argc) {
    rc = usage_error("PROMPT", "is missing: say what the clip should show");
    goto out;
  }
  spec.prompt = join_args(argc - optind, argv + optind);
  if (!spec.prompt) {
    fprintf(stderr, "reel generate: out of memory\n");
    goto out;
  }
  if (!output) {
    time_t now = time(NULL);
    struct tm tm;
    localtime_r(&now, &tm);
    strftime(default_out, sizeof default_out, "reel-%Y%m%d-%H%M%S.mp4", &tm);
    output = default_out;
  }
  /* A Matroska/WebM name without --container asks for that container. */
  if (spec.container == REEL_CONTAINER_AUTO) {
    const char *ext = extension(output);
    if (!strcmp(ext, ".mkv")) spec.container = REEL_CONTAINER_MKV;
    if (!strcmp(ext, ".webm")) spec.container = REEL_CONTAINER_WEBM;
  }
  if (reel_jobflags_validate(&spec, &err) != REEL_OK) {
    rc = usage_error(err.field, err.msg);
    goto out;
  }
  reel_error_clear(&err);
  if (reel_generate_check(&spec, &err) != REEL_OK) {
    if (reel_jobflags_rename_field(&err) || !strcmp(err.field, "job")) {
      rc = usage_error(err.field, err.msg);
    } else {
      fprintf(stderr, "reel generate: %s: %s\n", err.field, err.msg);
      rc = 1;
    }
    goto out;
  }
  if ((latents || dump_latents) && !strcmp(spec.model ? spec.model : reel_default_model(), "builtin:testsrc")) {
    rc = usage_error(latents ? "--latents" : "--dump-latents",
                     "needs a diffusion model (--model DIR), not a test pattern");
    goto out;
  }

  reel_logger lg;
  reel_logger_init(&lg,
                   quiet          ? REEL_LOG_ERROR
                   : verbose >= 3 ? REEL_LOG_TRACE
                   : verbose == 2 ? REEL_LOG_DEBUG
                   : verbose == 1 ? REEL_LOG_INFO
                                  : REEL_LOG_WARN,
                   REEL_LOG_TEXT, 2);
#ifdef REEL_HAVE_ENCODER
  reel_ffmpeg_route_logs();
  /* SVT-AV1 prints a banner and its configuration to stderr unless told otherwise (1 = errors, 3 = info). */
  setenv("SVT_LOG", verbose >= 2 ? "3" : "1", 0);
#endif
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);

  progress_state ps = {!quiet && isatty(2), 0, 0, 0};
  reel_generate_options go;
  memset(&go, 0, sizeof go);
  go.log = &lg;
  go.progress = on_progress;
  go.progress_user = &ps;
  go.threads = threads;
  go.latents_path = latents;
  go.dump_latents_path = dump_latents;
  reel_generate_result res;
  reel_error_clear(&err);
  reel_status st = reel_generate(&spec, output, &go, &res, &err);
  if (ps.drawn) fprintf(stderr, "\r\033[K"); /* the summary replaces the progress line */
  if (st == REEL_ECANCELED && interrupted) {
    fprintf(stderr, "reel generate: interrupted; nothing was written to %s\n", output);
    rc = 130;
    goto out;
  }
  if (st != REEL_OK) {
    if (!strcmp(err.field, "url")) {
      snprintf(err.field, sizeof err.field, "-o");
      rc = st == REEL_EINVAL || st == REEL_ENOTFOUND || st == REEL_EUNSUPPORTED ? 2 : 1;
    } else if (!strncmp(err.field, "latents", 7) || !strncmp(err.field, "dump_latents", 12)) {
      snprintf(err.field, sizeof err.field, "%s", err.field[0] == 'l' ? "--latents" : "--dump-latents");
      rc = st == REEL_EINVAL ? 2 : 1;
    } else {
      rc = reel_jobflags_rename_field(&err) && (st == REEL_EINVAL || st == REEL_ERANGE) ? 2 : 1;
    }
    if (rc == 2)
      usage_error(err.field, err.msg);
    else
      fprintf(stderr, "reel generate: %s%s%s (%s)\n", err.field, err.field[0] ? ": " : "",
              err.msg[0] ? err.msg : reel_strerror(st), reel_status_name(st));
    goto out;
  }
  if (json) {
    if (print_json(&res) != 0) {
      fprintf(stderr, "reel generate: out of memory\n");
      goto out;
    }
  } else if (!quiet) {
    printf("wrote %s (%llu bytes, %d frames, %dx%d at %g fps, seed %llu) in %.2f s\n", res.url,
           (unsigned long long)res.bytes, res.frames, res.width, res.height, res.fps, (unsigned long long)res.seed,
           res.seconds_total);
    if (res.poster_url[0]) printf("wrote %s (poster, frame %d)\n", res.poster_url, res.poster_frame);
    if (res.preview_url[0]) printf("wrote %s (preview, %d frames)\n", res.preview_url, res.preview_frames);
  }
  rc = 0;
out:
  reel_jobspec_fini(&spec);
  return rc;
}
