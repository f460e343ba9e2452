/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Malformed Wan configurations, checkpoints and forward inputs: each is rejected
 * with the right code and an error whose field names the config key, the tensor
 * or the argument, and nothing crashes or leaks (run under the sanitizer build).
 * Also the single-file path without a config.json: the configuration inferred
 * from the shapes, and the same weights under diffusers names, original names and
 * the "model.diffusion_model." prefix giving bit-identical forwards.
 */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "reel/alloc.h"
#include "reel/json.h"
#include "reel/wan.h"
#include "testutil.h"
#include "wan_testutil.h"

typedef struct fixture {
  char dir[256];
  reel_backend *b;
  json_t *config;       /* tiny-wan's config.json */
  reel_safetensors *st; /* tiny-wan's weights */
} fixture;

static int setup(void **state) {
  fixture *f = calloc(1, sizeof *f);
  tu_mkdtemp(f->dir, sizeof f->dir);
  reel_error err = {0};
  f->b = reel_backend_new_cpu(1, &err);
  char path[1024];
  json_error_t je;
  f->config = json_load_file(wt_fixture(path, sizeof path, "tiny-wan/transformer/config.json"), 0, &je);
  f->st = wt_open("tiny-wan/transformer/diffusion_pytorch_model.safetensors");
  *state = f;
  return f->b && f->config && f->st ? 0 : -1;
}

static int teardown(void **state) {
  fixture *f = *state;
  tu_rmtree(f->dir);
  reel_backend_destroy(&f->b);
  json_decref(f->config);
  reel_safetensors_close(&f->st);
  free(f);
  return 0;
}

/* ---- configuration ---------------------------------------------------------------------- */

/* Parses tiny-wan's config with `key` set to the JSON `value` (NULL: removed); returns the status. */
static reel_status parse_with(fixture *f, const char *key, const char *value, reel_error *err) {
  json_t *c = json_deep_copy(f->config);
  if (value) {
    json_error_t je;
    json_t *v = json_loads(value, JSON_DECODE_ANY, &je);
    assert_non_null(v);
    json_object_set_new(c, key, v);
  } else {
    json_object_del(c, key);
  }
  char *text = json_dumps(c, JSON_COMPACT);
  json_decref(c);
  reel_wan_config cfg;
  reel_error_clear(err);
  reel_status st = reel_wan_config_parse(text, strlen(text), "transformer/config.json", &cfg, err);
  free(text);
  return st;
}

static void expect_config(fixture *f, const char *key, const char *value, reel_status code, const char *field) {
  reel_error err;
  reel_status st = parse_with(f, key, value, &err);
  if (st != code || strcmp(err.field, field) != 0)
    fail_msg("%s=%s: got %s field \"%s\" (%s), want %s \"%s\"", key, value ? value : "(removed)", reel_status_name(st),
             err.field, err.msg, reel_status_name(code), field);
}

