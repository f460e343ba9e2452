/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Wan VAE parity with diffusers' AutoencoderKLWan on the tiny random model of
 * tests/fixtures/tiny-wan/vae: decode of 1, 2 and 3 latent frames (1, 5 and 9 video frames:
 * the first chunk, the Rep pass-through and the cached chunks) and encode of a 9-frame video
 * (chunks 1 + 4 + 4) to the posterior's mean and log-variance, within 1e-4; frames arrive
 * chunk by chunk in order; the arena a decode needs does not depend on the frame count;
 * WanPipeline's un-normalisation; malformed configs and checkpoints name the field/tensor.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "reel/backend.h"
#include "reel/safetensors.h"
#include "reel/wan_vae.h"
#include "testutil.h"

static void fixture_path(char *buf, size_t size, const char *rel) {
  snprintf(buf, size, "%s/tests/fixtures/%s", tu_source_dir(), rel);
}

/* Uploads fixture tensor `name` [1, ...] without its batch dim. */
static reel_tensor upload(reel_backend *b, const reel_safetensors *st, const char *name) {
  const reel_st_tensor *t = reel_safetensors_find(st, name);
  if (!t) fail_msg("fixture tensor %s missing", name);
  assert_int_equal(t->dtype, REEL_ST_F32);
  assert_int_equal(t->shape[0], 1);
  reel_tensor out;
  reel_error err = {0};
  assert_int_equal(reel_tensor_new(b, REEL_F32, t->rank - 1, t->shape + 1, &out, &err), REEL_OK);
  assert_int_equal(reel_tensor_upload(&out, t->data, (size_t)t->nbytes, &err), REEL_OK);
  return out;
}

static void compare(reel_backend *b, const reel_tensor *got_t, const reel_safetensors *st, const char *name,
                    double tol) {
  const reel_st_tensor *t = reel_safetensors_find(st, name);
  assert_non_null(t);
  size_t n = (size_t)reel_tensor_numel(got_t);
  assert_int_equal(n, t->numel);
  float *got = malloc(n * sizeof *got), *want = malloc(n * sizeof *want);
  reel_error err = {0};
  assert_int_equal(reel_tensor_download(got_t, got, n * sizeof *got, &err), REEL_OK);
  memcpy(want, t->data, n * sizeof *want);
  size_t where = 0;
  double d = tu_max_abs_diff(got, want, n, &where);
  printf("%s: max abs diff %.3g at %zu (got %g want %g)\n", name, d, where, got[where], want[where]);
  assert_true(d <= tol);
  free(got);
  free(want);
}

typedef struct order_ctx {
  int64_t next;
  int calls;
} order_ctx;

static reel_status check_order(void *user, const reel_tensor *frames, int64_t first, reel_error *err) {
  (void)err;
  order_ctx *c = user;
  assert_int_equal(first, c->next);
  assert_int_equal(frames->shape[1], c->calls == 0 ? 1 : 4);
  c->next += frames->shape[1];
  c->calls++;
  return REEL_OK;
}

