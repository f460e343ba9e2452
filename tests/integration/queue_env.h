/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Helpers for the queue integration tests: start and kill real `reel broker` and
 * `reel worker` processes on loopback, connect the C client, wait for job states.
 * Header-only (static functions) so that each test program stays one file.
 * Heartbeats are short (250 ms × 3, or qenv.heartbeat) so that lost peers are noticed in well under a second.
 */
#ifndef REEL_TESTS_QUEUE_ENV_H
#define REEL_TESTS_QUEUE_ENV_H

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "reel/client.h"
#include "reel/clock.h"
#include "reel/protocol.h"
#include "testutil.h"

/* Short enough that lost peers are noticed within a second, long enough for a loaded 2-core machine. */
#define QE_HEARTBEAT   "250"
#define QE_MAX_WORKERS 16

typedef struct qenv {
  char dir[512];
  const char *bin;
  char endpoint[256];
  char journal[600], storage[600], keys[600];
  pid_t broker;
  pid_t workers[QE_MAX_WORKERS];
  char worker_names[QE_MAX_WORKERS][32];
  int nworkers;
  int nstarts;
  const char *broker_extra[16]; /* extra broker arguments (NULL-terminated) */
  const char *heartbeat;        /* broker --heartbeat-ms; NULL = QE_HEARTBEAT */
} qenv;

static inline void qe_init(qenv *e) {
  memset(e, 0, sizeof *e);
  e->bin = getenv("REEL_BIN");
  if (!e->bin || !e->bin[0]) fail_msg("REEL_BIN is not set (CMake sets it to the built reel binary)");
  tu_mkdtemp(e->dir, sizeof e->dir);
  snprintf(e->journal, sizeof e->journal, "%s/journal", e->dir);
  snprintf(e->storage, sizeof e->storage, "%s/out", e->dir);
  snprintf(e->keys, sizeof e->keys, "%s/keys", e->dir);
}

/* Starts a process with stdout+stderr appended to DIR/<log>. argv[0] is the program. */
static inline pid_t qe_spawn(qenv *e, const char *log, char *const argv[]) {
  char path[700];
  snprintf(path, sizeof path, "%s/%s", e->dir, log);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
      dup2(fd, 1);
      dup2(fd, 2);
      close(fd);
    }
    int nul = open("/dev/null", O_RDONLY);
    if (nul >= 0) dup2(nul, 0);
    execv(argv[0], argv);
    _exit(127);
  }
  return pid;
}

static inline void qe_reap(pid_t pid, int sig) {
  if (pid <= 0) return;
  kill(pid, sig);
  int status;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
}

/* Starts the broker; the first start binds a free port and later starts reuse it. */
static inline void qe_start_broker(qenv *e) {
  char epfile[700], listen[300];
  snprintf(epfile, sizeof epfile, "%s/endpoint", e->dir);
  unlink(epfile);
  snprintf(listen, sizeof listen, "%s", e->endpoint[0] ? e->endpoint : "tcp://127.0.0.1:*");
  char *argv[48];
  int n = 0;
  argv[n++] = (char *)e->bin;
  argv[n++] = "broker";
  argv[n++] = "--listen";
  argv[n++] = listen;
  argv[n++] = "--journal";
  argv[n++] = e->journal;
  argv[n++] = "--endpoint-file";
  argv[n++] = epfile;
  argv[n++] = "--heartbeat-ms";
  argv[n++] = (char *)(e->heartbeat ? e->heartbeat : QE_HEARTBEAT);
  argv[n++] = "-v";
  for (int i = 0; e->broker_extra[i] && n < 46; i++) argv[n++] = (char *)e->broker_extra[i];
  argv[n] = NULL;
  e->broker = qe_spawn(e, "broker.log", argv);
  e->nstarts++;
  /* Wait for the endpoint file (the broker writes it once bound). */
  for (int i = 0; i < 500; i++) {
    char *s = tu_read_file(epfile, NULL);
    if (s && strchr(s, '\n')) {
      *strchr(s, '\n') = '\0';
      snprintf(e->endpoint, sizeof e->endpoint, "%s", s);
      free(s);
      return;
    }
    free(s);
    int status;
    if (waitpid(e->broker, &status, WNOHANG) == e->broker) {
      char log[700];
      snprintf(log, sizeof log, "%s/broker.log", e->dir);
      char *text = tu_read_file(log, NULL);
      fail_msg("the broker exited at start: %s", text ? text : "");
    }
    reel_sleep_ms(10);
  }
  fail_msg("the broker did not start");
}

