/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The built `reel` binary end to end: `reel generate` writes an MP4 that
 * ffprobe (a reader we did not write) sees as H.264, yuv420p, BT.709, with the
 * requested size and exactly the requested number of frames; --json prints
 * one parseable object that matches the file; bad flags exit 2 naming the flag.
 * The binary comes from $REEL_BIN (set by CMake to $<TARGET_FILE:reel>).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "reel/json.h"
#include "reel/sha256.h"
#include "testutil.h"

typedef struct {
  char dir[512];
  const char *bin;
} fixture;

static int setup(void **state) {
  fixture *f = calloc(1, sizeof *f);
  f->bin = getenv("REEL_BIN");
  if (!f->bin || !f->bin[0]) fail_msg("REEL_BIN is not set (CMake sets it to the built reel binary)");
  if (!tu_have_program("ffprobe")) fail_msg("ffprobe is not installed (Debian package ffmpeg)");
  tu_mkdtemp(f->dir, sizeof f->dir);
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fixture *f = *state;
  tu_rmtree(f->dir);
  free(f);
  return 0;
}

/* Runs `reel <args>` in the fixture directory, stderr folded into the output when `both`. */
static int run_reel(const fixture *f, const char *args, int both, char **out) {
  char cmd[4096];
  snprintf(cmd, sizeof cmd, "cd '%s' && '%s' %s </dev/null %s", f->dir, f->bin, args, both ? "2>&1" : "2>/dev/null");
  return tu_run(cmd, out);
}

static json_t *ffprobe(const fixture *f, const char *file) {
  char cmd[1024], *out = NULL;
  snprintf(cmd, sizeof cmd,
           "ffprobe -v error -count_frames -select_streams v:0 -show_entries "
           "stream=codec_name,codec_tag_string,width,height,nb_read_frames,pix_fmt,color_space,color_primaries,color_"
           "transfer,"
           "color_range,avg_frame_rate -of json '%s/%s'",
           f->dir, file);
  assert_int_equal(tu_run(cmd, &out), 0);
  json_t *root = NULL;
  reel_error err = {0};
  assert_int_equal(reel_json_parse(out, strlen(out), "ffprobe", &root, &err), REEL_OK);
  free(out);
  json_t *streams = json_object_get(root, "streams");
  assert_true(json_is_array(streams) && json_array_size(streams) == 1);
  json_t *s = json_incref(json_array_get(streams, 0));
  json_decref(root);
  return s;
}

static const char *str(json_t *o, const char *k) {
  json_t *v = json_object_get(o, k);
  if (!json_is_string(v)) fail_msg("ffprobe: '%s' missing", k);
  return json_string_value(v);
}

static void test_generate_mp4(void **state) {
  fixture *f = *state;
  char *out = NULL;
  int rc =
      run_reel(f, "generate --model builtin:testsrc --size 320x240 --frames 24 -o out.mp4 \"any prompt\"", 1, &out);
  if (rc != 0) fail_msg("reel generate exited %d: %s", rc, out);
  assert_non_null(strstr(out, "wrote file://"));
  free(out);
  json_t *s = ffprobe(f, "out.mp4");
  assert_string_equal(str(s, "codec_name"), "h264");
  assert_int_equal(json_integer_value(json_object_get(s, "width")), 320);
  assert_int_equal(json_integer_value(json_object_get(s, "height")), 240);
  assert_string_equal(str(s, "nb_read_frames"), "24");
  assert_string_equal(str(s, "pix_fmt"), "yuv420p");
  assert_string_equal(str(s, "color_space"), "bt709");
  assert_string_equal(str(s, "color_primaries"), "bt709");
  assert_string_equal(str(s, "color_transfer"), "bt709");
  assert_string_equal(str(s, "color_range"), "tv");
  assert_string_equal(str(s, "avg_frame_rate"), "24/1");
  json_decref(s);
  /* Nothing else is left in the directory (no temporary file). */
  char cmd[700], *ls = NULL;
  snprintf(cmd, sizeof cmd, "ls -A '%s'", f->dir);
  assert_int_equal(tu_run(cmd, &ls), 0);
  assert_string_equal(ls, "out.mp4\n");
  free(ls);
}

static void test_size_frames_fps_follow_flags(void **state) {
  fixture *f = *state;
  char *out = NULL;
  int rc = run_reel(f, "generate -q --model builtin:testsrc --size 176x144 --frames 7 --fps 29.97 --seed 3 -o small.mp4 x", 1, &out);
  if (rc != 0) fail_msg("reel generate exited %d: %s", rc, out);
  assert_string_equal(out, ""); /* -q: nothing on stdout or stderr */
  free(out);
  json_t *s = ffprobe(f, "small.mp4");
  assert_int_equal(json_integer_value(json_object_get(s, "width")), 176);
  assert_int_equal(json_integer_value(json_object_get(s, "height")), 144);
  assert_string_equal(str(s, "nb_read_frames"), "7");
  assert_string_equal(str(s, "avg_frame_rate"), "30000/1001");
  json_decref(s);
}

