/* SPDX-License-Identifier: Apache-2.0 */
/* Job spec parsing and validation, round trip through JSON, allocation failures. */
#include <string.h>

#include "reel/alloc.h"
#include "reel/jobspec.h"
#include "testutil.h"

static reel_status parse_spec(const char *text, reel_jobspec *spec, reel_error *err) {
  json_t *o = NULL;
  reel_status st = reel_json_parse(text, strlen(text), "job", &o, err);
  if (st) return st;
  st = reel_jobspec_from_json(o, "job", NULL, spec, err);
  json_decref(o);
  return st;
}

static void test_full_spec(void **state) {
  (void)state;
  reel_jobspec s;
  reel_jobspec_init(&s);
  reel_error err;
  reel_error_clear(&err);
  const char *text = "{\"prompt\":\"a red circle\",\"model\":\"wan\",\"width\":832,\"height\":480,\"frames\":81,"
                     "\"fps\":16,\"steps\":30,\"guidance\":5.0,\"shift\":3.0,\"sampler\":\"euler\",\"seed\":42,"
                     "\"codec\":\"hevc\",\"container\":\"mkv\",\"crf\":20,\"class\":\"batch\",\"priority\":3,"
                     "\"idempotency_key\":\"k-1\",\"region\":\"eu-west\",\"deadline_ms\":60000}";
  assert_int_equal(parse_spec(text, &s, &err), REEL_OK);
  assert_string_equal(s.prompt, "a red circle");
  assert_int_equal(s.width, 832);
  assert_int_equal(s.frames, 81);
  assert_int_equal(s.sampler, REEL_SAMPLER_EULER);
  assert_int_equal(s.codec, REEL_CODEC_HEVC);
  assert_int_equal(s.job_class, REEL_CLASS_BATCH);
  assert_true(s.seed_set && s.seed == 42);
  /* Round trip. */
  json_t *o = reel_jobspec_to_json(&s);
  reel_jobspec t;
  reel_jobspec_init(&t);
  assert_int_equal(reel_jobspec_from_json(o, "job", NULL, &t, &err), REEL_OK);
  json_decref(o);
  assert_string_equal(t.region, "eu-west");
  assert_int_equal(t.deadline_ms, 60000);
  assert_true(t.guidance == 5.0 && t.shift == 3.0);
  reel_jobspec_fini(&t);
  reel_jobspec_fini(&s);
}

/* The encoder fields: bit rate instead of CRF, through JSON and back. */
static void test_encoder_fields_round_trip(void **state) {
  (void)state;
  reel_jobspec s, t;
  reel_jobspec_init(&s);
  reel_jobspec_init(&t);
  reel_error err;
  reel_error_clear(&err);
  assert_int_equal(parse_spec("{\"prompt\":\"p\",\"codec\":\"vp9\",\"container\":\"webm\",\"bitrate\":2500}", &s, &err),
                   REEL_OK);
  assert_int_equal(s.bitrate, 2500);
  assert_int_equal(s.crf, -1);
  json_t *o = reel_jobspec_to_json(&s);
  assert_int_equal(json_integer_value(json_object_get(o, "bitrate")), 2500);
  assert_null(json_object_get(o, "crf"));
  assert_int_equal(reel_jobspec_from_json(o, "job", NULL, &t, &err), REEL_OK);
  json_decref(o);
  assert_int_equal(t.bitrate, 2500);
  assert_int_equal(t.codec, REEL_CODEC_VP9);
  assert_int_equal(t.container, REEL_CONTAINER_WEBM);
  /* Unset, it stays out of the JSON. */
  s.bitrate = 0;
  o = reel_jobspec_to_json(&s);
  assert_null(json_object_get(o, "bitrate"));
  assert_null(json_object_get(o, "poster"));
  assert_null(json_object_get(o, "poster_frame"));
  assert_null(json_object_get(o, "preview_anim"));
  json_decref(o);
  /* Poster and animated preview. */
  reel_jobspec_fini(&s);
  assert_int_equal(s.poster_frame, -1);
  assert_int_equal(parse_spec("{\"prompt\":\"p\",\"frames\":48,\"poster\":\"s3://b/clip.jpg\",\"poster_frame\":47,"
                              "\"preview_anim\":\"clip.GIF\"}",
                              &s, &err),
                   REEL_OK);
  o = reel_jobspec_to_json(&s);
  reel_jobspec_fini(&t);
  assert_int_equal(reel_jobspec_from_json(o, "job", NULL, &t, &err), REEL_OK);
  json_decref(o);
  assert_string_equal(t.poster, "s3://b/clip.jpg");
  assert_int_equal(t.poster_frame, 47);
  assert_string_equal(t.preview_anim, "clip.GIF");
  /* and a copy */
  reel_jobspec u;
  reel_jobspec_init(&u);
  assert_int_equal(reel_jobspec_copy(&u, &t), REEL_OK);
  assert_string_equal(u.poster, "s3://b/clip.jpg");
  assert_string_equal(u.preview_anim, "clip.GIF");
  assert_int_equal(u.poster_frame, 47);
  reel_jobspec_fini(&u);
  reel_jobspec_fini(&t);
  reel_jobspec_fini(&s);
}

