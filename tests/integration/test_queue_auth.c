/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Queue auth with real processes: `reel keygen` keys, a broker with --auth
 * (CURVE + ZAP allowlists), a worker with a worker key. A client with no key or
 * an unknown key cannot submit (EAUTH, nothing accepted); tenant A cannot see,
 * list or cancel tenant B's job, nor claim B's tenant; a client key may not send
 * worker commands; the allowed worker runs A's job; the CLI works with keys.
 */
#include "queue_env.h"
#include "reel/keys.h"

typedef struct {
  qenv e;
  reel_keypair broker, a, b, worker, stranger;
  char broker_pub[900], a_key[900], worker_key[900];
} afix;

static void keygen(afix *f, const char *base, reel_keypair *kp) {
  char cmd[1500], *out = NULL;
  snprintf(cmd, sizeof cmd, "'%s' keygen '%s' 2>&1", f->e.bin, base);
  int rc = tu_run(cmd, &out);
  if (rc != 0) fail_msg("reel keygen: %s", out);
  free(out);
  char path[800];
  snprintf(path, sizeof path, "%s.key", base);
  reel_error err;
  reel_error_clear(&err);
  assert_int_equal(reel_keys_load(path, 1, kp, &err), REEL_OK);
  /* The secret file is private. */
  struct stat sb;
  assert_int_equal(stat(path, &sb), 0);
  assert_int_equal(sb.st_mode & 077, 0);
}

static int setup(void **state) {
  afix *f = calloc(1, sizeof *f);
  qe_init(&f->e);
  char path[800], cmd[8192];
  snprintf(cmd, sizeof cmd, "mkdir -p '%s/clients/A' '%s/clients/B' '%s/workers' '%s/private'", f->e.keys, f->e.keys,
           f->e.keys, f->e.dir);
  assert_int_equal(system(cmd), 0);
  snprintf(path, sizeof path, "%s/broker", f->e.keys);
  keygen(f, path, &f->broker);
  snprintf(f->broker_pub, sizeof f->broker_pub, "%s/broker.pub", f->e.keys);
  snprintf(path, sizeof path, "%s/private/a", f->e.dir);
  keygen(f, path, &f->a);
  snprintf(f->a_key, sizeof f->a_key, "%s.key", path);
  snprintf(path, sizeof path, "%s/private/b", f->e.dir);
  keygen(f, path, &f->b);
  snprintf(path, sizeof path, "%s/private/w", f->e.dir);
  keygen(f, path, &f->worker);
  snprintf(f->worker_key, sizeof f->worker_key, "%s.key", path);
  snprintf(path, sizeof path, "%s/private/stranger", f->e.dir);
  keygen(f, path, &f->stranger);
  /* Allowlists: a.pub for tenant A, b.pub for tenant B, w.pub for workers. */
  snprintf(cmd, sizeof cmd,
           "cp '%s/private/a.pub' '%s/clients/A/' && cp '%s/private/b.pub' '%s/clients/B/' && "
           "cp '%s/private/w.pub' '%s/workers/'",
           f->e.dir, f->e.keys, f->e.dir, f->e.keys, f->e.dir, f->e.keys);
  assert_int_equal(system(cmd), 0);
  f->e.broker_extra[0] = "--auth";
  f->e.broker_extra[1] = f->e.keys;
  qe_start_broker(&f->e);
  *state = f;
  return 0;
}

static int teardown(void **state) {
  afix *f = *state;
  qe_fini(&f->e);
  free(f);
  return 0;
}

static reel_client *client_as(afix *f, const reel_keypair *kp) {
  return qe_client_keys(&f->e, NULL, f->broker.public_key, kp->public_key, kp->secret_key);
}

static reel_status try_submit(reel_client *c, reel_error *err) {
  json_t *spec = json_pack("{s:s, s:i, s:i, s:i}", "prompt", "x", "frames", 4, "width", 32, "height", 32);
  json_t *acc = NULL;
  reel_status st = reel_client_submit(c, spec, &acc, err);
  json_decref(spec);
  if (acc) json_decref(acc);
  return st;
}

static void test_unauthenticated_cannot_submit(void **state) {
  afix *f = *state;
  reel_error err;
  /* No CURVE at all. */
  reel_client *c = qe_client(&f->e, NULL);
  reel_error_clear(&err);
  assert_int_equal(try_submit(c, &err), REEL_EAUTH);
  reel_client_destroy(&c);
  /* CURVE with a key that is not on the allowlist. */
  c = client_as(f, &f->stranger);
  reel_error_clear(&err);
  assert_int_equal(try_submit(c, &err), REEL_EAUTH);
  assert_non_null(strstr(err.msg, "refused"));
  reel_client_destroy(&c);
  /* Nothing was accepted. */
  c = client_as(f, &f->a);
  json_t *reply = NULL;
  reel_error_clear(&err);
  assert_int_equal(reel_client_request(c, "STATS", NULL, &reply, &err), REEL_OK);
  assert_int_equal(json_integer_value(json_object_get(reply, "jobs")), 0);
  json_decref(reply);
  reel_client_destroy(&c);
}

