/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Whole-pipeline parity: reel_generate on the tiny WanPipeline folder
 * (tests/fixtures/tiny-wan) against diffusers' WanPipeline frames in
 * tiny-wan/reference/pipeline.safetensors, for every prompt and seed there
 * (tokenizer → UMT5 → Philox noise → UniPC + CFG → VAE → uint8). The raw frames,
 * seen through the frame callback before encoding, must be within 2/255 of the
 * reference; the MP4 reel wrote is decoded back and must be within PSNR 35 dB
 * of those raw frames. Also: --latents (the fixture's numpy Philox noise from a
 * file) gives the same frames, --dump-latents writes the initial and final
 * latents of the reference, a lent model gives the same bytes as a loaded one,
 * the model's rules and defaults (size, frames, guidance), previews, the
 * memory budget, the NaN test hook and cancellation.
 */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "reel/encoder.h"
#include "reel/generate.h"
#include "reel/json.h"
#include "reel/model.h"
#include "reel/safetensors.h"
#include "testutil.h"
#include "wan_testutil.h"

typedef struct call {
  char prompt[256];
  char negative[256];
  int has_negative;
  uint64_t seed;
  int width, height, frames, steps;
  double guidance;
  int call, sample;
} call;

typedef struct fixture {
  char dir[1024];
  char tmp[512];
  reel_safetensors *ref;
  call calls[8];
  int ncalls;
} fixture;

static int setup(void **state) {
  fixture *f = calloc(1, sizeof *f);
  wt_fixture(f->dir, sizeof f->dir, "tiny-wan");
  tu_mkdtemp(f->tmp, sizeof f->tmp);
  f->ref = wt_open("tiny-wan/reference/pipeline.safetensors");
  const char *calls = reel_safetensors_metadata(f->ref, "calls");
  assert_non_null(calls);
  json_error_t je;
  json_t *root = json_loads(calls, 0, &je);
  assert_non_null(root);
  size_t i;
  json_t *c;
  json_array_foreach(root, i, c) {
    json_t *prompts = json_object_get(c, "prompt"), *seeds = json_object_get(c, "seeds");
    json_t *neg = json_object_get(c, "negative_prompt");
    for (size_t k = 0; k < json_array_size(prompts); k++) {
      call *x = &f->calls[f->ncalls++];
      snprintf(x->prompt, sizeof x->prompt, "%s", json_string_value(json_array_get(prompts, k)));
      if (json_is_array(neg)) {
        x->has_negative = 1;
        snprintf(x->negative, sizeof x->negative, "%s", json_string_value(json_array_get(neg, k)));
      }
      x->seed = (uint64_t)json_integer_value(json_array_get(seeds, k));
      x->width = (int)json_integer_value(json_object_get(c, "width"));
      x->height = (int)json_integer_value(json_object_get(c, "height"));
      x->frames = (int)json_integer_value(json_object_get(c, "num_frames"));
      x->steps = (int)json_integer_value(json_object_get(c, "num_inference_steps"));
      x->guidance = json_real_value(json_object_get(c, "guidance_scale"));
      x->call = (int)i;
      x->sample = (int)k;
    }
  }
  json_decref(root);
  assert_int_equal(f->ncalls, 3);
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fixture *f = *state;
  reel_safetensors_close(&f->ref);
  tu_rmtree(f->tmp);
  free(f);
  return 0;
}

static void spec_of(fixture *f, const call *c, reel_jobspec *spec) {
  reel_jobspec_init(spec);
  assert_int_equal(reel_jobspec_set_str(&spec->prompt, c->prompt), REEL_OK);
  if (c->has_negative) assert_int_equal(reel_jobspec_set_str(&spec->negative_prompt, c->negative), REEL_OK);
  assert_int_equal(reel_jobspec_set_str(&spec->model, f->dir), REEL_OK);
  spec->width = c->width;
  spec->height = c->height;
  spec->frames = c->frames;
  spec->steps = c->steps;
  spec->guidance = c->guidance;
  spec->seed = c->seed;
  spec->seed_set = 1;
}