static void test_config_fields(void **state) {
  fixture *f = *state;
  reel_error err;
  assert_int_equal(parse_with(f, "eps", "1e-6", &err), REEL_OK);
  expect_config(f, "num_layers", "\"two\"", REEL_EINVAL, "transformer/config.json.num_layers");
  expect_config(f, "num_layers", NULL, REEL_EINVAL, "transformer/config.json.num_layers");
  expect_config(f, "num_layers", "0", REEL_ERANGE, "transformer/config.json.num_layers");
  expect_config(f, "num_attention_heads", "100000", REEL_ERANGE, "transformer/config.json.num_attention_heads");
  expect_config(f, "attention_head_dim", "21", REEL_EINVAL, "transformer/config.json.attention_head_dim");
  expect_config(f, "attention_head_dim", "30000", REEL_ERANGE, "transformer/config.json.attention_head_dim");
  expect_config(f, "ffn_dim", "-4", REEL_ERANGE, "transformer/config.json.ffn_dim");
  expect_config(f, "in_channels", "1.5", REEL_EINVAL, "transformer/config.json.in_channels");
  expect_config(f, "text_dim", "null", REEL_EINVAL, "transformer/config.json.text_dim");
  expect_config(f, "freq_dim", "[32]", REEL_EINVAL, "transformer/config.json.freq_dim");
  expect_config(f, "patch_size", "[1, 2]", REEL_EINVAL, "transformer/config.json.patch_size");
  expect_config(f, "patch_size", "[1, 0, 2]", REEL_ERANGE, "transformer/config.json.patch_size");
  expect_config(f, "eps", "0", REEL_ERANGE, "transformer/config.json.eps");
  expect_config(f, "eps", "\"small\"", REEL_EINVAL, "transformer/config.json.eps");
  expect_config(f, "cross_attn_norm", "1", REEL_EINVAL, "transformer/config.json.cross_attn_norm");
  expect_config(f, "qk_norm", "\"rms_norm\"", REEL_EUNSUPPORTED, "transformer/config.json.qk_norm");
  expect_config(f, "image_dim", "1280", REEL_EUNSUPPORTED, "transformer/config.json.image_dim");
  expect_config(f, "added_kv_proj_dim", "60", REEL_EUNSUPPORTED, "transformer/config.json.added_kv_proj_dim");
  expect_config(f, "window_size", "[-1, -1]", REEL_EUNSUPPORTED, "transformer/config.json.window_size");
  expect_config(f, "_class_name", "\"WanVACETransformer3DModel\"", REEL_EUNSUPPORTED,
                "transformer/config.json._class_name");
  expect_config(f, "rope_max_seq_len", "0", REEL_ERANGE, "transformer/config.json.rope_max_seq_len");

  /* Not JSON / not an object. */
  reel_wan_config cfg;
  reel_error_clear(&err);
  assert_int_equal(reel_wan_config_parse("{\"num_layers\": 2,", 17, "cfg", &cfg, &err), REEL_EFORMAT);
  assert_string_equal(err.field, "cfg");
  reel_error_clear(&err);
  assert_int_equal(reel_wan_config_parse("[1]", 3, "cfg", &cfg, &err), REEL_EFORMAT);

  /* The good config: sizes, the rope split and diffusers' defaults for absent flags. */
  char path[1024];
  reel_error_clear(&err);
  assert_int_equal(reel_wan_config_load(wt_fixture(path, sizeof path, "tiny-wan/transformer/config.json"), &cfg, &err),
                   REEL_OK);
  assert_int_equal(cfg.dim, 60);
  assert_int_equal(cfg.rope_dims[0], 8);
  assert_int_equal(cfg.rope_dims[1], 6);
  assert_int_equal(cfg.rope_dims[2], 6);
  assert_int_equal(cfg.patch[1], 2);
  reel_error_clear(&err);
  assert_int_equal(reel_wan_config_load("/nonexistent/config.json", &cfg, &err), REEL_ENOTFOUND);
}

/* The released configurations: every size from the file, the rope split of 128-wide heads. */
static void test_config_released(void **state) {
  (void)state;
  static const char *const c13 =
      "{\"_class_name\": \"WanTransformer3DModel\", \"_diffusers_version\": \"0.33.0.dev0\", \"added_kv_proj_dim\": "
      "null, \"attention_head_dim\": 128, \"cross_attn_norm\": true, \"eps\": 1e-06, \"ffn_dim\": 8960, "
      "\"freq_dim\": 256, \"image_dim\": null, \"in_channels\": 16, \"num_attention_heads\": 12, \"num_layers\": 30, "
      "\"out_channels\": 16, \"patch_size\": [1, 2, 2], \"qk_norm\": \"rms_norm_across_heads\", \"rope_max_seq_len\": "
      "1024, \"text_dim\": 4096}";
  static const char *const c14 =
      "{\"_class_name\": \"WanTransformer3DModel\", \"attention_head_dim\": 128, \"cross_attn_norm\": true, "
      "\"eps\": 1e-06, \"ffn_dim\": 13824, \"freq_dim\": 256, \"in_channels\": 16, \"num_attention_heads\": 40, "
      "\"num_layers\": 40, \"out_channels\": 16, \"patch_size\": [1, 2, 2], \"qk_norm\": \"rms_norm_across_heads\", "
      "\"rope_max_seq_len\": 1024, \"text_dim\": 4096}";
  reel_wan_config c;
  reel_error err = {0};
  assert_int_equal(reel_wan_config_parse(c13, strlen(c13), "1.3B", &c, &err), REEL_OK);
  assert_int_equal(c.dim, 1536);
  assert_int_equal(c.heads, 12);
  assert_int_equal(c.layers, 30);
  assert_int_equal(c.ffn_dim, 8960);
  assert_int_equal(c.text_dim, 4096);
  assert_int_equal(c.freq_dim, 256);
  assert_int_equal(c.rope_dims[0], 44);
  assert_int_equal(c.rope_dims[1], 42);
  assert_int_equal(c.rope_dims[2], 42);
  assert_int_equal(reel_wan_config_parse(c14, strlen(c14), "14B", &c, &err), REEL_OK);
  assert_int_equal(c.dim, 5120);
  assert_int_equal(c.heads, 40);
  assert_int_equal(c.layers, 40);
  assert_int_equal(c.ffn_dim, 13824);
  assert_true(c.eps == 1e-6);
}