static void test_decode_encode(void **state) {
  (void)state;
  char path[1024];
  reel_error err = {0};
  reel_backend *b = reel_backend_new_cpu(2, &err);
  reel_wan_vae *v = NULL;
  fixture_path(path, sizeof path, "tiny-wan/vae");
  if (reel_wan_vae_load(b, path, &v, &err) != REEL_OK) fail_msg("%s: %s", err.field, err.msg);
  assert_int_equal(reel_wan_vae_spatial_factor(v), 8);
  assert_int_equal(reel_wan_vae_temporal_factor(v), 4);
  reel_safetensors *st = NULL;
  fixture_path(path, sizeof path, "tiny-wan/reference/vae.safetensors");
  assert_int_equal(reel_safetensors_open(path, &st, &err), REEL_OK);
  size_t need = 0;
  assert_int_equal(reel_wan_vae_decode_arena_bytes(v, 3, 5, &need, &err), REEL_OK);
  reel_tensor_arena *arena = reel_tensor_arena_new(b, need, &err);
  assert_non_null(arena);
  for (int nf = 1; nf <= 3; nf++) {
    char name[64];
    snprintf(name, sizeof name, "decode%d.latents", nf);
    reel_tensor lat = upload(b, st, name);
    int64_t vs[4] = {3, 1 + 4 * (nf - 1), 24, 40};
    reel_tensor video;
    assert_int_equal(reel_tensor_new(b, REEL_F32, 4, vs, &video, &err), REEL_OK);
    if (reel_wan_vae_decode(v, &lat, arena, &video, &err) != REEL_OK) fail_msg("%s: %s", err.field, err.msg);
    assert_int_equal(reel_tensor_arena_used(arena), 0);
    snprintf(name, sizeof name, "decode%d.sample", nf);
    compare(b, &video, st, name, 1e-4);
    order_ctx oc = {0, 0};
    assert_int_equal(reel_wan_vae_decode_stream(v, &lat, arena, check_order, &oc, &err), REEL_OK);
    assert_int_equal(oc.next, vs[1]);
    reel_tensor_free(&lat);
    reel_tensor_free(&video);
  }
  /* the arena a decode needs is set by h x w alone */
  reel_tensor_arena_destroy(&arena);

  size_t enc_need = 0;
  assert_int_equal(reel_wan_vae_encode_arena_bytes(v, 24, 40, &enc_need, &err), REEL_OK);
  arena = reel_tensor_arena_new(b, enc_need, &err);
  reel_tensor video = upload(b, st, "encode.video"), mean, logvar;
  int64_t ls[4] = {16, 3, 3, 5};
  assert_int_equal(reel_tensor_new(b, REEL_F32, 4, ls, &mean, &err), REEL_OK);
  assert_int_equal(reel_tensor_new(b, REEL_F32, 4, ls, &logvar, &err), REEL_OK);
  if (reel_wan_vae_encode(v, &video, arena, &mean, &logvar, &err) != REEL_OK) fail_msg("%s: %s", err.field, err.msg);
  compare(b, &mean, st, "encode.mean", 1e-4);
  compare(b, &logvar, st, "encode.logvar", 1e-4);
  reel_tensor_free(&video);
  reel_tensor_free(&mean);
  reel_tensor_free(&logvar);
  reel_tensor_arena_destroy(&arena);
  reel_safetensors_close(&st);
  reel_wan_vae_destroy(&v);
  assert_null(v);
  reel_backend_destroy(&b);
}

static void test_denormalize_and_arena(void **state) {
  (void)state;
  char path[1024];
  reel_error err = {0};
  reel_backend *b = reel_backend_new_cpu(1, &err);
  reel_wan_vae *v = NULL;
  fixture_path(path, sizeof path, "tiny-wan/vae");
  assert_int_equal(reel_wan_vae_load(b, path, &v, &err), REEL_OK);
  const reel_wan_vae_config *c = reel_wan_vae_get_config(v);
  int64_t s[4] = {16, 2, 1, 1};
  float x[32], y[32];
  for (int i = 0; i < 32; i++) x[i] = (float)(i - 16) * 0.25f;
  reel_tensor t;
  assert_int_equal(reel_tensor_new(b, REEL_F32, 4, s, &t, &err), REEL_OK);
  assert_int_equal(reel_tensor_upload(&t, x, sizeof x, &err), REEL_OK);
  assert_int_equal(reel_wan_vae_denormalize(v, &t, &t, &err), REEL_OK);
  assert_int_equal(reel_tensor_download(&t, y, sizeof y, &err), REEL_OK);
  for (int i = 0; i < 32; i++) {
    float inv = 1.0f / c->latents_std[i / 2];
    float want = x[i] / inv + c->latents_mean[i / 2];
    assert_true(fabsf(y[i] - want) <= 1e-6f * (1.0f + fabsf(want)));
  }
  reel_tensor_free(&t);
  /* a too small arena is refused up front, naming it */
  reel_tensor_arena *small = reel_tensor_arena_new(b, 1 << 10, &err);
  int64_t ls[4] = {16, 2, 3, 5}, vs[4] = {3, 5, 24, 40};
  reel_tensor lat, video;
  assert_int_equal(reel_tensor_new(b, REEL_F32, 4, ls, &lat, &err), REEL_OK);
  assert_int_equal(reel_tensor_new(b, REEL_F32, 4, vs, &video, &err), REEL_OK);
  assert_int_equal(reel_wan_vae_decode(v, &lat, small, &video, &err), REEL_ELIMIT);
  assert_string_equal(err.field, "arena");
  reel_tensor_free(&lat);
  reel_tensor_free(&video);
  reel_tensor_arena_destroy(&small);
  reel_wan_vae_destroy(&v);
  reel_backend_destroy(&b);
}

