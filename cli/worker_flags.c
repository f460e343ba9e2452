/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Parsing of the worker flags (see worker_flags.h). Values are read strictly;
 * errors name the flag and the accepted range.
 */
#include "worker_flags.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "reel/generate.h"
#include "reel/protocol.h"

const struct option worker_flag_options[] = {
    {"model", required_argument, NULL, WF_MODEL},
    {"storage", required_argument, NULL, WF_STORAGE},
    {"backend", required_argument, NULL, WF_BACKEND},
    {"threads", required_argument, NULL, WF_THREADS},
    {"memory-budget", required_argument, NULL, WF_MEMORY},
    {"no-overlap", no_argument, NULL, WF_NO_OVERLAP},
    {"queue-mb", required_argument, NULL, WF_QUEUE_MB},
    {"region", required_argument, NULL, WF_REGION},
    {"label", required_argument, NULL, WF_LABEL},
    {"max-width", required_argument, NULL, WF_MAX_WIDTH},
    {"max-height", required_argument, NULL, WF_MAX_HEIGHT},
    {"max-frames", required_argument, NULL, WF_MAX_FRAMES},
    {"preview-size", required_argument, NULL, WF_PREVIEW_SIZE},
    {"max-jobs", required_argument, NULL, WF_MAX_JOBS},
    {"capacity", required_argument, NULL, WF_CAPACITY},
};
const size_t worker_flag_count = sizeof worker_flag_options / sizeof worker_flag_options[0];

size_t worker_flags_append(struct option *dst, size_t n, size_t cap) {
  if (n + worker_flag_count + 1 > cap) return 0;
  memcpy(dst + n, worker_flag_options, worker_flag_count * sizeof *dst);
  n += worker_flag_count;
  memset(dst + n, 0, sizeof *dst);
  return n;
}

int worker_parse_bytes(const char *s, uint64_t *out) {
  if (!s || !s[0] || s[0] == '-') return 1;
  errno = 0;
  char *end = NULL;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno || end == s) return 1;
  uint64_t mul = 1;
  if (*end) {
    switch (*end) {
      case 'k':
      case 'K':
        mul = 1ull << 10;
        break;
      case 'm':
      case 'M':
        mul = 1ull << 20;
        break;
      case 'g':
      case 'G':
        mul = 1ull << 30;
        break;
      case 't':
      case 'T':
        mul = 1ull << 40;
        break;
      default:
        return 1;
    }
    end++;
    if (*end == 'i' || *end == 'I') end++;
    if (*end == 'b' || *end == 'B') end++;
    if (*end) return 1;
  }
  if (v > UINT64_MAX / mul) return 1;
  *out = (uint64_t)v * mul;
  return 0;
}

static int int_flag(const char *verb, const char *flag, const char *arg, long lo, long hi, long *out) {
  char *end = NULL;
  errno = 0;
  long v = strtol(arg, &end, 10);
  if (!arg[0] || errno || *end || v < lo || v > hi) {
    fprintf(stderr, "reel %s: %s: must be an integer in %ld..%ld, got '%.40s'\n", verb, flag, lo, hi, arg);
    return 1;
  }
  *out = v;
  return 0;
}

int worker_flags_apply(reel_worker_options *o, int opt, const char *arg, const char *verb) {
  long v;
  switch (opt) {
    case WF_MODEL:
      if (o->nmodels == REEL_WORKER_MAX_MODELS) {
        fprintf(stderr, "reel %s: --model: at most %d models\n", verb, REEL_WORKER_MAX_MODELS);
        return -1;
      }
      if (!reel_proto_is_token(arg, 1024)) {
        fprintf(stderr, "reel %s: --model: must be 1..1024 printable characters without spaces, got '%.60s'\n", verb,
                arg);
        return -1;
      }
      o->models[o->nmodels++] = arg;
      return 1;
    case WF_STORAGE:
      if (!arg[0] || strlen(arg) >= 1000) {
        fprintf(stderr, "reel %s: --storage: must be a URL or directory of 1..999 bytes\n", verb);
        return -1;
      }
      o->storage = arg;
      return 1;
    case WF_BACKEND: {
      int k = reel_name_index(reel_backend_names, arg);
      if (k < 0) {
        fprintf(stderr, "reel %s: --backend: must be one of: auto, cpu, cuda; got '%.40s'\n", verb, arg);
        return -1;
      }
      o->backend = (reel_backend_kind)k;
      return 1;
    }
    case WF_THREADS:
      if (int_flag(verb, "--threads", arg, 0, 1024, &v)) return -1;
      o->threads = (int)v;
      return 1;
    case WF_MEMORY:
      if (worker_parse_bytes(arg, &o->memory_budget)) {
        fprintf(stderr, "reel %s: --memory-budget: must be a size in bytes (e.g. 4G, 512M, 1048576), got '%.40s'\n",
                verb, arg);
        return -1;
      }
      return 1;
    case WF_NO_OVERLAP:
      o->no_overlap = 1;
      return 1;
    case WF_QUEUE_MB:
      if (int_flag(verb, "--queue-mb", arg, 1, 1 << 20, &v)) return -1;
      o->queue_bytes = (size_t)v << 20;
      return 1;
    case WF_REGION:
      if (!reel_proto_is_token(arg, 64)) {
        fprintf(stderr, "reel %s: --region: must be 1..64 printable characters\n", verb);
        return -1;
      }
      o->region = arg;
      return 1;
    case WF_LABEL:
      if (o->nlabels == REEL_WORKER_MAX_LABELS || !reel_proto_is_token(arg, 64)) {
        fprintf(stderr, "reel %s: --label: at most %d labels of 1..64 printable characters\n", verb,
                REEL_WORKER_MAX_LABELS);
        return -1;
      }
      o->labels[o->nlabels++] = arg;
      return 1;
    case WF_MAX_WIDTH:
      if (int_flag(verb, "--max-width", arg, 16, 65536, &v)) return -1;
      o->max_width = (int)v;
      return 1;
    case WF_MAX_HEIGHT:
      if (int_flag(verb, "--max-height", arg, 16, 65536, &v)) return -1;
      o->max_height = (int)v;
      return 1;
    case WF_MAX_FRAMES:
      if (int_flag(verb, "--max-frames", arg, 1, 1 << 20, &v)) return -1;
      o->max_frames = (int)v;
      return 1;
    case WF_PREVIEW_SIZE:
      if (int_flag(verb, "--preview-size", arg, 16, 1024, &v)) return -1;
      o->preview_size = (int)v;
      return 1;
    case WF_CAPACITY:
      if (int_flag(verb, "--capacity", arg, 1, REEL_WORKER_MAX_LANES, &v)) return -1;
      o->lanes = (int)v;
      return 1;
    case WF_MAX_JOBS:
      if (int_flag(verb, "--max-jobs", arg, 0, 1L << 40, &v)) return -1;
      o->max_jobs = v;
      return 1;
    default:
      return 0;
  }
}

