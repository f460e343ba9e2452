/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The worker (reel/worker.h): a render thread that takes jobs from the worker
 * connector and renders them with reel__gen_render, and (overlap on) an encode
 * thread that encodes and uploads what the render thread hands it.
 *
 * Hand-over. A job's frames travel from the render thread to the encode
 * thread in a FIFO of items — BEGIN (open the sink and the encoder), FRAME (one
 * RGB24 frame, copied), END (the render's outcome) — bounded by the bytes of
 * the frames in it: when the encoder falls behind, the render thread waits in
 * push (backpressure), so memory stays bounded whatever the clip length. The
 * encode thread owns a job from BEGIN on: it commits or aborts the sink and
 * sends the job's one RESULT, then frees it. An encode failure or a cancel
 * seen there is flagged on the job so that the render thread stops producing
 * frames for it at the next frame.
 *
 * Progress goes to the connector at most every progress_interval_ms per job
 * (4 per second by default); a cancel is checked at every step and frame
 * whatever the throttle. Preview frames (the job's preview_every) travel as
 * PNG payloads of PROGRESS.
 */
#include "reel/worker.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "frames.h"
#include "gen_internal.h"
#include "model_cache.h"
#include "reel/alloc.h"
#include "reel/clock.h"
#include "reel/generate.h"
#include "reel/protocol.h"
#include "reel/testsrc.h"
#include "reel/worker_conn.h"

#define DEFAULT_QUEUE_BYTES ((size_t)64 << 20)

/* ---- one job ------------------------------------------------------------------------------ */

typedef struct lane lane;

typedef struct wjob {
  reel_worker *w;
  lane *lane;           /* the render/encode pair running it */
  reel_worker_job *job; /* the connector's; finished exactly once */
  reel_jobspec spec;    /* the job's spec, model filled in */
  reel_generate_options go;
  reel_generate_result res;
  reel__gen g;
  char url[2048];
  const char *content_type;
  int64_t t_received_ms, t_start_ms;
  /* Set before the job is handed over; then read-only. */
  int model_job;
  /* Encode side (encode thread with overlap, else the render thread). */
  reel_sink *sink;
  reel__clip *clip;
  int64_t encode_ns, upload_ns;
  /* Failure of the encode side, seen by the render thread through `stop`. */
  reel_status enc_st;
  reel_error enc_err;
  int stop; /* atomic: the encode side failed or saw a cancel: stop rendering */
  /* Progress throttle (both threads report for the job). */
  pthread_mutex_t pmu;
  int64_t last_progress_ms;
  uint8_t *preview_png; /* a preview not sent yet (the throttle held it back); reel_malloc'd */
  size_t preview_len;
} wjob;

/* ---- the hand-over queue ------------------------------------------------------------------- */

typedef enum { IT_BEGIN, IT_FRAME, IT_END, IT_QUIT } item_kind;

typedef struct item {
  item_kind kind;
  wjob *j;
  uint8_t *rgb; /* IT_FRAME */
  size_t bytes;
  int index;
  reel_status st; /* IT_END: the render's status */
  reel_error err; /* IT_END */
  struct item *next;
} item;

/*
 * A lane renders one job at a time (its render thread, its model cache on its
 * own backend) and encodes and uploads the previous one (its encode thread).
 * A worker has `lanes` of them sharing one connection to the broker.
 */
struct lane {
  reel_worker *w;
  int index;
  reel__model_cache *cache; /* used by the lane's render thread only */
  /* the hand-over queue */
  pthread_mutex_t mu;
  pthread_cond_t cv;
  item *head, *tail;
  size_t queued_bytes;
  int enc_started, render_started;
  pthread_t enc_thread, render_thread;
  /* guarded by the worker's mu */
  int encoding;                      /* jobs rendered and not yet finished by the encode side */
  int credit;                        /* jobs the broker may lease to this lane: 1, or 2 while encoding */
  reel__model_cache_stats cache_stats;
};

struct reel_worker {
  reel_worker_options o;
  char storage[1024];
  char *models_dirs[REEL_WORKER_MAX_MODELS]; /* resolved folders (NULL for builtin) */
  reel_worker_conn *conn;
  const reel_logger *log;
  int stop;  /* atomic */
  long taken; /* atomic: jobs taken (for max_jobs) */
  size_t cap_bytes;
  lane *lanes;
  int nlanes;
  /* mu: stats, the lanes' credit */
  pthread_mutex_t mu;
  reel_worker_stats stats;
  int credit; /* the capacity last asked of the broker */
};

void reel_worker_options_init(reel_worker_options *o) { memset(o, 0, sizeof *o); }

const char *reel_container_content_type(reel_container c) {
  switch (c) {
    case REEL_CONTAINER_WEBM:
      return "video/webm";
    case REEL_CONTAINER_MKV:
      return "video/x-matroska";
    default:
      return "video/mp4";
  }
}

const char *reel_container_extension(reel_container c) {
  switch (c) {
    case REEL_CONTAINER_WEBM:
      return ".webm";
    case REEL_CONTAINER_MKV:
      return ".mkv";
    default:
      return ".mp4";
  }
}

/* A spec's "output" is a key under the storage root: relative, no "..", no scheme, no control characters. */
static int valid_key(const char *k) {
  if (!k[0] || k[0] == '/' || strstr(k, "://") || strlen(k) > 512) return 0;
  for (const char *p = k; *p; p++)
    if ((unsigned char)*p < 0x20 || *p == '\\') return 0;
  for (const char *p = k; p; p = strchr(p, '/') ? strchr(p, '/') + 1 : NULL)
    if (!strncmp(p, "..", 2) && (p[2] == '/' || p[2] == '\0')) return 0;
  return 1;
}

/*
 * For a local storage root, creates the folders a key's URL needs below the
 * root (keys may have '/'; the key was validated: no "..", relative).
 */
static reel_status make_key_dirs(const reel_worker *w, const char *url, reel_error *err) {
  const char *root = w->storage;
  const char *local = !strncmp(root, "file://", 7) ? root + 7 : strstr(root, "://") ? NULL : root;
  if (!local) return REEL_OK; /* object storage has no folders */
  size_t rl = strlen(root);
  if (strncmp(url, root, rl) != 0 || url[rl] != '/') return REEL_OK;
  char path[2048];
  if (!strncmp(local, "localhost/", 10)) local += 9;
  snprintf(path, sizeof path, "%s%s", local, url + rl);
  size_t start = strlen(local) + 1;
  for (char *p = path + start; *p; p++) {
    if (*p != '/') continue;
    *p = '\0';
    if (mkdir(path, 0755) != 0 && errno != EEXIST) {
      reel_status st = reel_error_set(err, REEL_ESTORAGE, "storage", "cannot create %.300s: %s", path, strerror(errno));
      *p = '/';
      return st;
    }
    *p = '/';
  }
  return REEL_OK;
}

/* ---- progress ------------------------------------------------------------------------------- */

static const char *wire_stage(const char *s) {
  if (!strcmp(s, "load")) return "loading";
  if (!strcmp(s, "text")) return "encoding_prompt";
  if (!strcmp(s, "denoise")) return "denoising";
  if (!strcmp(s, "decode")) return "decoding";
  if (!strcmp(s, "encode")) return "encoding";
  if (!strcmp(s, "finish")) return "uploading";
  return s;
}

static int job_canceled(const wjob *j) { return __atomic_load_n(&j->job->canceled, __ATOMIC_ACQUIRE) != 0; }

/*
 * Reports progress (throttled; a preview, when given, is sent with the next
 * report that goes out). Returns nonzero when the job was canceled.
 */
static int report(wjob *j, const char *stage, int step, int steps, double fraction, double eta_s, const uint8_t *preview,
                  int pw, int ph) {
  reel_worker *w = j->w;
  if (job_canceled(j)) return 1;
  uint8_t *png = NULL;
  size_t len = 0;
  if (preview) {
    reel_error e;
    reel_error_clear(&e);
    if (reel__png_encode(preview, pw, ph, &png, &len, &e) != REEL_OK)
      reel_log_error(w->log, REEL_LOG_WARN, "worker", j->job->id, &e);
  }
  const int64_t now = reel_now_ms();
  const int interval = w->o.progress_interval_ms > 0 ? w->o.progress_interval_ms : 250;
  pthread_mutex_lock(&j->pmu);
  if (png) {
    /* The newest preview replaces one the throttle held back. */
    reel_free(j->preview_png);
    j->preview_png = png;
    j->preview_len = len;
    png = NULL;
  }
  int due = now - j->last_progress_ms >= interval;
  if (due) {
    j->last_progress_ms = now;
    png = j->preview_png;
    len = j->preview_len;
    j->preview_png = NULL;
    j->preview_len = 0;
  }
  pthread_mutex_unlock(&j->pmu);
  if (!due) return 0;
  reel_status st = reel_worker_conn_progress_payload(w->conn, j->job, stage, step, steps, fraction,
                                                     eta_s >= 0 ? (int64_t)(eta_s * 1000) : -1, png, len);
  reel_free(png);
  return st == REEL_ECANCELED;
}

/* The generation path's progress callback (render thread): load, text, denoise (per step), decode. */
static int on_progress(const reel_progress *p, void *user) {
  wjob *j = user;
  if (__atomic_load_n(&j->stop, __ATOMIC_ACQUIRE)) return 1;
  const int steps = !strcmp(p->stage, "denoise") || !strcmp(p->stage, "text");
  return report(j, wire_stage(p->stage), steps ? p->steps_done : p->frames_done,
                steps ? p->steps_total : p->frames_total, p->fraction, p->eta_seconds, p->preview, p->preview_width,
                p->preview_height);
}

/* ---- the encode side -------------------------------------------------------------------------- */

static void enc_fail(wjob *j, reel_status st, const reel_error *err) {
  if (j->enc_st == REEL_OK) {
    j->enc_st = st;
    if (err) j->enc_err = *err;
    if (!j->enc_err.code) j->enc_err.code = st;
  }
  __atomic_store_n(&j->stop, 1, __ATOMIC_RELEASE);
}

static void enc_begin(wjob *j) {
  reel_error err;
  reel_error_clear(&err);
  reel_status st = reel_sink_open(j->url, j->w->o.sink_opts, &j->sink, &err);
  if (st == REEL_OK) {
    if (!j->sink->log) j->sink->log = j->w->log;
    int64_t t0 = reel_now_ns();
    st = reel__clip_open(&j->g, j->sink, &j->clip, &err);
    j->encode_ns += reel_now_ns() - t0;
  }
  if (st != REEL_OK) enc_fail(j, st, &err);
}

static void enc_frame(wjob *j, const uint8_t *rgb, int index) {
  if (j->enc_st != REEL_OK) return;
  if (job_canceled(j)) {
    reel_error e;
    reel_error_clear(&e);
    reel_error_set(&e, REEL_ECANCELED, "job", "canceled after %d of %d frames", index, j->res.frames);
    enc_fail(j, REEL_ECANCELED, &e);
    return;
  }
  reel_error err;
  reel_error_clear(&err);
  int64_t t0 = reel_now_ns();
  reel_status st = reel__clip_push(j->clip, rgb, (size_t)j->res.width * 3, &err);
  j->encode_ns += reel_now_ns() - t0;
  if (st != REEL_OK) {
    enc_fail(j, st, &err);
    return;
  }
  const int frames = j->res.frames;
  double base = j->model_job ? 0.75 : 0.0, span = j->model_job ? 0.23 : 0.98;
  double elapsed = (double)(reel_now_ms() - j->t_start_ms) / 1e3, fraction = base + span * (index + 1) / frames;
  double eta = fraction > 0.01 ? elapsed * (1 - fraction) / fraction : -1;
  if (report(j, "encoding", index + 1, frames, fraction, eta, NULL, 0, 0)) {
    reel_error e;
    reel_error_clear(&e);
    reel_error_set(&e, REEL_ECANCELED, "job", "canceled after %d of %d frames", index + 1, frames);
    enc_fail(j, REEL_ECANCELED, &e);
  }
}

static json_t *timings_json(const wjob *j, int64_t now_ms) {
  const reel_generate_result *r = &j->res;
  json_t *t = json_object();
  if (!t) return NULL;
  json_object_set_new(t, "total_ms", json_integer(now_ms - j->t_start_ms));
  json_object_set_new(t, "queue_ms", json_integer(j->t_start_ms - j->t_received_ms));
  if (j->model_job) {
    json_object_set_new(t, "load_ms", json_real(r->seconds_load * 1e3));
    json_object_set_new(t, "text_ms", json_real(r->seconds_text * 1e3));
    json_object_set_new(t, "denoise_ms", json_real(r->seconds_denoise * 1e3));
    json_object_set_new(t, "decode_ms", json_real(r->seconds_decode * 1e3));
    json_object_set_new(t, "model_bytes", json_integer((json_int_t)r->model_bytes));
    json_object_set_new(t, "peak_scratch_bytes", json_integer((json_int_t)r->peak_scratch_bytes));
  } else {
    json_object_set_new(t, "render_ms", json_real(r->seconds_render * 1e3));
  }
  json_object_set_new(t, "encode_ms", json_real((double)j->encode_ns / 1e6));
  json_object_set_new(t, "upload_ms", json_real((double)j->upload_ns / 1e6));
  json_object_set_new(t, "peak_rss_bytes", json_integer((json_int_t)reel__peak_rss_bytes()));
  return t;
}

static void count(reel_worker *w, int state) {
  pthread_mutex_lock(&w->mu);
  w->stats.jobs++;
  if (state == REEL_JOB_SUCCEEDED) w->stats.succeeded++;
  if (state == REEL_JOB_FAILED) w->stats.failed++;
  if (state == REEL_JOB_CANCELED) w->stats.canceled++;
  pthread_mutex_unlock(&w->mu);
}

/*
 * The broker may lease one job while this worker renders, and one more while a
 * rendered job is still being encoded and uploaded (so that the next one is
 * rendering meanwhile). Called with `delta` = +1 when a job's render ends
 * (overlap) and -1 when its encode side ends.
 */
static void adjust_credit(lane *l, int delta) {
  reel_worker *w = l->w;
  pthread_mutex_lock(&w->mu);
  l->encoding += delta;
  l->credit = w->o.no_overlap || l->encoding <= 0 ? 1 : 2;
  int want = 0;
  for (int i = 0; i < w->nlanes; i++) want += w->lanes[i].credit;
  int change = want != w->credit;
  w->credit = want;
  pthread_mutex_unlock(&w->mu);
  if (change) reel_worker_conn_set_capacity(w->conn, want);
}

static void wjob_free(wjob *j) {
  if (!j) return;
  reel__clip_destroy(&j->clip);
  reel_sink_abort(&j->sink);
  reel_jobspec_fini(&j->spec);
  reel_free(j->preview_png);
  pthread_mutex_destroy(&j->pmu);
  reel_free(j);
}

/* Sends the job's RESULT (retrying while the connector is out of memory) and frees the job. */
static void finish(wjob *j, int state, const json_t *outputs, const reel_error *failure) {
  reel_worker *w = j->w;
  reel_status st = failure ? failure->code : REEL_OK;
  int retry = state == REEL_JOB_FAILED &&
              (st == REEL_ESTORAGE || st == REEL_ENETWORK || st == REEL_EIO || st == REEL_EDEVICE);
  json_t *timings = timings_json(j, reel_now_ms());
  if (state == REEL_JOB_SUCCEEDED)
    reel_log(w->log, REEL_LOG_INFO, "worker", j->job->id, "job succeeded",
             "url=%s bytes=%llu frames=%d seconds=%.3f", j->res.url, (unsigned long long)j->res.bytes, j->res.frames,
             (double)(reel_now_ms() - j->t_start_ms) / 1e3);
  else
    reel_log_error(w->log, state == REEL_JOB_CANCELED ? REEL_LOG_INFO : REEL_LOG_WARN, "worker", j->job->id, failure);
  const int seed_set = j->spec.seed_set || j->res.seed != 0;
  reel_status fst = REEL_ENOMEM;
  for (int i = 0; i < 100 && fst == REEL_ENOMEM; i++) {
    fst = reel_worker_conn_finish(w->conn, &j->job, state, outputs, failure, retry, timings, seed_set, j->res.seed);
    if (fst == REEL_ENOMEM) reel_sleep_ms(100);
  }
  if (timings) json_decref(timings);
  count(w, state);
  wjob_free(j);
}

/* The end of a job on the encode side: commit and report, or abort and report the first failure. */
static void enc_end(wjob *j, reel_status render_st, const reel_error *render_err) {
  reel_error err;
  reel_error_clear(&err);
  reel_status st = render_st;
  if (st != REEL_OK && j->enc_st != REEL_OK && render_st == REEL_ECANCELED) {
    /* The render stopped because the encode side failed (or saw the cancel) first. */
    st = j->enc_st;
    err = j->enc_err;
  } else if (st != REEL_OK) {
    err = *render_err;
    if (!err.code) err.code = st;
  } else if (j->enc_st != REEL_OK) {
    st = j->enc_st;
    err = j->enc_err;
  }
  if (st == REEL_OK && job_canceled(j)) st = reel_error_set(&err, REEL_ECANCELED, "job", "canceled before upload");
  if (st == REEL_OK) {
    (void)report(j, "uploading", j->res.frames, j->res.frames, 0.99, -1, NULL, 0, 0);
    int64_t t0 = reel_now_ns();
    st = reel__clip_finish(j->clip, &j->res, &err);
    j->encode_ns += reel_now_ns() - t0;
    reel__clip_destroy(&j->clip);
    if (st == REEL_OK) {
      t0 = reel_now_ns();
      reel_sink_result sr;
      st = reel_sink_close(&j->sink, &sr, &err);
      j->upload_ns = reel_now_ns() - t0;
      if (st == REEL_OK) {
        j->res.seconds_commit = (double)j->upload_ns / 1e9;
        reel__gen_committed(&j->g, &sr);
      }
    }
  }
  if (st == REEL_OK) {
    json_t *outputs = json_pack("[{s:s, s:I, s:s, s:s, s:i, s:i, s:i, s:f}]", "url", j->res.url, "bytes",
                                (json_int_t)j->res.bytes, "content_type", j->content_type, "sha256", j->res.sha256,
                                "frames", j->res.frames, "width", j->res.width, "height", j->res.height, "fps",
                                j->res.fps);
    if (outputs && j->res.poster_url[0])
      json_array_append_new(outputs, json_pack("{s:s, s:s, s:i}", "url", j->res.poster_url, "kind", "poster", "frame",
                                               j->res.poster_frame));
    if (outputs && j->res.preview_url[0])
      json_array_append_new(outputs, json_pack("{s:s, s:s}", "url", j->res.preview_url, "kind", "preview"));
    finish(j, REEL_JOB_SUCCEEDED, outputs, NULL);
    if (outputs) json_decref(outputs);
    return;
  }
  reel__clip_destroy(&j->clip);
  reel_sink_abort(&j->sink);
  finish(j, st == REEL_ECANCELED && job_canceled(j) ? REEL_JOB_CANCELED : REEL_JOB_FAILED, NULL, &err);
}

/* ---- the queue -------------------------------------------------------------------------------- */

/* Appends an item; frames wait while the queue holds cap_bytes (unless it is empty). */
static reel_status enqueue(lane *l, item *it) {
  const size_t cap = l->w->cap_bytes;
  pthread_mutex_lock(&l->mu);
  if (it->kind == IT_FRAME) {
    while (l->queued_bytes > 0 && l->queued_bytes + it->bytes > cap &&
           !__atomic_load_n(&it->j->stop, __ATOMIC_ACQUIRE) && !job_canceled(it->j))
      pthread_cond_wait(&l->cv, &l->mu);
    l->queued_bytes += it->bytes;
  }
  it->next = NULL;
  if (l->tail)
    l->tail->next = it;
  else
    l->head = it;
  l->tail = it;
  pthread_cond_broadcast(&l->cv);
  pthread_mutex_unlock(&l->mu);
  return REEL_OK;
}

static void *encode_main(void *arg) {
  lane *l = arg;
  for (;;) {
    pthread_mutex_lock(&l->mu);
    while (!l->head) pthread_cond_wait(&l->cv, &l->mu);
    item *it = l->head;
    l->head = it->next;
    if (!l->head) l->tail = NULL;
    pthread_mutex_unlock(&l->mu);
    item_kind kind = it->kind;
    switch (kind) {
      case IT_BEGIN:
        enc_begin(it->j);
        break;
      case IT_FRAME:
        enc_frame(it->j, it->rgb, it->index);
        break;
      case IT_END:
        enc_end(it->j, it->st, &it->err);
        adjust_credit(l, -1);
        break;
      case IT_QUIT:
        break;
    }
    if (kind == IT_FRAME) {
      pthread_mutex_lock(&l->mu);
      l->queued_bytes -= it->bytes;
      pthread_cond_broadcast(&l->cv);
      pthread_mutex_unlock(&l->mu);
    }
    reel_free(it->rgb);
    reel_free(it);
    if (kind == IT_QUIT) return NULL;
  }
}

/* Frames of a job: copied into the queue (overlap) or straight into the encoder. */
static reel_status push_frame(void *user, const uint8_t *rgb, size_t stride, int index, reel_error *err) {
  wjob *j = user;
  reel_worker *w = j->w;
  if (__atomic_load_n(&j->stop, __ATOMIC_ACQUIRE))
    return reel_error_set(err, REEL_ECANCELED, "job", "stopped: the encoder side failed or saw a cancel");
  if (w->o.no_overlap) {
    enc_frame(j, rgb, index);
    if (j->enc_st != REEL_OK)
      return reel_error_set(err, REEL_ECANCELED, "job", "stopped: the encoder side failed or saw a cancel");
    return REEL_OK;
  }
  const size_t row = (size_t)j->res.width * 3, bytes = row * (size_t)j->res.height;
  item *it = reel_calloc(1, sizeof *it);
  uint8_t *copy = reel_malloc(bytes);
  if (!it || !copy) {
    reel_free(it);
    reel_free(copy);
    return reel_error_set(err, REEL_ENOMEM, "job", "out of memory for a %dx%d frame", j->res.width, j->res.height);
  }
  for (int y = 0; y < j->res.height; y++) memcpy(copy + (size_t)y * row, rgb + (size_t)y * stride, row);
  it->kind = IT_FRAME;
  it->j = j;
  it->rgb = copy;
  it->bytes = bytes;
  it->index = index;
  return enqueue(j->lane, it);
}

/* Hands the job's end to the encode side (or runs it here). The job belongs to the encode side afterwards. */
static void hand_over_end(wjob *j, reel_status st, const reel_error *err) {
  reel_worker *w = j->w;
  if (w->o.no_overlap) {
    enc_end(j, st, err);
    return;
  }
  item *it = reel_calloc(1, sizeof *it);
  while (!it) { /* the job must end; wait for memory rather than lose its result */
    reel_sleep_ms(50);
    it = reel_calloc(1, sizeof *it);
  }
  adjust_credit(j->lane, +1);
  it->kind = IT_END;
  it->j = j;
  it->st = st;
  if (err) it->err = *err;
  enqueue(j->lane, it);
}

static reel_status hand_over_begin(wjob *j, reel_error *err) {
  reel_worker *w = j->w;
  if (w->o.no_overlap) {
    enc_begin(j);
    return REEL_OK;
  }
  item *it = reel_calloc(1, sizeof *it);
  if (!it) return reel_error_set(err, REEL_ENOMEM, "worker", "out of memory");
  it->kind = IT_BEGIN;
  it->j = j;
  return enqueue(j->lane, it);
}

/* ---- the render side ---------------------------------------------------------------------- */

/* A job that fails before it reaches the encode side. */
static void fail_early(wjob *j, reel_status st, reel_error *err) {
  if (!err->code) err->code = st;
  finish(j, st == REEL_ECANCELED && job_canceled(j) ? REEL_JOB_CANCELED : REEL_JOB_FAILED, NULL, err);
}

static int is_served(reel_worker *w, const char *model, const char **dir) {
  for (int i = 0; i < w->o.nmodels; i++) {
    if (!strcmp(model, w->o.models[i])) {
      *dir = w->models_dirs[i];
      return 1;
    }
    const char *slash = strrchr(w->o.models[i], '/');
    if (w->models_dirs[i] && slash && !strcmp(model, slash + 1)) {
      *dir = w->models_dirs[i];
      return 1;
    }
  }
  return 0;
}

static void run_job(lane *l, reel_worker_job *job) {
  reel_worker *w = l->w;
  reel_error err;
  reel_error_clear(&err);
  wjob *j = reel_calloc(1, sizeof *j);
  if (!j) {
    reel_error_set(&err, REEL_ENOMEM, "worker", "out of memory");
    reel_worker_conn_finish(w->conn, &job, REEL_JOB_FAILED, NULL, &err, 1, NULL, 0, 0);
    count(w, REEL_JOB_FAILED);
    return;
  }
  pthread_mutex_init(&j->pmu, NULL);
  j->w = w;
  j->lane = l;
  j->job = job;
  j->t_received_ms = job->received_ms;
  j->t_start_ms = reel_now_ms();
  j->last_progress_ms = -1000000;
  reel_jobspec_init(&j->spec);
  reel_status st = reel_jobspec_copy(&j->spec, &job->spec);
  if (st == REEL_OK && !j->spec.model) st = reel_jobspec_set_str(&j->spec.model, w->o.models[0]);
  if (st != REEL_OK) {
    reel_error_set(&err, REEL_ENOMEM, "job", "out of memory");
    fail_early(j, REEL_ENOMEM, &err);
    return;
  }
  const char *dir = NULL;
  if (!is_served(w, j->spec.model, &dir)) {
    st = reel_error_set(&err, REEL_ENOTFOUND, "job.model", "'%.200s' is not served by this worker", j->spec.model);
    fail_early(j, st, &err);
    return;
  }
  if (dir && (st = reel_jobspec_set_str(&j->spec.model, dir))) {
    reel_error_set(&err, REEL_ENOMEM, "job", "out of memory");
    fail_early(j, REEL_ENOMEM, &err);
    return;
  }
  j->content_type = reel_container_content_type(j->spec.container);
  /* Side outputs (poster, animated preview) are keys under the storage root too, never paths of this machine. */
  char **side[2] = {&j->spec.poster, &j->spec.preview_anim};
  static const char *const side_field[2] = {"job.poster", "job.preview_anim"};
  for (int k = 0; k < 2; k++) {
    if (!*side[k]) continue;
    if (!valid_key(*side[k])) {
      st = reel_error_set(&err, REEL_EINVAL, side_field[k],
                          "must be a relative key under the worker's storage (no scheme, no leading '/', no '..')");
      fail_early(j, st, &err);
      return;
    }
    char url[2048];
    snprintf(url, sizeof url, "%s/%s", w->storage, *side[k]);
    if (reel_jobspec_set_str(side[k], url) != REEL_OK) {
      reel_error_set(&err, REEL_ENOMEM, "job", "out of memory");
      fail_early(j, REEL_ENOMEM, &err);
      return;
    }
  }
  if (j->spec.output) {
    if (!valid_key(j->spec.output)) {
      st = reel_error_set(&err, REEL_EINVAL, "job.output",
                          "must be a relative key under the worker's storage (no scheme, no leading '/', no '..')");
      fail_early(j, st, &err);
      return;
    }
    snprintf(j->url, sizeof j->url, "%s/%s", w->storage, j->spec.output);
  } else {
    snprintf(j->url, sizeof j->url, "%s/%s%s", w->storage, job->id, reel_container_extension(j->spec.container));
  }
  const char *urls[3] = {j->url, j->spec.poster, j->spec.preview_anim};
  for (int k = 0; k < 3; k++) {
    if (urls[k] && (st = make_key_dirs(w, urls[k], &err))) {
      fail_early(j, st, &err);
      return;
    }
  }
  reel_log(w->log, REEL_LOG_INFO, "worker", job->id, "job started", "attempt=%d model=%s url=%s", job->attempt,
           j->spec.model, j->url);
  /* The generation path's options for this job. */
  j->go.log = w->log;
  j->go.job_id = job->id;
  j->go.progress = on_progress;
  j->go.progress_user = j;
  j->go.threads = w->o.encoder_threads;
  j->go.preview_size = w->o.preview_size;
  if (w->o.test_nan_marker && w->o.test_nan_marker[0] && strstr(j->spec.prompt, w->o.test_nan_marker))
    j->go.test_nan_after_step = 1;
  j->g.spec = &j->spec;
  j->g.o = &j->go;
  j->g.res = &j->res;
  j->g.t_start = reel_now_ns();
  /* Everything before BEGIN fails the job without any compute. */
  if ((st = reel__gen_resolve(&j->g, &err))) {
    fail_early(j, st, &err);
    return;
  }
  if (!j->spec.seed_set) j->res.seed = reel__pick_seed();
  if (j->g.is_model) {
    j->model_job = 1;
    reel_model *m = NULL;
    int loaded = 0;
    (void)report(j, "loading", 0, 0, 0.0, -1, NULL, 0, 0);
    int64_t t0 = reel_now_ns();
    st = reel__model_cache_get(l->cache, j->g.model_dir, &m, &loaded, &err);
    if (st == REEL_EDEVICE) reel__model_cache_reset(l->cache);
    if (st != REEL_OK) {
      fail_early(j, st, &err);
      return;
    }
    if (loaded) {
      j->res.seconds_load = (double)(reel_now_ns() - t0) / 1e9;
      j->g.loaded = 1;
    }
    uint64_t arena = 0, scratch = 0;
    char what[96];
    if ((st = reel__gen_resolve_model(&j->g, m, &err)) || (st = reel__gen_scratch_bytes(&j->g, &arena, &scratch, &err))) {
      fail_early(j, st, &err);
      return;
    }
    snprintf(what, sizeof what, "%dx%d x %d frames", j->res.width, j->res.height, j->res.frames);
    if ((st = reel__model_cache_fit(l->cache, m, arena, scratch, what, &err))) {
      fail_early(j, st, &err);
      return;
    }
  }
  if (job_canceled(j)) {
    st = reel_error_set(&err, REEL_ECANCELED, "job", "canceled before rendering");
    fail_early(j, st, &err);
    return;
  }
  if ((st = hand_over_begin(j, &err))) {
    fail_early(j, st, &err);
    return;
  }
  /* From here the encode side owns the job's end. */
  st = reel__gen_render(&j->g, push_frame, j, &err);
  if (st == REEL_EDEVICE) reel__model_cache_reset(l->cache);
  hand_over_end(j, st, &err);
}

/* The lane's cache figures, for the stats (render thread: the cache is the lane's). */
static void cache_stats(lane *l) {
  reel__model_cache_stats cs;
  reel__model_cache_get_stats(l->cache, &cs);
  pthread_mutex_lock(&l->w->mu);
  l->cache_stats = cs;
  pthread_mutex_unlock(&l->w->mu);
}

/* A lane's render loop: jobs from the connection until stop or max_jobs. */
static void render_loop(lane *l) {
  reel_worker *w = l->w;
  for (;;) {
    if (__atomic_load_n(&w->stop, __ATOMIC_ACQUIRE)) break;
    if (w->o.max_jobs && __atomic_load_n(&w->taken, __ATOMIC_ACQUIRE) >= w->o.max_jobs) break;
    reel_worker_job *job = NULL;
    reel_error e;
    reel_error_clear(&e);
    if (reel_worker_conn_next(w->conn, 200, &job, &e) != REEL_OK) continue;
    __atomic_add_fetch(&w->taken, 1, __ATOMIC_ACQ_REL);
    run_job(l, job);
    cache_stats(l);
  }
}

static void *render_main(void *arg) {
  render_loop(arg);
  return NULL;
}

/* Stops a lane's encode thread after what it has queued. */
static void lane_quit_encoder(lane *l) {
  if (!l->enc_started) return;
  item *it = reel_calloc(1, sizeof *it);
  while (!it) {
    reel_sleep_ms(50);
    it = reel_calloc(1, sizeof *it);
  }
  it->kind = IT_QUIT;
  enqueue(l, it);
  pthread_join(l->enc_thread, NULL);
  l->enc_started = 0;
}

/* ---- lifecycle -------------------------------------------------------------------------------- */

reel_status reel_worker_new(const reel_worker_options *o, reel_worker **out, reel_error *err) {
  *out = NULL;
  if (!o) return reel_error_set(err, REEL_EINVAL, "worker", "no options");
  if (!o->storage || !o->storage[0]) return reel_error_set(err, REEL_EINVAL, "storage", "required: where clips go");
  if (strlen(o->storage) >= 1000) return reel_error_set(err, REEL_ELIMIT, "storage", "longer than 1000 bytes");
  if (o->nmodels < 0 || o->nmodels > REEL_WORKER_MAX_MODELS)
    return reel_error_set(err, REEL_ERANGE, "model", "at most %d models", REEL_WORKER_MAX_MODELS);
  if (o->nlabels < 0 || o->nlabels > REEL_WORKER_MAX_LABELS)
    return reel_error_set(err, REEL_ERANGE, "label", "at most %d labels", REEL_WORKER_MAX_LABELS);
  if (o->threads < 0 || o->threads > 1024)
    return reel_error_set(err, REEL_ERANGE, "threads", "must be in 0..1024, got %d", o->threads);
  if (o->lanes < 0 || o->lanes > REEL_WORKER_MAX_LANES)
    return reel_error_set(err, REEL_ERANGE, "capacity", "must be in 1..%d, got %d", REEL_WORKER_MAX_LANES, o->lanes);
  if (o->region && !reel_proto_is_token(o->region, 64))
    return reel_error_set(err, REEL_EINVAL, "region", "must be 1..64 printable characters");
  for (int i = 0; i < o->nlabels; i++)
    if (!reel_proto_is_token(o->labels[i], 64))
      return reel_error_set(err, REEL_EINVAL, "label", "must be 1..64 printable characters");
  reel_worker *w = reel_calloc(1, sizeof *w);
  if (!w) return reel_error_set(err, REEL_ENOMEM, "worker", "out of memory");
  w->o = *o;
  if (w->o.nmodels == 0) {
    w->o.models[0] = reel_default_model();
    w->o.nmodels = 1;
  }
  w->log = o->log;
  pthread_mutex_init(&w->mu, NULL);
  w->cap_bytes = o->queue_bytes ? o->queue_bytes : DEFAULT_QUEUE_BYTES;
  snprintf(w->storage, sizeof w->storage, "%s", o->storage);
  size_t sl = strlen(w->storage);
  while (sl > 1 && w->storage[sl - 1] == '/') w->storage[--sl] = '\0';
  reel_status st = REEL_OK;
  json_t *caps = json_object(), *jm = json_array(), *jl = json_array();
  if (!caps || !jm || !jl) {
    st = reel_error_set(err, REEL_ENOMEM, "worker", "out of memory");
    goto fail;
  }
  /* Models: resolved now (a missing folder is a job failure later, not a start-up failure). */
  for (int i = 0; i < w->o.nmodels; i++) {
    const char *name = w->o.models[i];
    if (!name || !name[0]) {
      st = reel_error_set(err, REEL_EINVAL, "model", "empty model name");
      goto fail;
    }
    if (!reel_proto_is_token(name, 1024)) {
      st = reel_error_set(err, REEL_EINVAL, "model", "'%.100s': 1..1024 printable characters without spaces", name);
      goto fail;
    }
    json_array_append_new(jm, json_string(name));
    if (strcmp(name, REEL_TESTSRC_MODEL) != 0) {
      char dir[4096];
      reel_error e;
      reel_error_clear(&e);
      if (reel_model_resolve(name, dir, sizeof dir, &e) == REEL_OK) {
        w->models_dirs[i] = reel_strdup(dir);
      } else {
        reel_log(w->log, REEL_LOG_WARN, "worker", NULL, "model folder not found: its jobs will fail", "model=%s", name);
        w->models_dirs[i] = reel_strdup(name);
      }
      if (!w->models_dirs[i]) {
        st = reel_error_set(err, REEL_ENOMEM, "worker", "out of memory");
        goto fail;
      }
      /* Jobs may also name a folder by its last component. */
      const char *slash = strrchr(name, '/');
      if (slash && slash[1]) json_array_append_new(jm, json_string(slash + 1));
    }
  }
  json_object_set_new(caps, "models", jm);
  jm = NULL;
  const char *backend = o->backend == REEL_BACKEND_CUDA ? "cuda" : "cpu";
  if (o->backend == REEL_BACKEND_AUTO && reel_backend_cuda_built()) {
    reel_error e;
    reel_error_clear(&e);
    reel_backend *probe = reel_backend_new_cuda(0, &e);
    if (probe) backend = "cuda";
    reel_backend_destroy(&probe);
  }
  json_object_set_new(caps, "backends", json_pack("[s]", backend));
  for (int i = 0; i < o->nlabels; i++) json_array_append_new(jl, json_string(o->labels[i]));
  if (o->nlabels) {
    json_object_set_new(caps, "labels", jl);
    jl = NULL;
  }
  if (o->region) json_object_set_new(caps, "region", json_string(o->region));
  if (o->max_width) json_object_set_new(caps, "max_width", json_integer(o->max_width));
  if (o->max_height) json_object_set_new(caps, "max_height", json_integer(o->max_height));
  if (o->max_frames) json_object_set_new(caps, "max_frames", json_integer(o->max_frames));
  /* Lanes: each its own model cache and backend, with a share of the threads and of the budget. */
  w->nlanes = o->lanes > 0 ? o->lanes : 1;
  w->lanes = reel_calloc((size_t)w->nlanes, sizeof *w->lanes);
  if (!w->lanes) {
    st = reel_error_set(err, REEL_ENOMEM, "worker", "out of memory");
    goto fail;
  }
  for (int i = 0; i < w->nlanes; i++) {
    lane *l = &w->lanes[i];
    l->w = w;
    l->index = i;
    l->credit = 1;
    pthread_mutex_init(&l->mu, NULL);
    pthread_cond_init(&l->cv, NULL);
    int threads = o->threads ? (o->threads / w->nlanes > 0 ? o->threads / w->nlanes : 1) : 0;
    if (!o->threads && w->nlanes > 1) {
      cpu_set_t set;
      int cpus = sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : 1;
      threads = cpus / w->nlanes > 0 ? cpus / w->nlanes : 1;
    }
    l->cache = reel__model_cache_new(!strcmp(backend, "cuda") ? REEL_BACKEND_CUDA : REEL_BACKEND_CPU, threads,
                                     o->memory_budget / (uint64_t)w->nlanes, w->log);
    if (!l->cache) {
      st = reel_error_set(err, REEL_ENOMEM, "worker", "out of memory");
      goto fail;
    }
  }
  w->credit = w->nlanes;
  reel_worker_conn_options co;
  reel_worker_conn_options_init(&co);
  co.endpoint = o->endpoint;
  co.name = o->name;
  co.capacity = w->nlanes; /* per lane: 1, or 2 while a rendered job is being encoded (adjust_credit) */
  co.capabilities = caps;
  co.heartbeat_ms = o->heartbeat_ms > 0 ? o->heartbeat_ms : 2500;
  co.log = o->log;
  co.broker_public_key = o->broker_public_key;
  co.public_key = o->public_key;
  co.secret_key = o->secret_key;
  if ((st = reel_worker_conn_new(&co, &w->conn, err))) goto fail;
  json_decref(caps);
  if (jl) json_decref(jl);
  if (o->test_nan_marker && o->test_nan_marker[0])
    reel_log(w->log, REEL_LOG_WARN, "worker", NULL, "test hook on: jobs whose prompt contains the marker get NaN latents",
             "marker=\"%s\"", o->test_nan_marker);
  *out = w;
  return REEL_OK;
fail:
  if (caps) json_decref(caps);
  if (jm) json_decref(jm);
  if (jl) json_decref(jl);
  reel_worker_destroy(&w);
  return st;
}

reel_status reel_worker_run(reel_worker *w, reel_error *err) {
  if (!w) return reel_error_set(err, REEL_EINVAL, "worker", "NULL worker");
  reel_status st = REEL_OK;
  for (int i = 0; i < w->nlanes && st == REEL_OK; i++) {
    lane *l = &w->lanes[i];
    if (!w->o.no_overlap && !l->enc_started) {
      if (pthread_create(&l->enc_thread, NULL, encode_main, l) != 0)
        st = reel_error_set(err, REEL_EINTERNAL, "worker", "cannot start an encode thread");
      else
        l->enc_started = 1;
    }
    if (st == REEL_OK && i > 0) {
      if (pthread_create(&l->render_thread, NULL, render_main, l) != 0)
        st = reel_error_set(err, REEL_EINTERNAL, "worker", "cannot start a render thread");
      else
        l->render_started = 1;
    }
  }
  if (st != REEL_OK) reel_worker_stop(w);
  else render_loop(&w->lanes[0]);
  /* The other lanes finish their job in hand; then every encode thread finishes what it has. */
  for (int i = 1; i < w->nlanes; i++) {
    if (w->lanes[i].render_started) pthread_join(w->lanes[i].render_thread, NULL);
    w->lanes[i].render_started = 0;
  }
  for (int i = 0; i < w->nlanes; i++) lane_quit_encoder(&w->lanes[i]);
  return st;
}

void reel_worker_stop(reel_worker *w) {
  if (w) __atomic_store_n(&w->stop, 1, __ATOMIC_RELEASE);
}

void reel_worker_destroy(reel_worker **pw) {
  if (!pw || !*pw) return;
  reel_worker *w = *pw;
  for (int i = 0; i < w->nlanes; i++) lane_quit_encoder(&w->lanes[i]);
  reel_worker_conn_destroy(&w->conn, 5000);
  for (int i = 0; w->lanes && i < w->nlanes; i++) {
    lane *l = &w->lanes[i];
    reel__model_cache_destroy(&l->cache);
    for (item *it = l->head, *n; it; it = n) {
      n = it->next;
      reel_free(it->rgb);
      reel_free(it);
    }
    pthread_cond_destroy(&l->cv);
    pthread_mutex_destroy(&l->mu);
  }
  reel_free(w->lanes);
  for (int i = 0; i < REEL_WORKER_MAX_MODELS; i++) reel_free(w->models_dirs[i]);
  pthread_mutex_destroy(&w->mu);
  reel_free(w);
  *pw = NULL;
}

void reel_worker_get_stats(reel_worker *w, reel_worker_stats *st) {
  memset(st, 0, sizeof *st);
  if (!w) return;
  pthread_mutex_lock(&w->mu);
  *st = w->stats;
  for (int i = 0; i < w->nlanes; i++) {
    st->models_cached += w->lanes[i].cache_stats.models;
    st->cached_bytes += w->lanes[i].cache_stats.bytes;
    st->models_loaded += w->lanes[i].cache_stats.loaded;
    st->models_evicted += w->lanes[i].cache_stats.evicted;
  }
  pthread_mutex_unlock(&w->mu);
  reel_worker_conn_stats cs;
  reel_worker_conn_get_stats(w->conn, &cs);
  st->connected = cs.connected;
}