/* ---- checkpoints ------------------------------------------------------------------------ */

typedef enum { EDIT_NONE, EDIT_DROP, EDIT_RESHAPE, EDIT_DTYPE, EDIT_RENAME } edit_kind;

/*
 * Writes <dir>/model/{config.json, diffusion_pytorch_model.safetensors}: tiny-wan's
 * weights with one edit applied to tensor `name`, and the config with `key` set
 * to `value` (NULL key: unchanged). Returns the model folder in buf.
 */
static const char *write_model(fixture *f, edit_kind edit, const char *name, const char *key, const char *value,
                               char *buf, size_t size) {
  snprintf(buf, size, "%s/model", f->dir);
  tu_rmtree(buf);
  char cmd[600];
  snprintf(cmd, sizeof cmd, "mkdir -p '%s'", buf);
  assert_int_equal(tu_run(cmd, NULL), 0);
  size_t n = reel_safetensors_count(f->st), k = 0;
  reel_st_entry *e = calloc(n + 1, sizeof *e);
  int64_t(*shapes)[REEL_ST_MAX_RANK] = calloc(n + 1, sizeof *shapes);
  int32_t ints[64] = {0};
  for (size_t i = 0; i < n; i++) {
    const reel_st_tensor *t = reel_safetensors_at(f->st, i);
    int hit = strcmp(t->name, name ? name : "") == 0;
    if (hit && edit == EDIT_DROP) continue;
    memcpy(shapes[k], t->shape, sizeof shapes[k]);
    e[k] = (reel_st_entry){t->name, t->dtype, t->rank, shapes[k], t->data};
    if (hit && edit == EDIT_RESHAPE) shapes[k][0] -= 1; /* fewer elements: data is a prefix */
    if (hit && edit == EDIT_DTYPE) {
      e[k].dtype = REEL_ST_I32;
      e[k].rank = 1;
      shapes[k][0] = 16;
      e[k].data = ints;
    }
    if (hit && edit == EDIT_RENAME) e[k].name = "blocks.0.attn2.add_k_proj.weight";
    k++;
  }
  char path[1024];
  reel_error err = {0};
  snprintf(path, sizeof path, "%s/diffusion_pytorch_model.safetensors", buf);
  assert_int_equal(reel_safetensors_write(path, e, k, NULL, 0, &err), REEL_OK);
  free(e);
  free(shapes);
  json_t *c = json_deep_copy(f->config);
  if (key) {
    json_error_t je;
    json_object_set_new(c, key, json_loads(value, JSON_DECODE_ANY, &je));
  }
  snprintf(path, sizeof path, "%s/config.json", buf);
  assert_int_equal(json_dump_file(c, path, 0), 0);
  json_decref(c);
  return buf;
}

static void expect_load(fixture *f, const char *dir, reel_status code, const char *field) {
  reel_error err = {0};
  reel_wan_transformer *m = (reel_wan_transformer *)1;
  reel_status st = reel_wan_transformer_load_dir(f->b, dir, &m, &err);
  if (st != code || strcmp(err.field, field) != 0)
    fail_msg("got %s field \"%s\" (%s), want %s \"%s\"", reel_status_name(st), err.field, err.msg,
             reel_status_name(code), field);
  assert_null(m);
}