static const uint8_t *ref_u8(fixture *f, const call *c) {
  char name[64];
  snprintf(name, sizeof name, "call%d.frames_u8", c->call);
  const reel_st_tensor *t = reel_safetensors_find(f->ref, name);
  assert_non_null(t);
  assert_int_equal(t->dtype, REEL_ST_U8);
  return (const uint8_t *)t->data + (size_t)c->sample * c->frames * c->height * c->width * 3;
}

static int max_abs_u8(const uint8_t *a, const uint8_t *b, size_t n) {
  int m = 0;
  for (size_t i = 0; i < n; i++) {
    int d = abs((int)a[i] - (int)b[i]);
    if (d > m) m = d;
  }
  return m;
}

/* BT.709 Y, Cb, Cr of an RGB24 pixel (full range, 0..255 scale). */
static void ycbcr(const uint8_t *p, double *o) {
  o[0] = 0.2126 * p[0] + 0.7152 * p[1] + 0.0722 * p[2];
  o[1] = (p[2] - o[0]) / 1.8556;
  o[2] = (p[0] - o[0]) / 1.5748;
}

/*
 * PSNR of the decoded MP4 against the raw frames: *rgb over all RGB values, and
 * *yuv over the samples a 4:2:0 video carries (Y of every pixel; Cb and Cr
 * averaged over 2x2 blocks, of both sides), weighted by sample count as
 * FFmpeg's psnr filter averages planes. The second measures what the codec
 * lost; the first also includes what 4:2:0 cannot carry, which for the random
 * tiny model's pixel-sized colour noise caps it near 23 dB even losslessly.
 */
static void mp4_psnr(const char *path, const wt_frames *fr, double *rgb, double *yuv) {
  reel_decoder *dec = NULL;
  reel_error err = {0};
  assert_int_equal(reel_decoder_open(path, 1, NULL, &dec, &err), REEL_OK);
  reel_video_info vi;
  reel_decoder_info(dec, &vi);
  assert_int_equal(vi.width, fr->w);
  assert_int_equal(vi.height, fr->h);
  const int W = fr->w, H = fr->h;
  size_t px = (size_t)W * H, fb = px * 3;
  uint8_t *buf = malloc(fb);
  double se = 0, sy = 0;
  int n = 0;
  while (reel_decoder_next_rgb(dec, buf, (size_t)W * 3, &err) == REEL_OK) {
    assert_true(n < fr->n);
    const uint8_t *raw = fr->rgb + (size_t)n * fb;
    for (size_t i = 0; i < fb; i++) {
      double d = (double)buf[i] - raw[i];
      se += d * d;
    }
    for (int y = 0; y < H; y += 2) {
      for (int x = 0; x < W; x += 2) {
        double ca[3] = {0, 0, 0}, cb[3] = {0, 0, 0};
        for (int k = 0; k < 4; k++) {
          size_t i = (size_t)(y + k / 2) * W + (size_t)(x + k % 2);
          double a[3], b[3];
          ycbcr(raw + 3 * i, a);
          ycbcr(buf + 3 * i, b);
          sy += (a[0] - b[0]) * (a[0] - b[0]);
          for (int c = 1; c < 3; c++) {
            ca[c] += a[c] / 4;
            cb[c] += b[c] / 4;
          }
        }
        for (int c = 1; c < 3; c++) sy += (ca[c] - cb[c]) * (ca[c] - cb[c]);
      }
    }
    n++;
  }
  assert_int_equal(n, fr->n);
  reel_decoder_destroy(&dec);
  free(buf);
  double mse = se / ((double)fb * n), msey = sy / ((double)px * 1.5 * n);
  *rgb = mse > 0 ? 10.0 * log10(255.0 * 255.0 / mse) : 99.0;
  *yuv = msey > 0 ? 10.0 * log10(255.0 * 255.0 / msey) : 99.0;
}