static void expect_error(const char *text, reel_status code, const char *field) {
  reel_jobspec s;
  reel_jobspec_init(&s);
  reel_error err;
  reel_error_clear(&err);
  assert_int_equal(parse_spec(text, &s, &err), code);
  assert_string_equal(err.field, field);
  assert_null(s.prompt);
  reel_jobspec_fini(&s);
}

static void test_rejections(void **state) {
  (void)state;
  expect_error("{}", REEL_EINVAL, "job.prompt");
  expect_error("{\"prompt\":\"x\",\"frames\":5000}", REEL_ERANGE, "job.frames");
  expect_error("{\"prompt\":\"x\",\"frames\":\"ten\"}", REEL_EINVAL, "job.frames");
  expect_error("{\"prompt\":\"x\",\"width\":33}", REEL_EINVAL, "job.width");
  expect_error("{\"prompt\":\"x\",\"sampler\":\"magic\"}", REEL_EINVAL, "job.sampler");
  expect_error("{\"prompt\":\"x\",\"bogus\":1}", REEL_EINVAL, "job.bogus");
  expect_error("{\"prompt\":\"x\",\"seed\":-1}", REEL_EINVAL, "job.seed");
  expect_error("{\"prompt\":\"x\",\"codec\":\"h264\",\"container\":\"webm\"}", REEL_EINVAL, "job.container");
  expect_error("{\"prompt\":\"x\",\"region\":\"eu west\"}", REEL_EINVAL, "job.region");
  expect_error("{\"prompt\":\"x\",\"fps\":0.5}", REEL_ERANGE, "job.fps");
  expect_error("{\"prompt\":\"x\",\"bitrate\":0}", REEL_ERANGE, "job.bitrate");
  expect_error("{\"prompt\":\"x\",\"bitrate\":1000001}", REEL_ERANGE, "job.bitrate");
  expect_error("{\"prompt\":\"x\",\"bitrate\":800,\"crf\":20}", REEL_EINVAL, "job.bitrate");
  expect_error("{\"prompt\":\"x\",\"poster\":\"p.bmp\"}", REEL_EINVAL, "job.poster");
  expect_error("{\"prompt\":\"x\",\"poster\":\"dir.png/clip\"}", REEL_EINVAL, "job.poster");
  expect_error("{\"prompt\":\"x\",\"poster\":\"\"}", REEL_EINVAL, "job.poster");
  expect_error("{\"prompt\":\"x\",\"poster\":7}", REEL_EINVAL, "job.poster");
  expect_error("{\"prompt\":\"x\",\"preview_anim\":\"p.mp4\"}", REEL_EINVAL, "job.preview_anim");
  expect_error("{\"prompt\":\"x\",\"poster\":\"p.png\",\"poster_frame\":-1}", REEL_ERANGE, "job.poster_frame");
  expect_error("{\"prompt\":\"x\",\"poster\":\"p.png\",\"poster_frame\":1025}", REEL_ERANGE,
               "job.poster_frame");
  expect_error("{\"prompt\":\"x\",\"poster_frame\":3}", REEL_EINVAL, "job.poster_frame");
  expect_error("{\"prompt\":\"x\",\"frames\":10,\"poster\":\"p.png\",\"poster_frame\":10}", REEL_ERANGE,
               "job.poster_frame");
  expect_error("{\"prompt\":\"a\\u0000b\"}", REEL_EINVAL, "job.prompt");
  char big[9000 + 32];
  strcpy(big, "{\"prompt\":\"");
  memset(big + 11, 'a', 9000);
  strcpy(big + 11 + 9000, "\"}");
  expect_error(big, REEL_ELIMIT, "job.prompt");
}

static void test_alloc_failures_do_not_leak(void **state) {
  (void)state;
  const char *text = "{\"prompt\":\"p\",\"negative_prompt\":\"n\",\"model\":\"m\",\"output\":\"o\",\"preset\":\"fast\","
                     "\"poster\":\"p.png\",\"preview_anim\":\"p.gif\"}";
  for (long i = 0; i < 16; i++) {
    reel_jobspec s;
    reel_jobspec_init(&s);
    json_t *o = NULL;
    assert_int_equal(reel_json_parse(text, strlen(text), "job", &o, NULL), REEL_OK);
    reel_alloc_fail_after(i, 0);
    reel_status st = reel_jobspec_from_json(o, "job", NULL, &s, NULL);
    reel_alloc_fail_after(-1, 0);
    assert_true(st == REEL_OK || st == REEL_ENOMEM);
    if (st == REEL_OK) assert_string_equal(s.preset, "fast");
    reel_jobspec_fini(&s);
    json_decref(o);
  }
}

static void test_parse_size(void **state) {
  (void)state;
  int w, h;
  assert_int_equal(reel_parse_size("832x480", &w, &h), REEL_OK);
  assert_int_equal(w, 832);
  assert_int_equal(h, 480);
  assert_int_equal(reel_parse_size("832", &w, &h), REEL_EINVAL);
  assert_int_equal(reel_parse_size("0x4", &w, &h), REEL_EINVAL);
  assert_int_equal(reel_parse_size("8x4junk", &w, &h), REEL_EINVAL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_full_spec),
      cmocka_unit_test(test_encoder_fields_round_trip),
      cmocka_unit_test(test_rejections),
      cmocka_unit_test(test_alloc_failures_do_not_leak),
      cmocka_unit_test(test_parse_size),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