/* mkdir -p for a local storage root ("file:///abs/dir", "file://localhost/abs/dir" or a path). */
static int make_storage_dir(const char *storage, const char *verb) {
  const char *local = !strncmp(storage, "file://", 7) ? storage + 7 : strstr(storage, "://") ? NULL : storage;
  if (local && !strncmp(local, "localhost/", 10)) local += 9;
  if (!local || !local[0]) return 0;
  char path[1024];
  snprintf(path, sizeof path, "%s", local);
  for (char *p = path + 1;; p++) {
    if (*p == '/' || *p == '\0') {
      char saved = *p;
      *p = '\0';
      if (mkdir(path, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "reel %s: --storage: cannot create %s: %s\n", verb, path, strerror(errno));
        return 1;
      }
      *p = saved;
      if (!saved) break;
    }
  }
  return 0;
}

int worker_flags_finish(reel_worker_options *o, const char *verb) {
  if (!o->storage) {
    fprintf(stderr, "reel %s: --storage: required: where clips go (file:///abs/dir, a directory, s3://bucket/prefix)\n",
            verb);
    return 2;
  }
  if (make_storage_dir(o->storage, verb)) return 1;
#ifdef REEL_TEST_HOOKS
  const char *marker = getenv("REEL_TEST_NAN_MARKER");
  if (marker && marker[0]) {
    o->test_nan_marker = marker;
    fprintf(stderr,
            "reel %s: warning: test hook REEL_TEST_NAN_MARKER is set: jobs whose prompt contains \"%s\" get NaN "
            "latents\n",
            verb, marker);
  }
#endif
  return 0;
}

void worker_flags_usage(FILE *f) {
  fprintf(f,
          "worker options:\n"
          "  --model DIR|NAME    a model this worker serves: a diffusers model folder, a name under\n"
          "                      $REEL_MODEL_PATH or samples/models, or builtin:testsrc (repeatable;\n"
          "                      the first is the default for jobs that name none; default %s)\n"
          "  --storage URL       where clips go: file:///abs/dir (or a directory), s3://bucket/prefix;\n"
          "                      each clip is STORAGE/<job id>.<ext> (or the job's output key)\n"
          "  --backend B         auto (CUDA when present), cpu or cuda (default auto)\n"
          "  --threads N         CPU compute threads, 0..1024 (0 = the CPUs this process may use)\n"
          "  --memory-budget SZ  models cached + the running job's scratch stay within SZ (4G, 512M);\n"
          "                      a job that cannot fit fails with ENOMEM; default unlimited\n"
          "  --capacity N        jobs rendered at once, 1..16 (default 1); each has its own threads,\n"
          "                      model cache, --threads/N and --memory-budget/N\n"
          "  --no-overlap        encode and upload each clip before rendering the next (default: the\n"
          "                      next job renders while the last one is encoded and uploaded)\n"
          "  --queue-mb N        frames waiting for the encoder, at most N MiB (default 64)\n"
          "  --region NAME       region this worker is in; --label NAME (repeatable) other labels\n"
          "  --max-width N, --max-height N, --max-frames N   largest jobs this worker takes\n"
          "  --preview-size N    long side of preview frames in pixels, 16..1024 (default 160)\n"
          "  --max-jobs N        leave after N jobs (0 = never)\n",
          reel_default_model());
}