static void test_bad_weights(void **state) {
  fixture *f = *state;
  char dir[512];
  expect_load(f, write_model(f, EDIT_DROP, "blocks.1.attn2.norm_k.weight", NULL, NULL, dir, sizeof dir), REEL_ENOTFOUND,
              "blocks.1.attn2.norm_k.weight");
  expect_load(f, write_model(f, EDIT_DROP, "proj_out.bias", NULL, NULL, dir, sizeof dir), REEL_ENOTFOUND,
              "proj_out.bias");
  expect_load(f, write_model(f, EDIT_RESHAPE, "blocks.0.ffn.net.2.weight", NULL, NULL, dir, sizeof dir), REEL_EMODEL,
              "blocks.0.ffn.net.2.weight");
  expect_load(f, write_model(f, EDIT_DTYPE, "blocks.0.scale_shift_table", NULL, NULL, dir, sizeof dir), REEL_EMODEL,
              "blocks.0.scale_shift_table");
  /* A tensor the configuration has no place for. */
  expect_load(f, write_model(f, EDIT_RENAME, "blocks.1.attn1.norm_q.weight", NULL, NULL, dir, sizeof dir),
              REEL_ENOTFOUND, "blocks.1.attn1.norm_q.weight");
  /* Configurations that disagree with the weights. */
  expect_load(f, write_model(f, EDIT_NONE, NULL, "num_layers", "3", dir, sizeof dir), REEL_ENOTFOUND,
              "blocks.2.scale_shift_table");
  expect_load(f, write_model(f, EDIT_NONE, NULL, "num_layers", "1", dir, sizeof dir), REEL_EMODEL,
              "blocks.1.attn1.norm_k.weight");
  expect_load(f, write_model(f, EDIT_NONE, NULL, "num_attention_heads", "4", dir, sizeof dir), REEL_EMODEL,
              "patch_embedding.weight");
  expect_load(f, write_model(f, EDIT_NONE, NULL, "ffn_dim", "100", dir, sizeof dir), REEL_EMODEL,
              "blocks.0.ffn.net.0.proj.weight");
  expect_load(f, write_model(f, EDIT_NONE, NULL, "text_dim", "48", dir, sizeof dir), REEL_EMODEL,
              "condition_embedder.text_embedder.linear_1.weight");
  expect_load(f, write_model(f, EDIT_NONE, NULL, "out_channels", "4", dir, sizeof dir), REEL_EMODEL, "proj_out.weight");
  expect_load(f, write_model(f, EDIT_NONE, NULL, "cross_attn_norm", "false", dir, sizeof dir), REEL_EMODEL,
              "blocks.0.norm2.bias");
  expect_load(f, write_model(f, EDIT_NONE, NULL, "patch_size", "[1, 1, 2]", dir, sizeof dir), REEL_EMODEL,
              "patch_embedding.weight");
  /* No weights at all; a config that is not JSON. */
  char path[1100];
  snprintf(path, sizeof path, "%s/diffusion_pytorch_model.safetensors", dir);
  assert_int_equal(unlink(path), 0);
  reel_error err = {0};
  reel_wan_transformer *m = NULL;
  assert_int_equal(reel_wan_transformer_load_dir(f->b, dir, &m, &err), REEL_ENOTFOUND);
  snprintf(path, sizeof path, "%s/config.json", dir);
  tu_write_file(path, "{\"num_layers\": ", 15);
  reel_error_clear(&err);
  assert_int_equal(reel_wan_transformer_load_dir(f->b, dir, &m, &err), REEL_EFORMAT);
  assert_null(m);
}

/* Loading under allocation failure: every failure point gives an error, never a crash or a leak. */
static void test_load_alloc_failures(void **state) {
  fixture *f = *state;
  char dir[512];
  write_model(f, EDIT_NONE, NULL, NULL, NULL, dir, sizeof dir);
  /*
   * jansson itself is kept out of the injection: 2.14 frees a hash table's buckets
   * before allocating the larger array when an object grows past 8 keys, and
   * crashes when that allocation fails (config.json and safetensors headers have
   * more keys). Its failures are covered where reel's JSON layer is tested.
   */
  json_set_alloc_funcs(malloc, free);
  int failures = 0;
  for (long n = 0;; n++) {
    reel_error err = {0};
    reel_wan_transformer *m = NULL;
    reel_alloc_fail_after(n, 0);
    reel_status st = reel_wan_transformer_load_dir(f->b, dir, &m, &err);
    reel_alloc_fail_after(-1, 0);
    if (st == REEL_OK) {
      reel_wan_transformer_destroy(&m);
      break;
    }
    assert_null(m);
    failures++;
    assert_true(n < 100000);
  }
  reel_json_use_reel_alloc();
  assert_true(failures > 10);
}