static void expect_usage_error(const fixture *f, const char *args, const char *needle);
static json_t *generate_json(const fixture *f, const char *args);

/* --codec and the output's extension pick codec and container; --bitrate replaces --crf. */
static void test_codecs_and_bitrate(void **state) {
  fixture *f = *state;
  static const struct {
    const char *args, *file, *codec, *tag;
  } cases[] = {
      {"--codec hevc --preset ultrafast", "h.mp4", "hevc", "hvc1"},
      {"--codec vp9 --preset 8", "v.webm", "vp9", NULL},
      {"--codec av1 --preset 12 --bitrate 300", "a.mkv", "av1", NULL},
      {"--bitrate 400 --container fmp4", "b.mp4", "h264", "avc1"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char args[256], *out = NULL;
    snprintf(args, sizeof args, "generate -q --model builtin:testsrc --size 128x96 --frames 5 %s -o %s p", cases[i].args, cases[i].file);
    int rc = run_reel(f, args, 1, &out);
    if (rc != 0) fail_msg("reel %s exited %d: %s", args, rc, out);
    assert_string_equal(out, ""); /* -q: no encoder chatter (x265, SVT-AV1) either */
    free(out);
    json_t *s = ffprobe(f, cases[i].file);
    assert_string_equal(str(s, "codec_name"), cases[i].codec);
    assert_string_equal(str(s, "nb_read_frames"), "5");
    assert_string_equal(str(s, "color_primaries"), "bt709");
    assert_string_equal(str(s, "color_range"), "tv");
    if (cases[i].tag) assert_string_equal(str(s, "codec_tag_string"), cases[i].tag);
    json_decref(s);
  }
  expect_usage_error(f, "--bitrate 500 --crf 20 -o x.mp4 p", "--bitrate: cannot be combined with crf");
  expect_usage_error(f, "--bitrate 0 -o x.mp4 p", "--bitrate: must be an integer in 1..1000000");
  expect_usage_error(f, "--codec av1 --crf 0 -o x.mp4 p", "--crf: must be in 1..63 for av1");
  expect_usage_error(f, "--codec vp9 --preset slow -o x.mp4 p", "--preset: 'slow' is not a libvpx-vp9 preset");
  expect_usage_error(f, "--codec h264 -o x.webm p", "--container: webm carries only");
}

/* --poster and --preview-anim write two more files next to the clip; --json reports them. */
static void test_poster_and_preview(void **state) {
  fixture *f = *state;
  json_t *o = generate_json(f, "--frames 24 --seed 4 --poster p.jpg --preview-anim a.gif -o c.mp4 'a prompt'");
  assert_non_null(strstr(json_string_value(json_object_get(o, "poster")), "/p.jpg"));
  assert_int_equal(json_integer_value(json_object_get(o, "poster_frame")), 12);
  assert_non_null(strstr(json_string_value(json_object_get(o, "preview_anim")), "/a.gif"));
  assert_int_equal(json_integer_value(json_object_get(o, "preview_frames")), 6);
  json_decref(o);
  json_t *s = ffprobe(f, "p.jpg");
  assert_string_equal(str(s, "codec_name"), "mjpeg");
  assert_int_equal(json_integer_value(json_object_get(s, "width")), 320);
  json_decref(s);
  s = ffprobe(f, "a.gif");
  assert_string_equal(str(s, "codec_name"), "gif");
  assert_int_equal(json_integer_value(json_object_get(s, "width")), 320);
  assert_int_equal(json_integer_value(json_object_get(s, "height")), 240);
  assert_string_equal(str(s, "nb_read_frames"), "6");
  json_decref(s);
  o = generate_json(f, "--frames 10 --poster-frame 9 --poster last.png --preview-anim a.webp -o d.mkv p");
  assert_int_equal(json_integer_value(json_object_get(o, "poster_frame")), 9);
  json_decref(o);
  s = ffprobe(f, "last.png");
  assert_string_equal(str(s, "codec_name"), "png");
  json_decref(s);
  expect_usage_error(f, "--poster p.bmp -o x.mp4 p", "--poster: 'p.bmp': must end in .png, .jpg or .jpeg");
  expect_usage_error(f, "--preview-anim p.avi -o x.mp4 p", "--preview-anim: 'p.avi': must end in .webp or .gif");
  expect_usage_error(f, "--poster-frame 3 -o x.mp4 p", "--poster-frame: needs a poster");
  expect_usage_error(f, "--frames 5 --poster p.png --poster-frame 5 -o x.mp4 p", "--poster-frame: must be below");
}

static json_t *generate_json(const fixture *f, const char *args) {
  char cmd[2600], *out = NULL;
  snprintf(cmd, sizeof cmd, "generate --json --model builtin:testsrc %s", args);
  int rc = run_reel(f, cmd, 0, &out);
  if (rc != 0) fail_msg("reel %s exited %d", cmd, rc);
  json_t *o = NULL;
  reel_error err = {0};
  if (reel_json_parse(out, strlen(out), "stdout", &o, &err) != REEL_OK)
    fail_msg("--json output does not parse: %s: '%s'", err.msg, out);
  free(out);
  return o;
}

static void test_json_output(void **state) {
  fixture *f = *state;
  json_t *o = generate_json(f, "--frames 12 --seed 77 -o j.mp4 'a prompt'");
  char path[600];
  snprintf(path, sizeof path, "%s/j.mp4", f->dir);
  char real[4096];
  assert_non_null(realpath(path, real));
  char url[4200];
  snprintf(url, sizeof url, "file://%s", real);
  assert_string_equal(json_string_value(json_object_get(o, "url")), url);
  size_t len = 0;
  char *data = tu_read_file(path, &len);
  assert_non_null(data);
  assert_int_equal(json_integer_value(json_object_get(o, "bytes")), len);
  uint8_t d[REEL_SHA256_BYTES];
  char hex[REEL_SHA256_HEX];
  reel_sha256_digest(data, len, d);
  assert_string_equal(json_string_value(json_object_get(o, "sha256")), reel_sha256_hex(d, hex));
  free(data);
  assert_int_equal(json_integer_value(json_object_get(o, "frames")), 12);
  assert_int_equal(json_integer_value(json_object_get(o, "width")), 320);
  assert_int_equal(json_integer_value(json_object_get(o, "height")), 240);
  assert_true(json_number_value(json_object_get(o, "fps")) == 24.0);
  assert_int_equal(json_integer_value(json_object_get(o, "seed")), 77);
  assert_true(json_is_number(json_object_get(o, "seconds")));
  assert_string_equal(json_string_value(json_object_get(o, "model")), "builtin:testsrc");
  assert_string_equal(json_string_value(json_object_get(o, "codec")), "h264");
  json_decref(o);
}

static void test_same_seed_same_bytes(void **state) {
  fixture *f = *state;
  json_t *a = generate_json(f, "--frames 6 --seed 5 -o a.mp4 p");
  json_t *b = generate_json(f, "--frames 6 --seed 5 -o b.mp4 p");
  json_t *c = generate_json(f, "--frames 6 --seed 6 -o c.mp4 p");
  const char *ha = json_string_value(json_object_get(a, "sha256"));
  assert_string_equal(ha, json_string_value(json_object_get(b, "sha256")));
  assert_string_not_equal(ha, json_string_value(json_object_get(c, "sha256")));
  json_decref(a);
  json_decref(b);
  json_decref(c);
}

static void expect_usage_error(const fixture *f, const char *args, const char *needle) {
  char cmd[2600], *out = NULL;
  snprintf(cmd, sizeof cmd, "generate %s", args);
  int rc = run_reel(f, cmd, 1, &out);
  if (rc != 2) fail_msg("reel %s: exit %d, want 2 (%s)", cmd, rc, out);
  if (!strstr(out, needle)) fail_msg("reel %s: message '%s' lacks '%s'", cmd, out, needle);
  free(out);
}

static void test_bad_flags(void **state) {
  fixture *f = *state;
  expect_usage_error(f, "--frames 0 -o x.mp4 p", "--frames: must be an integer in 1..1025");
  expect_usage_error(f, "--frames 3x -o x.mp4 p", "--frames");
  expect_usage_error(f, "--size 321x240 -o x.mp4 p", "--size: width and height must be even");
  expect_usage_error(f, "--size huge -o x.mp4 p", "--size: must be WIDTHxHEIGHT");
  expect_usage_error(f, "--fps 500 -o x.mp4 p", "--fps: must be a number in 1..240");
  expect_usage_error(f, "--crf 52 -o x.mp4 p", "--crf: must be in 0..51 for h264");
  expect_usage_error(f, "--preset turbo -o x.mp4 p", "--preset: 'turbo' is not a libx264 preset");
  expect_usage_error(f, "--codec mpeg2 -o x.mp4 p", "--codec: must be one of: h264");
  expect_usage_error(f, "--seed -4 -o x.mp4 p", "--seed");
  expect_usage_error(f, "--sampler foo -o x.mp4 p", "--sampler: must be one of");
  expect_usage_error(f, "--model no-such-model -o x.mp4 p", "--model: 'no-such-model' is not available");
  expect_usage_error(f, "--threads -1 -o x.mp4 p", "--threads");
  expect_usage_error(f, "--bogus -o x.mp4 p", "unknown option '--bogus'");
  expect_usage_error(f, "-o x.mp4", "PROMPT: is missing");
  expect_usage_error(f, "-o /no/such/dir/x.mp4 p", "-o: '/no/such/dir/x.mp4': directory '/no/such/dir' does not exist");
  /* None of them left a file behind. */
  char cmd[700], *ls = NULL;
  snprintf(cmd, sizeof cmd, "ls -A '%s'", f->dir);
  assert_int_equal(tu_run(cmd, &ls), 0);
  assert_string_equal(ls, "");
  free(ls);
  /* --help is not an error. */
  char *out = NULL;
  assert_int_equal(run_reel(f, "generate --help", 0, &out), 0);
  assert_non_null(strstr(out, "usage: reel generate"));
  free(out);
}

/* A model directory (the tiny WanPipeline fixture) with every job flag; latents out and back in. */
static void test_model_dir(void **state) {
  fixture *f = *state;
  const char *src = getenv("REEL_SOURCE_DIR");
  assert_non_null(src);
  char args[2048];
  snprintf(args, sizeof args,
           "--model '%s/tests/fixtures/tiny-wan' --size 48x32 --frames 9 --fps 12 --steps 3 --seed 4 --cfg 4 "
           "--shift 2 --sampler euler --negative blurry --codec h264 --container mp4 --crf 20 --preset fast "
           "--backend cpu --threads 1 --dump-latents d.safetensors -o m.mp4 'a cat on a mat'",
           src);
  json_t *o = generate_json(f, args);
  assert_int_equal(json_integer_value(json_object_get(o, "frames")), 9);
  assert_int_equal(json_integer_value(json_object_get(o, "width")), 48);
  assert_int_equal(json_integer_value(json_object_get(o, "height")), 32);
  assert_true(json_number_value(json_object_get(o, "fps")) == 12.0);
  assert_int_equal(json_integer_value(json_object_get(o, "steps")), 3);
  assert_true(json_number_value(json_object_get(o, "guidance")) == 4.0);
  assert_true(json_number_value(json_object_get(o, "shift")) == 2.0);
  assert_string_equal(json_string_value(json_object_get(o, "sampler")), "euler");
  assert_string_equal(json_string_value(json_object_get(o, "backend")), "cpu");
  json_t *t = json_object_get(o, "timings");
  for (const char *const *k = (const char *const[]){"load", "text", "denoise", "decode", "encode", "commit", NULL}; *k;
       k++)
    assert_true(json_is_number(json_object_get(t, *k)));
  assert_true(json_integer_value(json_object_get(json_object_get(o, "memory"), "peak_scratch_bytes")) > 0);
  json_t *s = ffprobe(f, "m.mp4");
  assert_int_equal(json_integer_value(json_object_get(s, "width")), 48);
  assert_string_equal(str(s, "nb_read_frames"), "9");
  json_decref(s);
  /* The dumped initial latents given back (with another seed) reproduce the clip byte for byte. */
  snprintf(args, sizeof args,
           "--model '%s/tests/fixtures/tiny-wan' --size 48x32 --frames 9 --fps 12 --steps 3 --seed 99 --cfg 4 "
           "--shift 2 --sampler euler --negative blurry --crf 20 --preset fast --threads 1 "
           "--latents d.safetensors -o n.mp4 'a cat on a mat'",
           src);
  json_t *o2 = generate_json(f, args);
  assert_string_equal(json_string_value(json_object_get(o, "sha256")), json_string_value(json_object_get(o2, "sha256")));
  json_decref(o);
  json_decref(o2);
  /* The model's rules name the flag. */
  snprintf(args, sizeof args, "--model '%s/tests/fixtures/tiny-wan' --size 48x32 --frames 8 -o x.mp4 p", src);
  expect_usage_error(f, args, "--frames: must be 1 + 4 k");
  snprintf(args, sizeof args, "--model '%s/tests/fixtures/tiny-wan' --size 40x32 --frames 5 -o x.mp4 p", src);
  expect_usage_error(f, args, "--size: must be a multiple of 16");
  expect_usage_error(f, "--model builtin:testsrc --latents d.safetensors -o x.mp4 p", "--latents: needs a diffusion model");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_model_dir, setup, teardown),
      cmocka_unit_test_setup_teardown(test_generate_mp4, setup, teardown),
      cmocka_unit_test_setup_teardown(test_size_frames_fps_follow_flags, setup, teardown),
      cmocka_unit_test_setup_teardown(test_codecs_and_bitrate, setup, teardown),
      cmocka_unit_test_setup_teardown(test_poster_and_preview, setup, teardown),
      cmocka_unit_test_setup_teardown(test_json_output, setup, teardown),
      cmocka_unit_test_setup_teardown(test_same_seed_same_bytes, setup, teardown),
      cmocka_unit_test_setup_teardown(test_bad_flags, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
