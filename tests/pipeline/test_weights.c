/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Model weights: single files and sharded checkpoints (index + shards) made here,
 * lookups across shards, the model-folder search, the loader's dtype/shape checks,
 * and indexes that disagree with their shards, each rejected with an error naming
 * the file and the tensor. Allocation-failure injection runs every cleanup path.
 */
#include <ftw.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "reel/alloc.h"
#include "reel/weights.h"
#include "testutil.h"

typedef struct fixture {
  char dir[256];
} fixture;

static int setup(void **state) {
  fixture *f = calloc(1, sizeof *f);
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

static const float va[6] = {1, 2, 3, 4, 5, 6};
static const uint16_t vb[4] = {0x3f80, 0x4000, 0x4040, 0x4080}; /* bf16 1, 2, 3, 4 */
static const uint16_t vc[2] = {0x3c00, 0x4000};                 /* f16 1, 2 */
static const int64_t sa[2] = {2, 3}, sb[1] = {4}, sc[2] = {1, 2};

/* Writes dir/name holding the given tensors (by letter: a = f32 [2,3], b = bf16 [4], c = f16 [1,2]). */
static void write_shard(const char *dir, const char *name, const char *const *tensors, const char *letters) {
  reel_st_entry e[8];
  size_t n = strlen(letters);
  for (size_t i = 0; i < n; i++) {
    switch (letters[i]) {
      case 'a':
        e[i] = (reel_st_entry){tensors[i], REEL_ST_F32, 2, sa, va};
        break;
      case 'b':
        e[i] = (reel_st_entry){tensors[i], REEL_ST_BF16, 1, sb, vb};
        break;
      default:
        e[i] = (reel_st_entry){tensors[i], REEL_ST_F16, 2, sc, vc};
        break;
    }
  }
  char path[512];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  reel_error err;
  reel_error_clear(&err);
  assert_int_equal(reel_safetensors_write(path, e, n, NULL, 0, &err), REEL_OK);
}

static void write_text(const char *dir, const char *name, const char *text) {
  char path[512];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  tu_write_file(path, text, strlen(text));
}

#define INDEX  "diffusion_pytorch_model.safetensors.index.json"
#define SHARD1 "diffusion_pytorch_model-00001-of-00002.safetensors"
#define SHARD2 "diffusion_pytorch_model-00002-of-00002.safetensors"

/* A consistent two-shard checkpoint: blocks.0.{w,b} in shard 1, head.w in shard 2. */
static void write_sharded(const char *dir) {
  write_shard(dir, SHARD1, (const char *const[]){"blocks.0.w", "blocks.0.b"}, "ab");
  write_shard(dir, SHARD2, (const char *const[]){"head.w"}, "c");
  write_text(dir, INDEX,
             "{\"metadata\":{\"total_size\":40},\"weight_map\":{\"blocks.0.w\":\"" SHARD1 "\",\"blocks.0.b\":\"" SHARD1
             "\",\"head.w\":\"" SHARD2 "\"}}");
}

static void test_sharded(void **state) {
  fixture *f = *state;
  write_sharded(f->dir);
  char path[512];
  snprintf(path, sizeof path, "%s/" INDEX, f->dir);
  reel_weights *w = NULL;
  reel_error err;
  reel_error_clear(&err);
  assert_int_equal(reel_weights_open(path, &w, &err), REEL_OK);
  assert_string_equal(reel_weights_path(w), path);
  assert_int_equal(reel_weights_count(w), 3);
  assert_int_equal(reel_weights_shard_count(w), 2);
  assert_non_null(strstr(reel_safetensors_path(reel_weights_shard(w, 0)), SHARD1));
  assert_non_null(strstr(reel_safetensors_path(reel_weights_shard(w, 1)), SHARD2));
  assert_null(reel_weights_shard(w, 2));

  assert_string_equal(reel_weights_at(w, 0)->name, "blocks.0.b");
  assert_string_equal(reel_weights_at(w, 1)->name, "blocks.0.w");
  assert_string_equal(reel_weights_at(w, 2)->name, "head.w");
  assert_null(reel_weights_at(w, 3));

  const reel_st_tensor *t = reel_weights_find(w, "head.w");
  assert_non_null(t);
  assert_int_equal(t->dtype, REEL_ST_F16);
  assert_non_null(strstr(t->file, SHARD2));
  assert_memory_equal(t->data, vc, sizeof vc);
  t = reel_weights_find(w, "blocks.0.w");
  assert_non_null(strstr(t->file, SHARD1));
  assert_memory_equal(t->data, va, sizeof va);
  assert_null(reel_weights_find(w, "blocks.1.w"));

  /* The loader's checks. */
  const reel_st_tensor *got = NULL;
  assert_int_equal(reel_weights_expect(w, "blocks.0.w", REEL_ST_MASK(REEL_ST_F32) | REEL_ST_MASK(REEL_ST_BF16), 2,
                                       (const int64_t[]){2, 3}, &got, &err),
                   REEL_OK);
  assert_ptr_equal(got, reel_weights_find(w, "blocks.0.w"));
  assert_int_equal(reel_weights_expect(w, "blocks.0.w", 0, 2, (const int64_t[]){-1, 3}, &got, &err), REEL_OK);
  assert_int_equal(reel_weights_expect(w, "blocks.0.b", 0, -1, NULL, &got, &err), REEL_OK);

  assert_int_equal(reel_weights_expect(w, "blocks.0.w", 0, 2, (const int64_t[]){3, 2}, &got, &err), REEL_EMODEL);
  assert_null(got);
  assert_string_equal(err.field, "blocks.0.w");
  assert_non_null(strstr(err.msg, SHARD1));
  assert_non_null(strstr(err.msg, "has shape [2, 3], expected [3, 2]"));
  reel_error_clear(&err);
  assert_int_equal(reel_weights_expect(w, "blocks.0.w", 0, 1, (const int64_t[]){6}, &got, &err), REEL_EMODEL);
  reel_error_clear(&err);
  assert_int_equal(reel_weights_expect(w, "head.w", REEL_ST_MASK(REEL_ST_F32) | REEL_ST_MASK(REEL_ST_BF16), 2,
                                       (const int64_t[]){1, 2}, &got, &err),
                   REEL_EMODEL);
  assert_string_equal(err.field, "head.w");
  assert_non_null(strstr(err.msg, "is F16, expected F32 or BF16"));
  reel_error_clear(&err);
  assert_int_equal(reel_weights_expect(w, "blocks.7.w", 0, -1, NULL, &got, &err), REEL_ENOTFOUND);
  assert_string_equal(err.field, "blocks.7.w");
  assert_non_null(strstr(err.msg, path));
  assert_non_null(strstr(err.msg, "3 tensors in 2 files"));

  reel_weights_close(&w);
  assert_null(w);
  reel_weights_close(&w);
  reel_weights_close(NULL);
}

static void test_single_and_dir(void **state) {
  fixture *f = *state;
  char path[512], *found = NULL;
  reel_error err;
  reel_weights *w = NULL;

  /* Nothing there yet. */
  reel_error_clear(&err);
  assert_int_equal(reel_weights_locate(f->dir, &found, &err), REEL_ENOTFOUND);
  assert_null(found);
  assert_non_null(strstr(err.msg, f->dir));
  reel_error_clear(&err);
  assert_int_equal(reel_weights_open_dir(f->dir, &w, &err), REEL_ENOTFOUND);
  snprintf(path, sizeof path, "%s/nope", f->dir);
  reel_error_clear(&err);
  assert_int_equal(reel_weights_locate(path, &found, &err), REEL_ENOTFOUND);

  /* model.safetensors is the last resort. */
  write_shard(f->dir, "model.safetensors", (const char *const[]){"x"}, "a");
  reel_error_clear(&err);
  assert_int_equal(reel_weights_locate(f->dir, &found, &err), REEL_OK);
  assert_non_null(strstr(found, "/model.safetensors"));
  reel_free(found);
  snprintf(path, sizeof path, "%s/model.safetensors", f->dir);
  reel_error_clear(&err);
  assert_int_equal(reel_weights_locate(path, &found, &err), REEL_EINVAL); /* a file, not a folder */

  /* A single diffusers file beats model.safetensors; the diffusers index beats both. */
  write_shard(f->dir, "diffusion_pytorch_model.safetensors", (const char *const[]){"y", "z"}, "bc");
  reel_error_clear(&err);
  assert_int_equal(reel_weights_open_dir(f->dir, &w, &err), REEL_OK);
  assert_int_equal(reel_weights_count(w), 2);
  assert_int_equal(reel_weights_shard_count(w), 1);
  assert_non_null(reel_weights_find(w, "z"));
  assert_non_null(strstr(reel_weights_path(w), "/diffusion_pytorch_model.safetensors"));
  reel_weights_close(&w);

  write_sharded(f->dir);
  reel_error_clear(&err);
  assert_int_equal(reel_weights_open_dir(f->dir, &w, &err), REEL_OK);
  assert_int_equal(reel_weights_count(w), 3);
  assert_non_null(strstr(reel_weights_path(w), INDEX));
  reel_weights_close(&w);

  /* Opening a single file directly, and a malformed single file. */
  reel_error_clear(&err);
  assert_int_equal(reel_weights_open(path, &w, &err), REEL_OK);
  assert_int_equal(reel_weights_count(w), 1);
  reel_weights_close(&w);
  write_text(f->dir, "model.safetensors", "\x04\0\0\0\0\0\0\0{\"x\"");
  reel_error_clear(&err);
  assert_int_equal(reel_weights_open(path, &w, &err), REEL_EFORMAT);
  assert_null(w);
  assert_non_null(strstr(err.msg, path));
}

typedef struct index_case {
  const char *label;
  const char *index;
  reel_status code;
  const char *in_msg; /* must appear in the message besides the index path */
  const char *field;
} index_case;

static const index_case index_cases[] = {
    {"bad JSON", "{\"weight_map\":", REEL_EFORMAT, "invalid JSON", ""},
    {"not an object", "[]", REEL_EFORMAT, "JSON object", ""},
    {"no weight_map", "{\"metadata\":{}}", REEL_EFORMAT, "missing", "weight_map"},
    {"weight_map not an object", "{\"weight_map\":[]}", REEL_EFORMAT, "object", "weight_map"},
    {"empty weight_map", "{\"weight_map\":{}}", REEL_EFORMAT, "empty", "weight_map"},
    {"metadata not an object", "{\"metadata\":3,\"weight_map\":{\"x\":\"" SHARD1 "\"}}", REEL_EFORMAT, "metadata",
     "metadata"},
    {"shard not a string", "{\"weight_map\":{\"blocks.0.w\":1}}", REEL_EFORMAT, "blocks.0.w", "weight_map.blocks.0.w"},
    {"shard path escapes", "{\"weight_map\":{\"blocks.0.w\":\"../" SHARD1 "\"}}", REEL_EFORMAT, "plain file name",
     "weight_map.blocks.0.w"},
    {"shard is ..", "{\"weight_map\":{\"blocks.0.w\":\"..\"}}", REEL_EFORMAT, "plain file name",
     "weight_map.blocks.0.w"},
    {"empty tensor name", "{\"weight_map\":{\"\":\"" SHARD1 "\"}}", REEL_EFORMAT, "1..1024", "weight_map"},
    {"missing shard",
     "{\"weight_map\":{\"blocks.0.w\":\"" SHARD1 "\",\"blocks.0.b\":\"" SHARD1 "\",\"head.w\":\"gone.safetensors\"}}",
     REEL_ENOTFOUND, "gone.safetensors (for tensor \"head.w\") does not exist", "weight_map.head.w"},
    {"tensor missing from its shard",
     "{\"weight_map\":{\"blocks.0.w\":\"" SHARD1 "\",\"blocks.0.b\":\"" SHARD1 "\",\"head.w\":\"" SHARD2
     "\",\"head.b\":\"" SHARD2 "\"}}",
     REEL_EFORMAT, "\"head.b\" is mapped to shard " SHARD2 ", which does not contain it", "weight_map.head.b"},
    {"tensor mapped to the wrong shard",
     "{\"weight_map\":{\"blocks.0.w\":\"" SHARD1 "\",\"blocks.0.b\":\"" SHARD1 "\",\"head.w\":\"" SHARD1
     "\",\"x\":\"" SHARD2 "\"}}",
     REEL_EFORMAT, "\"head.w\" is in shard " SHARD2 " but the weight_map says " SHARD1, "weight_map.head.w"},
    {"tensor in a shard but not mapped", "{\"weight_map\":{\"blocks.0.w\":\"" SHARD1 "\",\"head.w\":\"" SHARD2 "\"}}",
     REEL_EFORMAT, "\"blocks.0.b\" is in shard " SHARD1 " but not in the weight_map", "weight_map.blocks.0.b"},
};

static void test_bad_index(void **state) {
  fixture *f = *state;
  write_sharded(f->dir);
  char path[512];
  snprintf(path, sizeof path, "%s/" INDEX, f->dir);
  for (size_t i = 0; i < sizeof index_cases / sizeof index_cases[0]; i++) {
    const index_case *c = &index_cases[i];
    write_text(f->dir, INDEX, c->index);
    reel_weights *w = (reel_weights *)0x1;
    reel_error err;
    reel_error_clear(&err);
    reel_status rc = reel_weights_open(path, &w, &err);
    char buf[1024];
    reel_error_format(&err, buf, sizeof buf);
    if (rc != c->code || !strstr(err.msg, path) || !strstr(err.msg, c->in_msg) || strcmp(err.field, c->field) != 0)
      print_error("case \"%s\": %s -> %s\n", c->label, reel_status_name(rc), buf);
    assert_int_equal(rc, c->code);
    assert_null(w);
    assert_non_null(strstr(err.msg, path));
    assert_non_null(strstr(err.msg, c->in_msg));
    assert_string_equal(err.field, c->field);
  }

  /* The same tensor in two shards, both mapped (the map can name it only once). */
  write_shard(f->dir, SHARD2, (const char *const[]){"head.w", "blocks.0.b"}, "cb");
  write_text(f->dir, INDEX,
             "{\"weight_map\":{\"blocks.0.w\":\"" SHARD1 "\",\"blocks.0.b\":\"" SHARD1 "\",\"head.w\":\"" SHARD2
             "\"}}");
  reel_weights *w = NULL;
  reel_error err;
  reel_error_clear(&err);
  assert_int_equal(reel_weights_open(path, &w, &err), REEL_EFORMAT);
  assert_string_equal(err.field, "weight_map.blocks.0.b");
  assert_non_null(strstr(err.msg, "\"blocks.0.b\" is in two shards: " SHARD1 " and " SHARD2));

  /* A malformed shard: the shard's own error, naming the shard file and the tensor. */
  char shard[512];
  snprintf(shard, sizeof shard, "%s/" SHARD2, f->dir);
  tu_write_file(shard, "\x10\0\0\0\0\0\0\0{\"head.w\":{}}   ", 24);
  reel_error_clear(&err);
  assert_int_equal(reel_weights_open(path, &w, &err), REEL_EFORMAT);
  assert_non_null(strstr(err.msg, shard));
  assert_non_null(strstr(err.msg, "\"head.w\""));
  assert_string_equal(err.field, "head.w.dtype");

  /* A missing index. */
  snprintf(path, sizeof path, "%s/none.safetensors.index.json", f->dir);
  reel_error_clear(&err);
  assert_int_equal(reel_weights_open(path, &w, &err), REEL_ENOTFOUND);
  assert_non_null(strstr(err.msg, path));
}

/* Opens a file written by the Python safetensors library; counts it. nftw needs a file-scope counter. */
static int reference_files;

static int open_reference(const char *path, const struct stat *st, int type, struct FTW *ftw) {
  (void)st;
  (void)ftw;
  size_t n = strlen(path);
  if (type != FTW_F || n < 12 || strcmp(path + n - 12, ".safetensors") != 0) return 0;
  reel_weights *w = NULL;
  reel_error err;
  reel_error_clear(&err);
  reel_status rc = reel_weights_open(path, &w, &err);
  if (rc != REEL_OK) print_error("%s: %s\n", path, err.msg);
  assert_int_equal(rc, REEL_OK);
  assert_true(reel_weights_count(w) > 0);
  reel_weights_close(&w);
  reference_files++;
  return 0;
}

/* The committed parity fixtures were written by diffusers / safetensors (Python): reel reads them all. */
static void test_reference_files(void **state) {
  (void)state;
  char root[1024], dir[1200], index[1400];
  snprintf(root, sizeof root, "%s/tests/fixtures", tu_source_dir());
  snprintf(dir, sizeof dir, "%s/wan-t2v-b/transformer", root);
  snprintf(index, sizeof index, "%s/" INDEX, dir);
  json_t *j = json_load_file(index, 0, NULL);
  if (!j) skip();
  reel_weights *w = NULL;
  reel_error err;
  reel_error_clear(&err);
  assert_int_equal(reel_weights_open_dir(dir, &w, &err), REEL_OK);
  assert_string_equal(reel_weights_path(w), index);
  /* The index's own accounting agrees with what the shards hold. */
  json_t *map = json_object_get(j, "weight_map");
  assert_int_equal(reel_weights_count(w), json_object_size(map));
  assert_true(reel_weights_shard_count(w) >= 2);
  uint64_t total = 0;
  for (size_t i = 0; i < reel_weights_count(w); i++) total += reel_weights_at(w, i)->nbytes;
  assert_int_equal(total, json_integer_value(json_object_get(json_object_get(j, "metadata"), "total_size")));
  const char *name;
  json_t *shard;
  json_object_foreach(map, name, shard) {
    const reel_st_tensor *t = reel_weights_find(w, name);
    assert_non_null(t);
    assert_non_null(strstr(t->file, json_string_value(shard)));
  }
  reel_weights_close(&w);
  json_decref(j);

  reference_files = 0;
  assert_int_equal(nftw(root, open_reference, 16, FTW_PHYS), 0);
  assert_true(reference_files >= 5);
}

static void test_alloc_failures(void **state) {
  fixture *f = *state;
  write_sharded(f->dir);
  char path[512];
  snprintf(path, sizeof path, "%s/" INDEX, f->dir);
  int succeeded = 0, failed = 0;
  for (long i = 0; i < 500 && !succeeded; i++) {
    reel_weights *w = NULL;
    reel_error err;
    reel_error_clear(&err);
    reel_alloc_fail_after(i, 0);
    reel_status rc = reel_weights_open_dir(f->dir, &w, &err);
    long fired = reel_alloc_failures();
    reel_alloc_fail_after(-1, 0);
    if (fired == 0) {
      assert_int_equal(rc, REEL_OK);
      assert_int_equal(reel_weights_count(w), 3);
      reel_weights_close(&w);
      succeeded = 1;
    } else {
      assert_int_equal(rc, REEL_ENOMEM);
      assert_null(w);
      failed++;
    }
  }
  assert_true(succeeded);
  assert_true(failed >= 10);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_sharded, setup, teardown),
      cmocka_unit_test_setup_teardown(test_single_and_dir, setup, teardown),
      cmocka_unit_test_setup_teardown(test_bad_index, setup, teardown),
      cmocka_unit_test(test_reference_files),
      cmocka_unit_test_setup_teardown(test_alloc_failures, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