static void test_tenant_isolation(void **state) {
  afix *f = *state;
  reel_client *a = client_as(f, &f->a), *b = client_as(f, &f->b);
  char *ja = qe_submit(a, "{\"prompt\":\"a's job\",\"frames\":4,\"width\":32,\"height\":32}");
  char *jb = qe_submit(b, "{\"prompt\":\"b's job\",\"frames\":4,\"width\":32,\"height\":32}");
  reel_error err;
  reel_error_clear(&err);
  json_t *job = NULL;
  /* A sees its own job, as tenant A. */
  job = qe_status(a, ja);
  assert_string_equal(json_string_value(json_object_get(job, "tenant")), "A");
  json_decref(job);
  /* ...but not B's: status, cancel and follow say "not found". */
  assert_int_equal(reel_client_status(a, jb, &job, &err), REEL_ENOTFOUND);
  reel_error_clear(&err);
  assert_int_equal(reel_client_cancel(a, jb, NULL, &err), REEL_ENOTFOUND);
  reel_error_clear(&err);
  assert_int_equal(reel_client_follow(a, jb, NULL, &err), REEL_ENOTFOUND);
  job = qe_status(b, jb);
  assert_string_equal(qe_state(job), "queued"); /* still there, not canceled */
  json_decref(job);
  /* LIST shows only the caller's jobs. */
  json_t *list = NULL;
  reel_error_clear(&err);
  assert_int_equal(reel_client_list(a, NULL, 0, NULL, &list, &err), REEL_OK);
  assert_int_equal(json_array_size(json_object_get(list, "jobs")), 1);
  assert_string_equal(json_string_value(json_object_get(json_array_get(json_object_get(list, "jobs"), 0), "id")), ja);
  json_decref(list);
  /* A cannot act as B by claiming the tenant. */
  json_t *h = json_pack("{s:s, s:s}", "job_id", jb, "tenant", "B");
  json_t *reply = NULL;
  reel_error_clear(&err);
  assert_int_equal(reel_client_request(a, "STATUS", h, &reply, &err), REEL_EAUTH);
  assert_string_equal(err.field, "tenant");
  json_decref(h);
  /* A client key may not speak as a worker. */
  h = json_pack("{s:s, s:i}", "worker", "impostor", "capacity", 1);
  reel_error_clear(&err);
  assert_int_equal(reel_client_request(a, "READY", h, &reply, &err), REEL_EAUTH);
  json_decref(h);
  /* B cancels its own job. */
  reel_error_clear(&err);
  assert_int_equal(reel_client_cancel(b, jb, &job, &err), REEL_OK);
  assert_string_equal(qe_state(job), "canceled");
  json_decref(job);
  /* The allowed worker runs A's job. */
  qe_start_worker(&f->e, "keyed", "--key", f->worker_key, "--broker-key", f->broker_pub, NULL);
  job = qe_wait_state(a, ja, NULL, 30000);
  assert_string_equal(qe_state(job), "succeeded");
  json_decref(job);
  /* The CLI with keys. */
  char cmd[2500], *out = NULL;
  snprintf(cmd, sizeof cmd,
           "'%s' submit --broker %s --key '%s' --broker-key '%s' --wait --json --frames 4 --size 32x32 via-cli",
           f->e.bin, f->e.endpoint, f->a_key, f->broker_pub);
  assert_int_equal(tu_run(cmd, &out), 0);
  json_error_t je;
  json_t *rec = json_loads(out, 0, &je);
  assert_non_null(rec);
  assert_string_equal(qe_state(rec), "succeeded");
  assert_string_equal(json_string_value(json_object_get(rec, "tenant")), "A");
  json_decref(rec);
  free(out);
  /* And without a key the CLI fails with EAUTH. */
  snprintf(cmd, sizeof cmd, "'%s' submit --broker %s --timeout 5 x 2>&1", f->e.bin, f->e.endpoint);
  assert_int_equal(tu_run(cmd, &out), 1);
  assert_non_null(strstr(out, "EAUTH"));
  free(out);
  free(ja);
  free(jb);
  reel_client_destroy(&a);
  reel_client_destroy(&b);
}

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_unauthenticated_cannot_submit, setup, teardown),
      cmocka_unit_test_setup_teardown(test_tenant_isolation, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