static void test_parity(void **state) {
  fixture *f = *state;
  for (int i = 0; i < f->ncalls; i++) {
    const call *c = &f->calls[i];
    reel_jobspec spec;
    spec_of(f, c, &spec);
    wt_frames fr;
    wt_frames_init(&fr, c->width, c->height, c->frames);
    /* x264's CRF 18 (about visually lossless); the default 23 gives ~32 dB on the random model's noise-like frames. */
    spec.crf = 18;
    reel_generate_options o;
    memset(&o, 0, sizeof o);
    o.threads = 2;
    o.frame = wt_grab_frame;
    o.frame_user = &fr;
    char out[600];
    snprintf(out, sizeof out, "%s/parity%d.mp4", f->tmp, i);
    reel_generate_result res;
    reel_error err = {0};
    reel_status st = reel_generate(&spec, out, &o, &res, &err);
    if (st != REEL_OK) fail_msg("call %d: %s: %s", i, err.field, err.msg);
    assert_int_equal(fr.n, c->frames);
    assert_int_equal(res.frames, c->frames);
    assert_int_equal(res.width, c->width);
    assert_int_equal(res.height, c->height);
    assert_int_equal(res.steps, c->steps);
    assert_true(res.guidance == c->guidance);
    assert_string_equal(res.sampler, "unipc");
    assert_string_equal(res.family, "wan2.1");
    assert_true(res.fps == 16.0);
    assert_true(res.model_bytes > 0);
    assert_true(res.peak_scratch_bytes > 0);
    assert_true(res.peak_rss_bytes > 0);
    size_t n = (size_t)c->frames * c->height * c->width * 3;
    int diff = max_abs_u8(fr.rgb, ref_u8(f, c), n);
    printf("call %d sample %d: max abs pixel error %d/255\n", c->call, c->sample, diff);
    assert_true(diff <= 2);
    double prgb, pyuv;
    mp4_psnr(out, &fr, &prgb, &pyuv);
    printf("call %d sample %d: MP4 decoded back: PSNR %.2f dB (4:2:0 samples), %.2f dB (RGB)\n", c->call, c->sample,
           pyuv, prgb);
    assert_true(pyuv >= 35.0);
    free(fr.rgb);
    reel_jobspec_fini(&spec);
  }
}