/* Copies the fixture VAE into dir with one tensor dropped or given a wrong shape, and a config. */
static void write_variant(const char *dir, const char *config, const char *drop, const char *reshape) {
  char path[1024];
  reel_error err = {0};
  reel_safetensors *st = NULL;
  fixture_path(path, sizeof path, "tiny-wan/vae/diffusion_pytorch_model.safetensors");
  assert_int_equal(reel_safetensors_open(path, &st, &err), REEL_OK);
  size_t n = reel_safetensors_count(st), k = 0;
  reel_st_entry *e = calloc(n, sizeof *e);
  int64_t bad[8];
  for (size_t i = 0; i < n; i++) {
    const reel_st_tensor *t = reel_safetensors_at(st, i);
    if (drop && !strcmp(t->name, drop)) continue;
    e[k] = (reel_st_entry){t->name, t->dtype, t->rank, t->shape, t->data};
    if (reshape && !strcmp(t->name, reshape)) { /* swap the first two dims */
      memcpy(bad, t->shape, sizeof(int64_t) * (size_t)t->rank);
      bad[0] = t->shape[1];
      bad[1] = t->shape[0];
      e[k].shape = bad;
    }
    k++;
  }
  snprintf(path, sizeof path, "%s/diffusion_pytorch_model.safetensors", dir);
  assert_int_equal(reel_safetensors_write(path, e, k, NULL, 0, &err), REEL_OK);
  free(e);
  reel_safetensors_close(&st);
  if (config) {
    snprintf(path, sizeof path, "%s/config.json", dir);
    tu_write_file(path, config, strlen(config));
  } else {
    char src[1024], *text;
    size_t len = 0;
    fixture_path(src, sizeof src, "tiny-wan/vae/config.json");
    text = tu_read_file(src, &len);
    snprintf(path, sizeof path, "%s/config.json", dir);
    tu_write_file(path, text, len);
    free(text);
  }
}

static void expect_fail(const char *dir, reel_status want, const char *needle) {
  reel_error err = {0};
  reel_backend *b = reel_backend_new_cpu(1, &err);
  reel_wan_vae *v = NULL;
  reel_status rc = reel_wan_vae_load(b, dir, &v, &err);
  char all[REEL_ERROR_FIELD_MAX + REEL_ERROR_MSG_MAX + 2];
  snprintf(all, sizeof all, "%s %s", err.field, err.msg);
  if (rc != want || !strstr(all, needle)) fail_msg("want %d naming %s, got %d: %s", (int)want, needle, (int)rc, all);
  assert_null(v);
  reel_backend_destroy(&b);
}

static void test_malformed(void **state) {
  (void)state;
  char dir[256];
  tu_mkdtemp(dir, sizeof dir);
  write_variant(dir, NULL, "decoder.up_blocks.1.upsamplers.0.time_conv.weight", NULL);
  expect_fail(dir, REEL_ENOTFOUND, "decoder.up_blocks.1.upsamplers.0.time_conv.weight");
  write_variant(dir, NULL, NULL, "encoder.mid_block.attentions.0.to_qkv.weight");
  expect_fail(dir, REEL_EMODEL, "encoder.mid_block.attentions.0.to_qkv.weight");
  write_variant(dir, NULL, "decoder.norm_out.gamma", NULL);
  expect_fail(dir, REEL_ENOTFOUND, "decoder.norm_out.gamma");
  static const char base[] = "\"base_dim\":4,\"z_dim\":16,\"num_res_blocks\":1,\"dim_mult\":[1,2,2,2],";
  char cfg[2048];
  snprintf(cfg, sizeof cfg, "{%s\"temperal_downsample\":[false,true],\"latents_mean\":[],\"latents_std\":[]}", base);
  write_variant(dir, cfg, NULL, NULL);
  expect_fail(dir, REEL_EINVAL, "temperal_downsample");
  snprintf(cfg, sizeof cfg, "{%s\"temperal_downsample\":[false,true,true],\"is_residual\":true}", base);
  write_variant(dir, cfg, NULL, NULL);
  expect_fail(dir, REEL_EUNSUPPORTED, "is_residual");
  snprintf(cfg, sizeof cfg, "{%s\"temperal_downsample\":[false,true,true],\"latents_mean\":[1,2]}", base);
  write_variant(dir, cfg, NULL, NULL);
  expect_fail(dir, REEL_EINVAL, "latents_mean");
  snprintf(cfg, sizeof cfg, "{%s\"temperal_downsample\":[false,true,true],\"attn_scales\":[0.5]}", base);
  write_variant(dir, cfg, NULL, NULL);
  expect_fail(dir, REEL_EUNSUPPORTED, "attn_scales");
  /* diffusers sizes latents by these: they must agree with the layers (8x spatial, 4x temporal here). */
  snprintf(cfg, sizeof cfg, "{%s\"temperal_downsample\":[false,true,true],\"scale_factor_spatial\":4}", base);
  write_variant(dir, cfg, NULL, NULL);
  expect_fail(dir, REEL_EINVAL, "scale_factor_spatial");
  snprintf(cfg, sizeof cfg, "{%s\"temperal_downsample\":[false,true,true],\"scale_factor_temporal\":8}", base);
  write_variant(dir, cfg, NULL, NULL);
  expect_fail(dir, REEL_EINVAL, "scale_factor_temporal");
  tu_rmtree(dir);
}

