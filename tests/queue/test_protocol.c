/* SPDX-License-Identifier: Apache-2.0 */
/* Frame codec: every rejection names its field and limit; valid messages decode exactly. */
#include <string.h>

#include "reel/protocol.h"
#include "testutil.h"

static reel_frame fr(const char *s) {
  reel_frame f = {s, strlen(s)};
  return f;
}

static reel_status decode3(const char *p, const char *c, const char *h, reel_msg *m, reel_error *err) {
  reel_frame f[3] = {fr(p), fr(c), fr(h)};
  return reel_proto_decode(f, 3, NULL, m, err);
}

static void test_valid(void **state) {
  (void)state;
  reel_msg m;
  reel_msg_init(&m);
  reel_error err;
  reel_error_clear(&err);
  assert_int_equal(decode3("reel/1", "SUBMIT", "{\"req\":7,\"job\":{\"prompt\":\"x\"}}", &m, &err), REEL_OK);
  assert_int_equal(m.cmd, REEL_CMD_SUBMIT);
  assert_string_equal(m.command, "SUBMIT");
  assert_int_equal(json_integer_value(json_object_get(m.header, "req")), 7);
  assert_false(m.has_payload);
  /* With a payload. */
  reel_frame f[4] = {fr("reel/1"), fr("PROGRESS"), fr("{}"), {"\x00\x01\x02", 3}};
  assert_int_equal(reel_proto_decode(f, 4, NULL, &m, &err), REEL_OK);
  assert_int_equal(m.cmd, REEL_CMD_PROGRESS);
  assert_true(m.has_payload);
  assert_int_equal(m.payload_size, 3);
  assert_memory_equal(m.payload, "\x00\x01\x02", 3);
  reel_msg_fini(&m);
  assert_null(m.header);
}

static void expect(const reel_frame *f, size_t n, const reel_proto_limits *lim, reel_status code, const char *field,
                   const char *needle) {
  reel_msg m;
  reel_msg_init(&m);
  reel_error err;
  reel_error_clear(&err);
  assert_int_equal(reel_proto_decode(f, n, lim, &m, &err), code);
  assert_string_equal(err.field, field);
  if (needle && !strstr(err.msg, needle)) fail_msg("message '%s' lacks '%s'", err.msg, needle);
  reel_msg_fini(&m);
}

static void test_rejections(void **state) {
  (void)state;
  reel_frame two[2] = {fr("reel/1"), fr("PING")};
  expect(two, 2, NULL, REEL_EPROTO, "frames", "got 2");
  reel_frame five[5] = {fr("reel/1"), fr("PING"), fr("{}"), fr(""), fr("")};
  expect(five, 5, NULL, REEL_EPROTO, "frames", "got 5");
  reel_frame f[4] = {fr("MDPC02"), fr("PING"), fr("{}"), fr("")};
  expect(f, 3, NULL, REEL_EPROTO, "protocol", "MDPC02");
  f[0] = fr("reel/2");
  expect(f, 3, NULL, REEL_EPROTO, "version", "\"2\"");
  f[0] = fr("reel/10");
  expect(f, 3, NULL, REEL_EPROTO, "version", NULL);
  f[0] = fr("reel/1");
  f[1] = fr("ping");
  expect(f, 3, NULL, REEL_EPROTO, "command", "upper-case");
  f[1] = fr("");
  expect(f, 3, NULL, REEL_EPROTO, "command", "1..16");
  f[1] = fr("ABCDEFGHIJKLMNOPQ");
  expect(f, 3, NULL, REEL_EPROTO, "command", "got 17");
  f[1] = fr("PING");
  f[2] = fr("[1,2]");
  expect(f, 3, NULL, REEL_EFORMAT, "header", "object");
  f[2] = fr("{\"a\":");
  expect(f, 3, NULL, REEL_EFORMAT, "header", "invalid JSON");
  f[2] = fr("{\"a\":1,\"a\":2}");
  expect(f, 3, NULL, REEL_EFORMAT, "header", NULL);
  f[2] = fr("");
  expect(f, 3, NULL, REEL_EFORMAT, "header", NULL);
  f[2] = fr("{\"s\":\"\xff\xfe\"}");
  expect(f, 3, NULL, REEL_EFORMAT, "header", NULL);
  reel_proto_limits lim = {16, 4};
  f[2] = fr("{\"aaaaaaaaaaaaaaaa\":1}");
  expect(f, 3, &lim, REEL_ELIMIT, "header", "limit 16");
  f[2] = fr("{}");
  f[3] = fr("12345");
  expect(f, 4, &lim, REEL_ELIMIT, "payload", "limit 4");
  f[1] = fr("FROB");
  expect(f, 3, NULL, REEL_EUNSUPPORTED, "command", "FROB");
}