/* Initial latents from a file (the fixture's numpy Philox noise) and the dump of both ends. */
static void test_latents_in_and_dump(void **state) {
  fixture *f = *state;
  const call *c = &f->calls[2]; /* call 1: negative prompt, guidance 3.5, 6 steps */
  char name[64], in[600], dump[600], out[600];
  snprintf(name, sizeof name, "call%d.latents_init", c->call);
  const reel_st_tensor *t = reel_safetensors_find(f->ref, name);
  assert_non_null(t);
  snprintf(in, sizeof in, "%s/init.safetensors", f->tmp);
  snprintf(dump, sizeof dump, "%s/dump.safetensors", f->tmp);
  snprintf(out, sizeof out, "%s/latents.mp4", f->tmp);
  reel_st_entry e = {"latents", REEL_ST_F32, t->rank, t->shape, t->data};
  reel_error err = {0};
  assert_int_equal(reel_safetensors_write(in, &e, 1, NULL, 0, &err), REEL_OK);

  reel_jobspec spec;
  spec_of(f, c, &spec);
  wt_frames fr;
  wt_frames_init(&fr, c->width, c->height, c->frames);
  reel_generate_options o;
  memset(&o, 0, sizeof o);
  o.threads = 2;
  o.frame = wt_grab_frame;
  o.frame_user = &fr;
  o.latents_path = in;
  o.dump_latents_path = dump;
  reel_status st = reel_generate(&spec, out, &o, NULL, &err);
  if (st != REEL_OK) fail_msg("%s: %s", err.field, err.msg);
  size_t n = (size_t)c->frames * c->height * c->width * 3;
  assert_true(max_abs_u8(fr.rgb, ref_u8(f, c), n) <= 2);

  reel_safetensors *d = NULL;
  assert_int_equal(reel_safetensors_open(dump, &d, &err), REEL_OK);
  size_t ln = 0, rn = 0;
  float *li = wt_read_f32(d, "latents_init", &ln, NULL, NULL);
  float *ri = wt_read_f32(f->ref, name, &rn, NULL, NULL);
  assert_int_equal(ln, rn);
  assert_true(tu_max_abs_diff(li, ri, ln, NULL) == 0.0); /* the file's latents, as given */
  snprintf(name, sizeof name, "call%d.latents_final", c->call);
  float *lf = wt_read_f32(d, "latents_final", NULL, NULL, NULL);
  float *rf = wt_read_f32(f->ref, name, NULL, NULL, NULL);
  double fd = tu_max_abs_diff(lf, rf, ln, NULL);
  printf("latents_final: max abs diff %.3g\n", fd);
  assert_true(fd < 1e-3);
  assert_string_equal(reel_safetensors_metadata(d, "latents_init"), "file");
  assert_string_equal(reel_safetensors_metadata(d, "steps"), "6");
  free(li);
  free(ri);
  free(lf);
  free(rf);
  reel_safetensors_close(&d);

  /* The seeded run's dump: its initial latents are reel's Philox noise = the fixture's (1 ulp at most). */
  o.latents_path = NULL;
  fr.n = 0;
  assert_int_equal(reel_generate(&spec, out, &o, NULL, &err), REEL_OK);
  assert_int_equal(reel_safetensors_open(dump, &d, &err), REEL_OK);
  li = wt_read_f32(d, "latents_init", NULL, NULL, NULL);
  snprintf(name, sizeof name, "call%d.latents_init", c->call);
  ri = wt_read_f32(f->ref, name, NULL, NULL, NULL);
  assert_true(tu_max_abs_diff(li, ri, ln, NULL) < 1e-6);
  assert_string_equal(reel_safetensors_metadata(d, "latents_init"), "philox");
  free(li);
  free(ri);
  reel_safetensors_close(&d);

  /* A latents file of the wrong shape is refused before any compute. */
  int64_t bad_shape[4] = {16, 1, 4, 6};
  reel_st_entry eb = {"latents", REEL_ST_F32, 4, bad_shape, t->data};
  assert_int_equal(reel_safetensors_write(in, &eb, 1, NULL, 0, &err), REEL_OK);
  o.latents_path = in;
  assert_int_equal(reel_generate(&spec, out, &o, NULL, &err), REEL_EINVAL);
  assert_string_equal(err.field, "latents");
  free(fr.rgb);
  reel_jobspec_fini(&spec);
}

/* A lent model gives the same clip as one the job loads; defaults come from the model. */
static void test_lent_model_and_defaults(void **state) {
  fixture *f = *state;
  reel_error err = {0};
  reel_backend *b = reel_backend_new_cpu(2, &err);
  reel_model *m = NULL;
  assert_int_equal(reel_model_open(b, f->dir, &m, &err), REEL_OK);
  const reel_model_info *in = reel_model_get_info(m);
  assert_int_equal(in->default_width, 832);
  assert_int_equal(in->default_height, 480);
  assert_int_equal(in->default_frames, 81);
  assert_true(in->default_fps == 16.0);
  assert_string_equal(in->default_negative_prompt, "");
  const call *c = &f->calls[0];
  reel_jobspec spec;
  spec_of(f, c, &spec);
  char a[600], bb[600];
  snprintf(a, sizeof a, "%s/a.mp4", f->tmp);
  snprintf(bb, sizeof bb, "%s/b.mp4", f->tmp);
  reel_generate_result ra, rb;
  reel_generate_options o;
  memset(&o, 0, sizeof o);
  o.threads = 2;
  assert_int_equal(reel_generate(&spec, a, &o, &ra, &err), REEL_OK);
  o.model = m;
  assert_int_equal(reel_generate(&spec, bb, &o, &rb, &err), REEL_OK);
  assert_string_equal(ra.sha256, rb.sha256);
  assert_true(ra.seconds_load > 0);
  assert_true(rb.seconds_load == 0);

  /* Guidance <= 1 runs the conditional pass only, as diffusers does. */
  spec.guidance = 0.5;
  assert_int_equal(reel_generate(&spec, bb, &o, &rb, &err), REEL_OK);
  assert_true(rb.guidance == 1.0);
  reel_jobspec_fini(&spec);
  reel_model_destroy(&m);
  reel_backend_destroy(&b);
}