/* The VAE with every weight stored as bf16 decodes close to the f32 model. */
static void test_bf16_weights(void **state) {
  (void)state;
  char dir[256], path[1024];
  reel_error err = {0};
  tu_mkdtemp(dir, sizeof dir);
  reel_safetensors *st = NULL;
  fixture_path(path, sizeof path, "tiny-wan/vae/diffusion_pytorch_model.safetensors");
  assert_int_equal(reel_safetensors_open(path, &st, &err), REEL_OK);
  size_t n = reel_safetensors_count(st);
  reel_st_entry *e = calloc(n, sizeof *e);
  uint16_t **bufs = calloc(n, sizeof *bufs);
  for (size_t i = 0; i < n; i++) {
    const reel_st_tensor *t = reel_safetensors_at(st, i);
    float *f = malloc((size_t)t->nbytes);
    memcpy(f, t->data, (size_t)t->nbytes);
    bufs[i] = malloc((size_t)t->numel * 2);
    reel_convert_f32_to_bf16(f, bufs[i], (size_t)t->numel);
    free(f);
    e[i] = (reel_st_entry){t->name, REEL_ST_BF16, t->rank, t->shape, bufs[i]};
  }
  snprintf(path, sizeof path, "%s/diffusion_pytorch_model.safetensors", dir);
  assert_int_equal(reel_safetensors_write(path, e, n, NULL, 0, &err), REEL_OK);
  write_variant(dir, NULL, NULL, NULL); /* config.json (and a f32 copy that is overwritten next) */
  assert_int_equal(reel_safetensors_write(path, e, n, NULL, 0, &err), REEL_OK);
  reel_backend *b = reel_backend_new_cpu(2, &err);
  reel_wan_vae *v16 = NULL;
  if (reel_wan_vae_load(b, dir, &v16, &err) != REEL_OK) fail_msg("%s: %s", err.field, err.msg);
  reel_safetensors *ref = NULL;
  fixture_path(path, sizeof path, "tiny-wan/reference/vae.safetensors");
  assert_int_equal(reel_safetensors_open(path, &ref, &err), REEL_OK);
  reel_tensor lat = upload(b, ref, "decode2.latents"), video;
  int64_t vs[4] = {3, 5, 24, 40};
  assert_int_equal(reel_tensor_new(b, REEL_F32, 4, vs, &video, &err), REEL_OK);
  size_t need = 0;
  assert_int_equal(reel_wan_vae_decode_arena_bytes(v16, 3, 5, &need, &err), REEL_OK);
  reel_tensor_arena *arena = reel_tensor_arena_new(b, need, &err);
  assert_int_equal(reel_wan_vae_decode(v16, &lat, arena, &video, &err), REEL_OK);
  size_t cnt = 3 * 5 * 24 * 40;
  float *got = malloc(cnt * sizeof *got), *want = malloc(cnt * sizeof *want);
  assert_int_equal(reel_tensor_download(&video, got, cnt * sizeof *got, &err), REEL_OK);
  memcpy(want, reel_safetensors_find(ref, "decode2.sample")->data, cnt * sizeof *want);
  double d = tu_max_abs_diff(got, want, cnt, NULL);
  printf("bf16 weights vs f32 reference: max abs diff %.3g\n", d);
  assert_true(d > 0.0 && d < 0.1);
  free(got);
  free(want);
  reel_tensor_free(&lat);
  reel_tensor_free(&video);
  reel_tensor_arena_destroy(&arena);
  reel_safetensors_close(&ref);
  reel_wan_vae_destroy(&v16);
  reel_backend_destroy(&b);
  for (size_t i = 0; i < n; i++) free(bufs[i]);
  free(bufs);
  free(e);
  reel_safetensors_close(&st);
  tu_rmtree(dir);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_decode_encode),
      cmocka_unit_test(test_denormalize_and_arena),
      cmocka_unit_test(test_malformed),
      cmocka_unit_test(test_bf16_weights),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