static void test_unknown_keeps_header(void **state) {
  (void)state;
  reel_msg m;
  reel_msg_init(&m);
  reel_error err;
  reel_error_clear(&err);
  assert_int_equal(decode3("reel/1", "FROB", "{\"req\":\"r1\"}", &m, &err), REEL_EUNSUPPORTED);
  assert_non_null(m.header);
  const json_t *req = NULL;
  assert_int_equal(reel_proto_get_req(m.header, &req, &err), REEL_OK);
  assert_string_equal(json_string_value(req), "r1");
  json_t *eh = reel_proto_error_header(req, &err);
  assert_string_equal(json_string_value(json_object_get(eh, "code")), "EUNSUPPORTED");
  assert_int_equal(json_integer_value(json_object_get(eh, "status")), REEL_EUNSUPPORTED);
  assert_string_equal(json_string_value(json_object_get(eh, "req")), "r1");
  assert_string_equal(json_string_value(json_object_get(eh, "field")), "command");
  reel_error back;
  reel_error_clear(&back);
  assert_int_equal(reel_proto_error_from_header(eh, &back), REEL_EUNSUPPORTED);
  assert_string_equal(back.field, "command");
  assert_string_equal(back.msg, err.msg);
  json_decref(eh);
  reel_msg_fini(&m);
}

static void test_version_error_lists_versions(void **state) {
  (void)state;
  reel_error err;
  reel_error_clear(&err);
  reel_error_set(&err, REEL_EPROTO, "version", "nope");
  json_t *eh = reel_proto_error_header(NULL, &err);
  json_t *v = json_object_get(eh, "versions");
  assert_true(json_is_array(v));
  assert_int_equal(json_integer_value(json_array_get(v, 0)), 1);
  assert_null(json_object_get(eh, "req"));
  json_decref(eh);
}

static void test_req_validation(void **state) {
  (void)state;
  reel_error err;
  reel_error_clear(&err);
  json_t *h = json_pack("{s:[i]}", "req", 1);
  const json_t *req = NULL;
  assert_int_equal(reel_proto_get_req(h, &req, &err), REEL_EINVAL);
  assert_string_equal(err.field, "req");
  json_decref(h);
  char long_req[100];
  memset(long_req, 'a', 99);
  long_req[99] = 0;
  h = json_pack("{s:s}", "req", long_req);
  reel_error_clear(&err);
  assert_int_equal(reel_proto_get_req(h, &req, &err), REEL_EINVAL);
  json_decref(h);
}

static void test_submit_spec(void **state) {
  (void)state;
  reel_error err;
  reel_error_clear(&err);
  reel_jobspec s;
  reel_jobspec_init(&s);
  json_t *h = json_pack("{s:{s:s,s:i}}", "job", "prompt", "hello", "frames", 5000);
  assert_int_equal(reel_proto_decode_submit(h, NULL, &s, &err), REEL_ERANGE);
  assert_string_equal(err.field, "job.frames");
  json_decref(h);
  h = json_pack("{s:s}", "job", "x");
  reel_error_clear(&err);
  assert_int_equal(reel_proto_decode_submit(h, NULL, &s, &err), REEL_EINVAL);
  assert_string_equal(err.field, "job");
  json_decref(h);
  h = json_pack("{}");
  reel_error_clear(&err);
  assert_int_equal(reel_proto_decode_submit(h, NULL, &s, &err), REEL_EINVAL);
  json_decref(h);
  h = json_pack("{s:{s:s,s:i}}", "job", "prompt", "hello", "frames", 8);
  reel_error_clear(&err);
  assert_int_equal(reel_proto_decode_submit(h, NULL, &s, &err), REEL_OK);
  assert_string_equal(s.prompt, "hello");
  assert_int_equal(s.frames, 8);
  json_decref(h);
  reel_jobspec_fini(&s);
}

static void test_names(void **state) {
  (void)state;
  assert_string_equal(reel_proto_command_name(REEL_CMD_SUBMIT), "SUBMIT");
  assert_string_equal(reel_proto_command_name(REEL_CMD_COUNT), "UNKNOWN");
  assert_int_equal(reel_proto_command_lookup("DISCONNECT", 10), REEL_CMD_DISCONNECT);
  assert_int_equal(reel_proto_command_lookup("DISCONNEC", 9), REEL_CMD_UNKNOWN);
  assert_true(reel_proto_is_token("gpu-07", 64));
  assert_false(reel_proto_is_token("a b", 64));
  assert_false(reel_proto_is_token("", 64));
  assert_false(reel_proto_is_token("abcdef", 5));
  assert_true(reel_job_state_terminal(REEL_JOB_EXPIRED));
  assert_false(reel_job_state_terminal(REEL_JOB_RUNNING));
  assert_string_equal(reel_job_state_names[REEL_JOB_CANCELED], "canceled");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_valid),
      cmocka_unit_test(test_rejections),
      cmocka_unit_test(test_unknown_keeps_header),
      cmocka_unit_test(test_version_error_lists_versions),
      cmocka_unit_test(test_req_validation),
      cmocka_unit_test(test_submit_spec),
      cmocka_unit_test(test_names),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