/* A reel.json in the model folder overrides the family's defaults. */
static void test_reel_json_defaults(void **state) {
  fixture *f = *state;
  char dir[600], path[700], cmd[2400];
  snprintf(dir, sizeof dir, "%s/tiny-copy", f->tmp);
  snprintf(cmd, sizeof cmd, "cp -r '%s' '%s'", f->dir, dir);
  assert_int_equal(tu_run(cmd, NULL), 0);
  snprintf(path, sizeof path, "%s/reel.json", dir);
  const char *js = "{\"width\": 32, \"height\": 16, \"frames\": 5, \"fps\": 8, \"steps\": 2, \"guidance\": 1.0,"
                   " \"sampler\": \"euler\", \"shift\": 2.5}";
  tu_write_file(path, js, strlen(js));
  reel_jobspec spec;
  reel_jobspec_init(&spec);
  assert_int_equal(reel_jobspec_set_str(&spec.prompt, "a red circle"), REEL_OK);
  assert_int_equal(reel_jobspec_set_str(&spec.model, dir), REEL_OK);
  char out[700];
  snprintf(out, sizeof out, "%s/d.mp4", f->tmp);
  reel_generate_result r;
  reel_error err = {0};
  reel_generate_options o;
  memset(&o, 0, sizeof o);
  o.threads = 2;
  assert_int_equal(reel_generate(&spec, out, &o, &r, &err), REEL_OK);
  assert_int_equal(r.width, 32);
  assert_int_equal(r.height, 16);
  assert_int_equal(r.frames, 5);
  assert_true(r.fps == 8.0);
  assert_int_equal(r.steps, 2);
  assert_true(r.guidance == 1.0);
  assert_string_equal(r.sampler, "euler");
  assert_true(r.shift == 2.5);
  /* A bad member is named. */
  js = "{\"frames\": \"many\"}";
  tu_write_file(path, js, strlen(js));
  assert_int_not_equal(reel_generate(&spec, out, &o, &r, &err), REEL_OK);
  assert_non_null(strstr(err.field, "reel.json"));
  assert_non_null(strstr(err.field, "frames"));
  reel_jobspec_fini(&spec);
}

static reel_status expect_error(fixture *f, reel_jobspec *spec, reel_generate_options *o, reel_status code,
                                const char *field) {
  char out[600];
  snprintf(out, sizeof out, "%s/err.mp4", f->tmp);
  reel_error err = {0};
  reel_status st = reel_generate(spec, out, o, NULL, &err);
  printf("expected %s %s: got %s %s: %s\n", reel_status_name(code), field, reel_status_name(st), err.field, err.msg);
  assert_int_equal(st, code);
  assert_string_equal(err.field, field);
  assert_false(access(out, F_OK) == 0); /* nothing committed */
  return st;
}

static int frames_seen;
static reel_status count_frames(void *user, const uint8_t *rgb, size_t stride, int index, reel_error *err) {
  (void)user;
  (void)rgb;
  (void)stride;
  (void)index;
  (void)err;
  frames_seen++;
  return REEL_OK;
}