/* Starts `reel worker` named `name` with extra arguments (NULL-terminated list). Returns its slot. */
static inline int qe_start_worker(qenv *e, const char *name, ...) {
  assert_true(e->nworkers < QE_MAX_WORKERS);
  char storage[700], log[64];
  snprintf(storage, sizeof storage, "file://%s", e->storage);
  snprintf(log, sizeof log, "worker-%s.log", name);
  char *argv[48];
  int n = 0;
  argv[n++] = (char *)e->bin;
  argv[n++] = "worker";
  argv[n++] = "--broker";
  argv[n++] = e->endpoint;
  argv[n++] = "--storage";
  argv[n++] = storage;
  argv[n++] = "--name";
  argv[n++] = (char *)name;
  argv[n++] = "--heartbeat-ms";
  argv[n++] = QE_HEARTBEAT;
  argv[n++] = "-v";
  /* The queue tests run the test pattern; a --model among the extra arguments adds to it. */
  argv[n++] = "--model";
  argv[n++] = "builtin:testsrc";
  va_list ap;
  va_start(ap, name);
  const char *a;
  while ((a = va_arg(ap, const char *)) && n < 46) argv[n++] = (char *)a;
  va_end(ap);
  argv[n] = NULL;
  int slot = e->nworkers++;
  snprintf(e->worker_names[slot], sizeof e->worker_names[slot], "%s", name);
  e->workers[slot] = qe_spawn(e, log, argv);
  return slot;
}

static inline void qe_kill_worker(qenv *e, int slot, int sig) {
  qe_reap(e->workers[slot], sig);
  e->workers[slot] = 0;
}

static inline void qe_kill_broker(qenv *e, int sig) {
  qe_reap(e->broker, sig);
  e->broker = 0;
}

static inline void qe_fini(qenv *e) {
  for (int i = 0; i < e->nworkers; i++) qe_reap(e->workers[i], SIGKILL);
  qe_reap(e->broker, SIGKILL);
  if (!getenv("REEL_KEEP_TEST_DIR")) tu_rmtree(e->dir);
}

/* A client with short heartbeats; `tenant` may be NULL. Keys (Z85) may be NULL. */
static inline reel_client *qe_client_keys(qenv *e, const char *tenant, const char *server_key, const char *pub,
                                          const char *sec) {
  reel_client_options o;
  reel_client_options_init(&o);
  o.endpoint = e->endpoint;
  o.tenant = tenant;
  o.heartbeat_ms = 250;
  o.timeout_ms = 20000;
  o.broker_public_key = server_key;
  o.public_key = pub;
  o.secret_key = sec;
  reel_client *c = NULL;
  reel_error err;
  reel_error_clear(&err);
  if (reel_client_new(&o, &c, &err) != REEL_OK) fail_msg("client: %s: %s", err.field, err.msg);
  return c;
}

static inline reel_client *qe_client(qenv *e, const char *tenant) {
  return qe_client_keys(e, tenant, NULL, NULL, NULL);
}

/* Submits a spec given as JSON text; returns the job id (malloc'd). */
static inline char *qe_submit(reel_client *c, const char *spec_json) {
  json_error_t je;
  json_t *spec = json_loads(spec_json, 0, &je);
  assert_non_null(spec);
  json_t *acc = NULL;
  reel_error err;
  reel_error_clear(&err);
  reel_status st = reel_client_submit(c, spec, &acc, &err);
  json_decref(spec);
  if (st) fail_msg("submit: %s: %s (%s)", err.field, err.msg, reel_status_name(st));
  char *id = strdup(json_string_value(json_object_get(acc, "job_id")));
  json_decref(acc);
  return id;
}

/* STATUS; fails the test on error. Caller owns the record. */
static inline json_t *qe_status(reel_client *c, const char *id) {
  json_t *job = NULL;
  reel_error err;
  reel_error_clear(&err);
  reel_status st = reel_client_status(c, id, &job, &err);
  if (st) fail_msg("status %s: %s: %s (%s)", id, err.field, err.msg, reel_status_name(st));
  return job;
}

static inline const char *qe_state(const json_t *job) { return json_string_value(json_object_get(job, "state")); }

/* Polls STATUS until the job's state is `want` (or any terminal state when want is NULL). */
static inline json_t *qe_wait_state(reel_client *c, const char *id, const char *want, int64_t timeout_ms) {
  int64_t until = reel_now_ms() + timeout_ms;
  for (;;) {
    json_t *job = qe_status(c, id);
    const char *s = qe_state(job);
    int idx = reel_name_index(reel_job_state_names, s);
    if (want ? !strcmp(s, want) : reel_job_state_terminal((reel_job_state)idx)) return job;
    if (reel_now_ms() > until)
      fail_msg("job %s is %s, waited %lld ms for %s", id, s, (long long)timeout_ms, want ? want : "a terminal state");
    json_decref(job);
    reel_sleep_ms(20);
  }
}

#endif