/* ---- forward inputs --------------------------------------------------------------------- */

static void test_bad_inputs(void **state) {
  fixture *f = *state;
  char dir[1024];
  reel_error err = {0};
  reel_wan_transformer *m = NULL;
  assert_int_equal(reel_wan_transformer_load_dir(f->b, wt_fixture(dir, sizeof dir, "tiny-wan/transformer"), &m, &err),
                   REEL_OK);
  int64_t ls[5] = {1, 16, 3, 6, 10}, cs[3] = {1, 7, 32};
  float ts[1] = {500.0f};
  reel_tensor lat, ctx, out, odd, ctx_bad, lat_c;
  assert_int_equal(reel_tensor_new(f->b, REEL_F32, 5, ls, &lat, &err), REEL_OK);
  assert_int_equal(reel_tensor_new(f->b, REEL_F32, 5, ls, &out, &err), REEL_OK);
  assert_int_equal(reel_tensor_new(f->b, REEL_F32, 3, cs, &ctx, &err), REEL_OK);
  assert_int_equal(reel_buffer_memset(lat.buf, 0, 0, reel_tensor_nbytes(&lat), &err), REEL_OK);
  assert_int_equal(reel_buffer_memset(ctx.buf, 0, 0, reel_tensor_nbytes(&ctx), &err), REEL_OK);
  int64_t os[5] = {1, 16, 3, 5, 10}, cb[3] = {1, 7, 31}, lc[5] = {1, 15, 3, 6, 10};
  assert_int_equal(reel_tensor_new(f->b, REEL_F32, 5, os, &odd, &err), REEL_OK);
  assert_int_equal(reel_tensor_new(f->b, REEL_F32, 3, cb, &ctx_bad, &err), REEL_OK);
  assert_int_equal(reel_tensor_new(f->b, REEL_F32, 5, lc, &lat_c, &err), REEL_OK);
  size_t need = 0;
  assert_int_equal(reel_wan_forward_arena_bytes(m, 1, 3, 6, 10, 7, &need, &err), REEL_OK);
  reel_tensor_arena *arena = reel_tensor_arena_new(f->b, need, &err);
  reel_tensor_arena *small = reel_tensor_arena_new(f->b, need / 2, &err);

  struct {
    const reel_tensor *lat, *ctx;
    reel_tensor *out;
    reel_tensor_arena *arena;
    reel_status code;
    const char *field;
  } cases[] = {
      {&odd, &ctx, &odd, arena, REEL_EINVAL, "latents.height"}, {&lat_c, &ctx, &out, arena, REEL_EINVAL, "latents"},
      {&lat, &ctx_bad, &out, arena, REEL_EINVAL, "context"},    {&lat, &ctx, &odd, arena, REEL_EINVAL, "out"},
      {&lat, &ctx, &out, small, REEL_ELIMIT, "arena"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    reel_error_clear(&err);
    reel_status st = reel_wan_forward(m, cases[i].lat, ts, cases[i].ctx, cases[i].arena, cases[i].out, &err);
    if (st != cases[i].code || strcmp(err.field, cases[i].field) != 0)
      fail_msg("case %zu: got %s \"%s\" (%s)", i, reel_status_name(st), err.field, err.msg);
    assert_int_equal(reel_tensor_arena_used(cases[i].arena), 0);
  }
  float bad_ts[1] = {NAN};
  reel_error_clear(&err);
  assert_int_equal(reel_wan_forward(m, &lat, bad_ts, &ctx, arena, &out, &err), REEL_EINVAL);
  assert_string_equal(err.field, "timesteps");
  reel_error_clear(&err);
  assert_int_equal(reel_wan_forward_arena_bytes(m, 1, 3, 6, 9, 7, &need, &err), REEL_EINVAL);
  assert_string_equal(err.field, "latents.width");
  reel_error_clear(&err);
  assert_int_equal(reel_wan_forward_arena_bytes(m, 2, 1024, 2048, 2048, 512, &need, &err), REEL_ELIMIT);
  assert_string_equal(err.field, "latents");
  reel_error_clear(&err);
  assert_int_equal(reel_wan_text_arena_bytes(m, 65536, 1 << 20, &need, &err), REEL_ERANGE);
  /* And the good call still works after all that. */
  reel_error_clear(&err);
  assert_int_equal(reel_wan_forward(m, &lat, ts, &ctx, arena, &out, &err), REEL_OK);

  reel_tensor_arena_destroy(&arena);
  reel_tensor_arena_destroy(&small);
  reel_tensor_free(&lat);
  reel_tensor_free(&out);
  reel_tensor_free(&ctx);
  reel_tensor_free(&odd);
  reel_tensor_free(&ctx_bad);
  reel_tensor_free(&lat_c);
  reel_wan_transformer_destroy(&m);
}

/* ---- single files without config: inference and the three key layouts ------------------- */

/* The mapping from the fixtures README, applied to a diffusers name. */
static void original_name(const char *d, char *out, size_t size) {
  static const char *const top[][2] = {
      {"condition_embedder.text_embedder.linear_1", "text_embedding.0"},
      {"condition_embedder.text_embedder.linear_2", "text_embedding.2"},
      {"condition_embedder.time_embedder.linear_1", "time_embedding.0"},
      {"condition_embedder.time_embedder.linear_2", "time_embedding.2"},
      {"condition_embedder.time_proj", "time_projection.1"},
      {"scale_shift_table", "head.modulation"},
      {"proj_out", "head.head"},
  };
  static const char *const blk[][2] = {
      {"attn1.to_out.0", "self_attn.o"},
      {"attn2.to_out.0", "cross_attn.o"},
      {"attn1.to_", "self_attn."},
      {"attn2.to_", "cross_attn."},
      {"attn1.", "self_attn."},
      {"attn2.", "cross_attn."},
      {"norm2", "norm3"},
      {"ffn.net.0.proj", "ffn.0"},
      {"ffn.net.2", "ffn.2"},
      {"scale_shift_table", "modulation"},
  };
  snprintf(out, size, "%s", d);
  if (strncmp(d, "blocks.", 7) == 0) {
    const char *rest = strchr(d + 7, '.') + 1;
    for (size_t i = 0; i < sizeof blk / sizeof blk[0]; i++)
      if (strncmp(rest, blk[i][0], strlen(blk[i][0])) == 0) {
        snprintf(out, size, "%.*s%s%s", (int)(rest - d), d, blk[i][1], rest + strlen(blk[i][0]));
        return;
      }
  } else {
    for (size_t i = 0; i < sizeof top / sizeof top[0]; i++)
      if (strncmp(d, top[i][0], strlen(top[i][0])) == 0) {
        snprintf(out, size, "%s%s", top[i][1], d + strlen(top[i][0]));
        return;
      }
  }
}

typedef struct synth {
  char names[64][96];
  int64_t shapes[64][5];
  int ranks[64];
  float *data[64];
  int n;
} synth;

static void add(synth *s, const char *name, int rank, int64_t a, int64_t b, int64_t c, int64_t d, int64_t e) {
  int i = s->n++;
  snprintf(s->names[i], sizeof s->names[i], "%s", name);
  int64_t sh[5] = {a, b, c, d, e};
  size_t n = 1;
  for (int k = 0; k < rank; k++) {
    s->shapes[i][k] = sh[k];
    n *= (size_t)sh[k];
  }
  s->ranks[i] = rank;
  s->data[i] = malloc(n * sizeof(float));
  uint32_t x = 1234u + (uint32_t)i * 7919u;
  double scale = rank >= 2 ? 1.0 / sqrt((double)(n / (size_t)sh[0])) : 0.1;
  for (size_t k = 0; k < n; k++) {
    x = x * 1664525u + 1013904223u;
    s->data[i][k] = (float)(scale * ((double)(x >> 8) / 16777216.0 * 2.0 - 1.0));
  }
}

/* A one-block Wan with width 128 (one head of 128, what inference assumes). */
static void make_synth(synth *s) {
  const int64_t D = 128, C = 4, F = 32, TD = 8, FQ = 8;
  s->n = 0;
  add(s, "patch_embedding.weight", 5, D, C, 1, 2, 2);
  add(s, "patch_embedding.bias", 1, D, 0, 0, 0, 0);
  add(s, "condition_embedder.time_embedder.linear_1.weight", 2, D, FQ, 0, 0, 0);
  add(s, "condition_embedder.time_embedder.linear_1.bias", 1, D, 0, 0, 0, 0);
  add(s, "condition_embedder.time_embedder.linear_2.weight", 2, D, D, 0, 0, 0);
  add(s, "condition_embedder.time_embedder.linear_2.bias", 1, D, 0, 0, 0, 0);
  add(s, "condition_embedder.time_proj.weight", 2, 6 * D, D, 0, 0, 0);
  add(s, "condition_embedder.time_proj.bias", 1, 6 * D, 0, 0, 0, 0);
  add(s, "condition_embedder.text_embedder.linear_1.weight", 2, D, TD, 0, 0, 0);
  add(s, "condition_embedder.text_embedder.linear_1.bias", 1, D, 0, 0, 0, 0);
  add(s, "condition_embedder.text_embedder.linear_2.weight", 2, D, D, 0, 0, 0);
  add(s, "condition_embedder.text_embedder.linear_2.bias", 1, D, 0, 0, 0, 0);
  add(s, "blocks.0.scale_shift_table", 3, 1, 6, D, 0, 0);
  static const char *const lin[] = {"attn1.to_q", "attn1.to_k", "attn1.to_v", "attn1.to_out.0",
                                    "attn2.to_q", "attn2.to_k", "attn2.to_v", "attn2.to_out.0"};
  char n[96];
  for (int i = 0; i < 8; i++) {
    snprintf(n, sizeof n, "blocks.0.%s.weight", lin[i]);
    add(s, n, 2, D, D, 0, 0, 0);
    snprintf(n, sizeof n, "blocks.0.%s.bias", lin[i]);
    add(s, n, 1, D, 0, 0, 0, 0);
  }
  static const char *const vec[] = {"attn1.norm_q.weight", "attn1.norm_k.weight", "attn2.norm_q.weight",
                                    "attn2.norm_k.weight", "norm2.weight",        "norm2.bias"};
  for (int i = 0; i < 6; i++) {
    snprintf(n, sizeof n, "blocks.0.%s", vec[i]);
    add(s, n, 1, D, 0, 0, 0, 0);
  }
  add(s, "blocks.0.ffn.net.0.proj.weight", 2, F, D, 0, 0, 0);
  add(s, "blocks.0.ffn.net.0.proj.bias", 1, F, 0, 0, 0, 0);
  add(s, "blocks.0.ffn.net.2.weight", 2, D, F, 0, 0, 0);
  add(s, "blocks.0.ffn.net.2.bias", 1, D, 0, 0, 0, 0);
  add(s, "scale_shift_table", 3, 1, 2, D, 0, 0);
  add(s, "proj_out.weight", 2, 4 * C, D, 0, 0, 0);
  add(s, "proj_out.bias", 1, 4 * C, 0, 0, 0, 0);
}

/* Writes the synthetic model under `layout` (0 diffusers, 1 original, 2 prefixed original) as bf16. */
static void write_synth(const synth *s, int layout, const char *path) {
  reel_st_entry e[64];
  char names[64][160];
  uint16_t *bf[64];
  for (int i = 0; i < s->n; i++) {
    char o[128];
    if (layout == 0)
      snprintf(o, sizeof o, "%s", s->names[i]);
    else
      original_name(s->names[i], o, sizeof o);
    snprintf(names[i], sizeof names[i], "%s%s", layout == 2 ? "model.diffusion_model." : "", o);
    size_t n = 1;
    for (int k = 0; k < s->ranks[i]; k++) n *= (size_t)s->shapes[i][k];
    bf[i] = malloc(n * 2);
    reel_convert_f32_to_bf16(s->data[i], bf[i], n);
    e[i] = (reel_st_entry){names[i], REEL_ST_BF16, s->ranks[i], s->shapes[i], bf[i]};
  }
  reel_error err = {0};
  assert_int_equal(reel_safetensors_write(path, e, (size_t)s->n, NULL, 0, &err), REEL_OK);
  for (int i = 0; i < s->n; i++) free(bf[i]);
}

static float *forward_file(fixture *f, const char *path, const char *config, reel_wan_config *cfg_out) {
  reel_error err = {0};
  reel_wan_transformer *m = NULL;
  reel_status st = reel_wan_transformer_load_file(f->b, path, config, &m, &err);
  if (st != REEL_OK) fail_msg("load %s: %s: %s", path, err.field, err.msg);
  *cfg_out = *reel_wan_transformer_config(m);
  int64_t ls[5] = {2, 4, 2, 4, 6}, cs[3] = {2, 5, 8};
  float lat[2 * 4 * 2 * 4 * 6], ctx[2 * 5 * 8], ts[2] = {999.0f, 250.0f};
  for (size_t i = 0; i < sizeof lat / sizeof lat[0]; i++) lat[i] = (float)sin(0.37 * (double)i);
  for (size_t i = 0; i < sizeof ctx / sizeof ctx[0]; i++) ctx[i] = (float)cos(0.11 * (double)i);
  reel_tensor tl = wt_upload(f->b, 5, ls, lat), tc = wt_upload(f->b, 3, cs, ctx), to;
  assert_int_equal(reel_tensor_new(f->b, REEL_F32, 5, ls, &to, &err), REEL_OK);
  size_t need;
  assert_int_equal(reel_wan_forward_arena_bytes(m, 2, 2, 4, 6, 5, &need, &err), REEL_OK);
  reel_tensor_arena *a = reel_tensor_arena_new(f->b, need, &err);
  assert_int_equal(reel_wan_forward(m, &tl, ts, &tc, a, &to, &err), REEL_OK);
  float *out = wt_download(&to);
  reel_tensor_arena_destroy(&a);
  reel_tensor_free(&tl);
  reel_tensor_free(&tc);
  reel_tensor_free(&to);
  reel_wan_transformer_destroy(&m);
  return out;
}

static void test_single_file_layouts(void **state) {
  fixture *f = *state;
  synth *s = calloc(1, sizeof *s);
  make_synth(s);
  char path[3][512];
  float *out[3];
  reel_wan_config cfg[3];
  for (int l = 0; l < 3; l++) {
    snprintf(path[l], sizeof path[l], "%s/synth%d.safetensors", f->dir, l);
    write_synth(s, l, path[l]);
    out[l] = forward_file(f, path[l], NULL, &cfg[l]);
  }
  /* Inferred from the shapes. */
  assert_int_equal(cfg[1].dim, 128);
  assert_int_equal(cfg[1].heads, 1);
  assert_int_equal(cfg[1].head_dim, 128);
  assert_int_equal(cfg[1].layers, 1);
  assert_int_equal(cfg[1].ffn_dim, 32);
  assert_int_equal(cfg[1].in_channels, 4);
  assert_int_equal(cfg[1].out_channels, 4);
  assert_int_equal(cfg[1].text_dim, 8);
  assert_int_equal(cfg[1].freq_dim, 8);
  assert_int_equal(cfg[1].patch[0], 1);
  assert_int_equal(cfg[1].patch[2], 2);
  assert_int_equal(cfg[1].cross_attn_norm, 1);
  assert_int_equal(cfg[1].rope_dims[0], 44);
  assert_int_equal(cfg[1].rope_dims[1], 42);
  size_t n = 2 * 4 * 2 * 4 * 6;
  int finite = 1;
  for (size_t i = 0; i < n; i++) finite &= isfinite(out[0][i]) != 0;
  assert_true(finite);
  assert_memory_equal(out[0], out[1], n * sizeof(float));
  assert_memory_equal(out[0], out[2], n * sizeof(float));

  /* tiny-wan's width 60 cannot be split into heads of 128: inference refuses, naming the tensor. */
  char tiny[1024];
  reel_error err = {0};
  reel_wan_transformer *m = NULL;
  assert_int_equal(
      reel_wan_transformer_load_file(
          f->b, wt_fixture(tiny, sizeof tiny, "tiny-wan/reference/wan_original_bf16.safetensors"), NULL, &m, &err),
      REEL_EMODEL);
  assert_string_equal(err.field, "patch_embedding.weight");
  assert_null(m);
  for (int l = 0; l < 3; l++) free(out[l]);
  for (int i = 0; i < s->n; i++) free(s->data[i]);
  free(s);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_config_fields, setup, teardown),
      cmocka_unit_test(test_config_released),
      cmocka_unit_test_setup_teardown(test_bad_weights, setup, teardown),
      cmocka_unit_test_setup_teardown(test_load_alloc_failures, setup, teardown),
      cmocka_unit_test_setup_teardown(test_bad_inputs, setup, teardown),
      cmocka_unit_test_setup_teardown(test_single_file_layouts, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