/* The model's rules, the budget, the NaN hook: each fails before frames come, naming the field. */
static void test_rules_and_failures(void **state) {
  fixture *f = *state;
  reel_jobspec spec;
  spec_of(f, &f->calls[0], &spec);
  reel_generate_options o;
  memset(&o, 0, sizeof o);
  o.threads = 2;
  o.frame = count_frames;
  frames_seen = 0;
  spec.width = 40; /* not a multiple of 16 */
  expect_error(f, &spec, &o, REEL_EINVAL, "job.width");
  spec.width = 48;
  spec.height = 24;
  expect_error(f, &spec, &o, REEL_EINVAL, "job.height");
  spec.height = 32;
  spec.frames = 8; /* not 4k + 1 */
  expect_error(f, &spec, &o, REEL_EINVAL, "job.frames");
  spec.frames = 9;
  o.memory_budget = 64 * 1024;
  expect_error(f, &spec, &o, REEL_ENOMEM, "job");
  o.memory_budget = 0;
  o.test_nan_after_step = 1;
  expect_error(f, &spec, &o, REEL_ENONFINITE, "denoise");
  o.test_nan_after_step = 4; /* after the last step: caught before decoding */
  expect_error(f, &spec, &o, REEL_ENONFINITE, "denoise");
  o.test_nan_after_step = 0;
  assert_int_equal(frames_seen, 0);
  assert_int_equal(reel_jobspec_set_str(&spec.model, "/nonexistent/model"), REEL_OK);
  expect_error(f, &spec, &o, REEL_ENOTFOUND, "job.model");
  reel_jobspec_fini(&spec);
}

typedef struct prog {
  int steps, previews, cancel_at, last_step, decode, encode;
  double last_fraction;
  int pw, ph;
  int png_ok;
} prog;

static int on_progress(const reel_progress *p, void *user) {
  prog *pr = user;
  assert_true(p->fraction >= pr->last_fraction - 1e-9);
  pr->last_fraction = p->fraction;
  if (!strcmp(p->stage, "denoise") && p->steps_done > pr->last_step) {
    pr->steps++;
    pr->last_step = p->steps_done;
    assert_int_equal(p->steps_total, 4);
    if (p->steps_done > 0) assert_true(p->eta_seconds >= 0);
  }
  if (p->preview) {
    pr->previews++;
    pr->pw = p->preview_width;
    pr->ph = p->preview_height;
  }
  if (!strcmp(p->stage, "decode")) pr->decode++;
  if (!strcmp(p->stage, "encode")) pr->encode++;
  return pr->cancel_at && p->steps_done >= pr->cancel_at;
}

static void test_progress_preview_cancel(void **state) {
  fixture *f = *state;
  reel_jobspec spec;
  spec_of(f, &f->calls[0], &spec);
  spec.preview_every = 2;
  prog pr;
  memset(&pr, 0, sizeof pr);
  reel_generate_options o;
  memset(&o, 0, sizeof o);
  o.threads = 2;
  o.progress = on_progress;
  o.progress_user = &pr;
  o.preview_size = 24;
  char out[600];
  snprintf(out, sizeof out, "%s/p.mp4", f->tmp);
  reel_error err = {0};
  assert_int_equal(reel_generate(&spec, out, &o, NULL, &err), REEL_OK);
  assert_int_equal(pr.steps, 4);
  assert_int_equal(pr.previews, 1); /* after step 2; none after the last step */
  assert_int_equal(pr.pw, 24);
  assert_int_equal(pr.ph, 16);
  assert_true(pr.decode >= 1);
  assert_int_equal(pr.encode, 9);
  memset(&pr, 0, sizeof pr);
  pr.cancel_at = 2;
  snprintf(out, sizeof out, "%s/c.mp4", f->tmp);
  assert_int_equal(reel_generate(&spec, out, &o, NULL, &err), REEL_ECANCELED);
  assert_string_equal(err.field, "job");
  assert_int_equal(pr.steps, 2);
  assert_false(access(out, F_OK) == 0);
  reel_jobspec_fini(&spec);
}

int main(void) {
  reel_json_use_reel_alloc();
  reel_ffmpeg_route_logs();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_parity),
      cmocka_unit_test(test_latents_in_and_dump),
      cmocka_unit_test(test_lent_model_and_defaults),
      cmocka_unit_test(test_reel_json_defaults),
      cmocka_unit_test(test_rules_and_failures),
      cmocka_unit_test(test_progress_preview_cancel),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
