/* SPDX-License-Identifier: Apache-2.0 */
/*
 * safetensors reader and writer: round trips of f32/f16/bf16 files made here,
 * lookups over many tensors, metadata, and a table of malformed files, each of
 * which must give the right status and an error naming the file, the tensor and
 * the field. Allocation-failure injection runs every cleanup path of open().
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "reel/alloc.h"
#include "reel/safetensors.h"
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

/* Writes an 8-byte little-endian length, the header and `dlen` data bytes (0, 1, 2, ...). */
static void write_raw(const char *path, uint64_t hlen, const char *header, size_t dlen) {
  size_t n = strlen(header);
  size_t total = 8 + n + dlen;
  unsigned char *buf = malloc(total);
  for (int i = 0; i < 8; i++) buf[i] = (unsigned char)(hlen >> (8 * i));
  memcpy(buf + 8, header, n);
  for (size_t i = 0; i < dlen; i++) buf[8 + n + i] = (unsigned char)i;
  tu_write_file(path, buf, total);
  free(buf);
}

static void write_header(const char *path, const char *header, size_t dlen) {
  write_raw(path, strlen(header), header, dlen);
}

/* float -> bf16 / f16 bit patterns for exactly representable test values. */
static uint16_t to_bf16(float x) {
  uint32_t u;
  memcpy(&u, &x, 4);
  return (uint16_t)(u >> 16);
}

static void test_roundtrip(void **state) {
  fixture *f = *state;
  char path[512];
  snprintf(path, sizeof path, "%s/model.safetensors", f->dir);
  float a[6] = {1, -2, 3.5f, 0, 1e-3f, 65504};
  uint16_t h[3] = {0x3c00, 0xc000, 0x7bff}; /* f16: 1, -2, 65504 */
  uint16_t b[4] = {to_bf16(1), to_bf16(-0.5f), to_bf16(256), to_bf16(3)};
  int64_t sa[2] = {2, 3}, sh[1] = {3}, sb[3] = {1, 2, 2};
  reel_st_entry t[3] = {
      {"z.weight", REEL_ST_F32, 2, sa, a},
      {"a.half", REEL_ST_F16, 1, sh, h},
      {"m.bf16", REEL_ST_BF16, 3, sb, b},
  };
  reel_st_kv meta[2] = {{"format", "pt"}, {"note", "made by test"}};
  reel_error err;
  reel_error_clear(&err);
  assert_int_equal(reel_safetensors_write(path, t, 3, meta, 2, &err), REEL_OK);

  /* The header is padded with spaces so that the data section starts at a multiple of 8. */
  size_t len = 0;
  char *raw = tu_read_file(path, &len);
  assert_non_null(raw);
  uint64_t hlen = 0;
  for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | (unsigned char)raw[i];
  assert_int_equal((8 + hlen) % 8, 0);
  assert_int_equal(len, 8 + hlen + 24 + 6 + 8);
  assert_int_equal(raw[8], '{');
  assert_true(raw[8 + hlen - 1] == ' ' || raw[8 + hlen - 1] == '}');
  free(raw);
  struct stat sbuf;
  assert_int_equal(stat(path, &sbuf), 0);
  assert_int_equal(sbuf.st_mode & 0777, 0644);

  reel_safetensors *st = NULL;
  assert_int_equal(reel_safetensors_open(path, &st, &err), REEL_OK);
  assert_non_null(st);
  assert_string_equal(reel_safetensors_path(st), path);
  assert_int_equal(reel_safetensors_count(st), 3);
  assert_int_equal(reel_safetensors_header_size(st), hlen);
  assert_int_equal(reel_safetensors_data_size(st), 38);
  /* Iteration is in name order. */
  assert_string_equal(reel_safetensors_at(st, 0)->name, "a.half");
  assert_string_equal(reel_safetensors_at(st, 1)->name, "m.bf16");
  assert_string_equal(reel_safetensors_at(st, 2)->name, "z.weight");
  assert_null(reel_safetensors_at(st, 3));

  const reel_st_tensor *ta = reel_safetensors_find(st, "z.weight");
  assert_non_null(ta);
  assert_int_equal(ta->dtype, REEL_ST_F32);
  assert_int_equal(ta->rank, 2);
  assert_int_equal(ta->shape[0], 2);
  assert_int_equal(ta->shape[1], 3);
  assert_int_equal(ta->numel, 6);
  assert_int_equal(ta->nbytes, 24);
  assert_int_equal(ta->offset, 0);
  assert_string_equal(ta->file, path);
  assert_memory_equal(ta->data, a, sizeof a);
  assert_int_equal((uintptr_t)ta->data % 8, 0);

  const reel_st_tensor *th = reel_safetensors_find(st, "a.half");
  assert_non_null(th);
  assert_int_equal(th->dtype, REEL_ST_F16);
  assert_int_equal(th->rank, 1);
  assert_int_equal(th->nbytes, 6);
  assert_int_equal(th->offset, 24);
  assert_memory_equal(th->data, h, sizeof h);

  const reel_st_tensor *tb = reel_safetensors_find(st, "m.bf16");
  assert_non_null(tb);
  assert_int_equal(tb->dtype, REEL_ST_BF16);
  assert_int_equal(tb->rank, 3);
  assert_int_equal(tb->shape[2], 2);
  assert_int_equal(tb->numel, 4);
  assert_int_equal(tb->offset, 30);
  uint16_t got[4];
  memcpy(got, tb->data, sizeof got);
  float back;
  uint32_t u = (uint32_t)got[1] << 16;
  memcpy(&back, &u, 4);
  assert_true(back == -0.5f);

  assert_null(reel_safetensors_find(st, "missing"));
  assert_null(reel_safetensors_find(st, "a.hal"));
  assert_null(reel_safetensors_find(st, NULL));

  assert_int_equal(reel_safetensors_metadata_count(st), 2);
  assert_string_equal(reel_safetensors_metadata(st, "format"), "pt");
  assert_string_equal(reel_safetensors_metadata(st, "note"), "made by test");
  assert_null(reel_safetensors_metadata(st, "nope"));
  const char *k = NULL, *v = NULL;
  assert_int_equal(reel_safetensors_metadata_at(st, 1, &k, &v), REEL_OK);
  assert_string_equal(k, "note");
  assert_int_equal(reel_safetensors_metadata_at(st, 2, &k, &v), REEL_ERANGE);

  reel_safetensors_close(&st);
  assert_null(st);
  reel_safetensors_close(&st); /* NULL-safe */
  reel_safetensors_close(NULL);

  /* No temporary files left next to the output. */
  char cmd[600], *out = NULL;
  snprintf(cmd, sizeof cmd, "ls -A '%s'", f->dir);
  assert_int_equal(tu_run(cmd, &out), 0);
  assert_string_equal(out, "model.safetensors\n");
  free(out);
}

static void test_dtypes(void **state) {
  (void)state;
  reel_st_dtype d;
  assert_int_equal(reel_st_dtype_parse("BF16", &d), REEL_OK);
  assert_int_equal(d, REEL_ST_BF16);
  assert_int_equal(reel_st_dtype_size(REEL_ST_BF16), 2);
  assert_int_equal(reel_st_dtype_size(REEL_ST_F64), 8);
  assert_int_equal(reel_st_dtype_size(REEL_ST_F8_E4M3), 1);
  assert_int_equal(reel_st_dtype_size(REEL_ST_BOOL), 1);
  assert_string_equal(reel_st_dtype_name(REEL_ST_F8_E5M2), "F8_E5M2");
  assert_string_equal(reel_st_dtype_name((reel_st_dtype)99), "?");
  assert_int_equal(reel_st_dtype_size((reel_st_dtype)99), 0);
  assert_int_equal(reel_st_dtype_parse("bf16", &d), REEL_EUNSUPPORTED);
  assert_int_equal(reel_st_dtype_parse("Q4_0", &d), REEL_EUNSUPPORTED);
  for (int i = 0; i < REEL_ST_DTYPE_COUNT; i++) {
    assert_int_equal(reel_st_dtype_parse(reel_st_dtype_name((reel_st_dtype)i), &d), REEL_OK);
    assert_int_equal(d, i);
  }
}

/* Scalars, zero-size tensors, gaps between tensors and trailing bytes are all valid. */
static void test_edge_cases(void **state) {
  fixture *f = *state;
  char path[512];
  snprintf(path, sizeof path, "%s/edge.safetensors", f->dir);
  write_header(path,
               "{\"s\":{\"dtype\":\"F64\",\"shape\":[],\"data_offsets\":[0,8]},"
               "\"e\":{\"dtype\":\"F32\",\"shape\":[0,7],\"data_offsets\":[8,8]},"
               "\"e2\":{\"dtype\":\"I8\",\"shape\":[3,0],\"data_offsets\":[8,8]},"
               "\"g\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[12,14]},"
               "\"b\":{\"dtype\":\"BOOL\",\"shape\":[1,1,1,1,1,1,1,1],\"data_offsets\":[14,15]}}   ",
               20);
  reel_error err;
  reel_error_clear(&err);
  reel_safetensors *st = NULL;
  assert_int_equal(reel_safetensors_open(path, &st, &err), REEL_OK);
  assert_int_equal(reel_safetensors_count(st), 5);
  assert_int_equal(reel_safetensors_metadata_count(st), 0);
  const reel_st_tensor *s = reel_safetensors_find(st, "s");
  assert_int_equal(s->rank, 0);
  assert_int_equal(s->numel, 1);
  assert_int_equal(s->nbytes, 8);
  const reel_st_tensor *e = reel_safetensors_find(st, "e");
  assert_int_equal(e->numel, 0);
  assert_int_equal(e->nbytes, 0);
  const reel_st_tensor *g = reel_safetensors_find(st, "g");
  assert_int_equal(((const unsigned char *)g->data)[0], 12);
  assert_int_equal(((const unsigned char *)g->data)[1], 13);
  assert_int_equal(reel_safetensors_find(st, "b")->rank, 8);
  reel_safetensors_close(&st);

  /* An empty header is a valid file with no tensors. */
  write_header(path, "{}      ", 0);
  assert_int_equal(reel_safetensors_open(path, &st, &err), REEL_OK);
  assert_int_equal(reel_safetensors_count(st), 0);
  assert_null(reel_safetensors_find(st, "x"));
  assert_null(reel_safetensors_at(st, 0));
  reel_safetensors_close(&st);
}

/* Many tensors: every one is found by name, in memory, and the order is sorted. */
static void test_many_tensors(void **state) {
  (void)state;
  enum { N = 1500 };
  reel_st_entry *t = calloc(N, sizeof *t);
  char(*names)[48] = calloc(N, sizeof *names);
  int32_t *vals = calloc(N, sizeof *vals);
  int64_t one = 1;
  for (int i = 0; i < N; i++) {
    snprintf(names[i], sizeof names[i], "blocks.%d.attn.to_%c.weight", (i * 7919) % N, "qkvo"[i % 4]);
    vals[i] = i * 3 + 1;
    t[i] = (reel_st_entry){names[i], REEL_ST_I32, 1, &one, &vals[i]};
  }
  void *buf = NULL;
  size_t len = 0;
  reel_error err;
  reel_error_clear(&err);
  assert_int_equal(reel_safetensors_serialize(t, N, NULL, 0, &buf, &len, &err), REEL_OK);
  reel_safetensors *st = NULL;
  assert_int_equal(reel_safetensors_open_memory(buf, len, "mem", &st, &err), REEL_OK);
  assert_int_equal(reel_safetensors_count(st), N);
  for (int i = 0; i < N; i++) {
    const reel_st_tensor *x = reel_safetensors_find(st, names[i]);
    assert_non_null(x);
    int32_t v;
    memcpy(&v, x->data, 4);
    assert_int_equal(v, vals[i]);
    assert_string_equal(x->file, "mem");
  }
  for (size_t i = 1; i < N; i++)
    assert_true(strcmp(reel_safetensors_at(st, i - 1)->name, reel_safetensors_at(st, i)->name) < 0);
  reel_safetensors_close(&st);
  reel_free(buf);
  free(t);
  free(names);
  free(vals);
}

typedef struct bad_case {
  const char *label;
  const char *header; /* NULL: use raw_len with an empty body */
  size_t data_len;
  uint64_t hlen_override; /* nonzero: header length field to write instead of strlen(header) */
  reel_status code;
  const char *tensor; /* must appear in the message; NULL for header-level errors */
  const char *field;  /* err.field must equal this */
} bad_case;

#define T(name, dtype, shape, offs) "\"" name "\":{\"dtype\":" dtype ",\"shape\":" shape ",\"data_offsets\":" offs "}"

static const bad_case bad_cases[] = {
    {"bad JSON", "{\"w\":{\"dtype\":", 0, 0, REEL_EFORMAT, NULL, "header"},
    {"trailing garbage", "{} x", 0, 0, REEL_EFORMAT, NULL, "header"},
    {"not an object", "[1,2,3]", 0, 0, REEL_EFORMAT, NULL, "header"},
    {"leading space", " {}", 0, 0, REEL_EFORMAT, NULL, "header"},
    {"invalid UTF-8", "{\"w\xff\":{}}", 0, 0, REEL_EFORMAT, NULL, "header"},
    {"duplicate keys", "{" T("w", "\"F32\"", "[1]", "[0,4]") "," T("w", "\"F32\"", "[1]", "[4,8]") "}", 8, 0,
     REEL_EFORMAT, NULL, "header"},
    {"entry not an object", "{\"w\":[1,2]}", 0, 0, REEL_EFORMAT, "w", "w"},
    {"unknown dtype", "{" T("w", "\"F7\"", "[1]", "[0,4]") "}", 4, 0, REEL_EUNSUPPORTED, "w", "w.dtype"},
    {"lowercase dtype", "{" T("w", "\"f32\"", "[1]", "[0,4]") "}", 4, 0, REEL_EUNSUPPORTED, "w", "w.dtype"},
    {"dtype not a string", "{" T("w", "32", "[1]", "[0,4]") "}", 4, 0, REEL_EFORMAT, "w", "w.dtype"},
    {"dtype with NUL", "{" T("w", "\"F32\\u0000\"", "[1]", "[0,4]") "}", 4, 0, REEL_EUNSUPPORTED, "w", "w.dtype"},
    {"missing dtype", "{\"w\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4, 0, REEL_EFORMAT, "w", "w.dtype"},
    {"missing shape", "{\"w\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", 4, 0, REEL_EFORMAT, "w", "w.shape"},
    {"missing offsets", "{\"w\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4, 0, REEL_EFORMAT, "w", "w.data_offsets"},
    {"unknown field", "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],\"x\":1}}", 4, 0, REEL_EFORMAT,
     "w", "w.x"},
    {"shape/length mismatch", "{" T("w", "\"F32\"", "[2,3]", "[0,20]") "}", 24, 0, REEL_EFORMAT, "w", "w.data_offsets"},
    {"dtype size mismatch", "{" T("w", "\"BF16\"", "[4]", "[0,16]") "}", 16, 0, REEL_EFORMAT, "w", "w.data_offsets"},
    {"negative shape", "{" T("w", "\"F32\"", "[-1,4]", "[0,4]") "}", 4, 0, REEL_EFORMAT, "w", "w.shape"},
    {"real shape", "{" T("w", "\"F32\"", "[2.0]", "[0,8]") "}", 8, 0, REEL_EFORMAT, "w", "w.shape"},
    {"string shape", "{" T("w", "\"F32\"", "[\"2\"]", "[0,8]") "}", 8, 0, REEL_EFORMAT, "w", "w.shape"},
    {"shape not an array", "{" T("w", "\"F32\"", "2", "[0,8]") "}", 8, 0, REEL_EFORMAT, "w", "w.shape"},
    {"rank too high", "{" T("w", "\"U8\"", "[1,1,1,1,1,1,1,1,1]", "[0,1]") "}", 1, 0, REEL_ELIMIT, "w", "w.shape"},
    {"shape overflows", "{" T("w", "\"F32\"", "[4611686018427387904,4]", "[0,0]") "}", 0, 0, REEL_EFORMAT, "w",
     "w.shape"},
    {"shape x dtype overflows", "{" T("w", "\"F64\"", "[4611686018427387904]", "[0,0]") "}", 0, 0, REEL_EFORMAT, "w",
     "w.shape"},
    {"huge shape integer", "{" T("w", "\"F32\"", "[99999999999999999999999]", "[0,4]") "}", 4, 0, REEL_EFORMAT, NULL,
     "header"},
    {"offsets out of range", "{" T("w", "\"F32\"", "[4]", "[0,16]") "}", 12, 0, REEL_EFORMAT, "w", "w.data_offsets"},
    {"offsets far out of range", "{" T("w", "\"U8\"", "[1]", "[9223372036854775806,9223372036854775807]") "}", 4, 0,
     REEL_EFORMAT, "w", "w.data_offsets"},
    {"begin > end", "{" T("w", "\"F32\"", "[0]", "[8,4]") "}", 12, 0, REEL_EFORMAT, "w", "w.data_offsets"},
    {"negative offset", "{" T("w", "\"F32\"", "[1]", "[-4,0]") "}", 12, 0, REEL_EFORMAT, "w", "w.data_offsets"},
    {"three offsets", "{" T("w", "\"F32\"", "[1]", "[0,4,8]") "}", 12, 0, REEL_EFORMAT, "w", "w.data_offsets"},
    {"offsets not integers", "{" T("w", "\"F32\"", "[1]", "[0.0,4]") "}", 12, 0, REEL_EFORMAT, "w", "w.data_offsets"},
    {"overlapping tensors", "{" T("a", "\"F32\"", "[2]", "[0,8]") "," T("b", "\"F32\"", "[2]", "[4,12]") "}", 12, 0,
     REEL_EFORMAT, "b", "b.data_offsets"},
    {"same offsets", "{" T("a", "\"F32\"", "[2]", "[0,8]") "," T("b", "\"I32\"", "[2]", "[0,8]") "}", 8, 0,
     REEL_EFORMAT, "\"a\" at [0, 8]", "b.data_offsets"},
    {"empty tensor inside another", "{" T("a", "\"F32\"", "[2]", "[0,8]") "," T("z", "\"F32\"", "[0]", "[4,4]") "}", 8,
     0, REEL_EFORMAT, "z", "z.data_offsets"},
    {"empty name", "{" T("", "\"F32\"", "[1]", "[0,4]") "}", 4, 0, REEL_EFORMAT, "\"\"", "name"},
    {"metadata not an object", "{\"__metadata__\":[\"a\"]}", 0, 0, REEL_EFORMAT, NULL, "__metadata__"},
    {"non-string metadata", "{\"__metadata__\":{\"ok\":\"x\",\"steps\":30}}", 0, 0, REEL_EFORMAT, "steps",
     "__metadata__.steps"},
    {"metadata with NUL", "{\"__metadata__\":{\"k\":\"a\\u0000b\"}}", 0, 0, REEL_EFORMAT, "\"k\"", "__metadata__.k"},
    {"truncated header", "{\"w\":{\"dtype\":\"F32\"}}", 0, 4096, REEL_EFORMAT, NULL, "header_length"},
    {"header length huge", "{}", 0, 0xffffffffffffffffull, REEL_ELIMIT, NULL, "header_length"},
    {"header length over limit", "{}", 0, 100ull * 1024 * 1024 + 1, REEL_ELIMIT, NULL, "header_length"},
};

static void check_error(const reel_error *err, const char *path, const bad_case *c) {
  char buf[1024];
  reel_error_format(err, buf, sizeof buf);
  if (err->code != c->code || !strstr(err->msg, path) || (c->tensor && !strstr(err->msg, c->tensor)) ||
      strcmp(err->field, c->field) != 0)
    print_error("case \"%s\": got %s\n", c->label, buf);
  assert_int_equal(err->code, c->code);
  assert_non_null(strstr(err->msg, path));
  if (c->tensor) assert_non_null(strstr(err->msg, c->tensor));
  assert_string_equal(err->field, c->field);
}

static void test_malformed(void **state) {
  fixture *f = *state;
  char path[512];
  snprintf(path, sizeof path, "%s/bad.safetensors", f->dir);
  for (size_t i = 0; i < sizeof bad_cases / sizeof bad_cases[0]; i++) {
    const bad_case *c = &bad_cases[i];
    uint64_t hlen = c->hlen_override ? c->hlen_override : strlen(c->header);
    write_raw(path, hlen, c->header, c->data_len);
    reel_error err;
    reel_error_clear(&err);
    reel_safetensors *st = (reel_safetensors *)0x1;
    reel_status rc = reel_safetensors_open(path, &st, &err);
    if (rc != c->code) print_error("case \"%s\": status %s\n", c->label, reel_status_name(rc));
    assert_int_equal(rc, c->code);
    assert_null(st);
    check_error(&err, path, c);

    /* The same bytes from memory give the same verdict. */
    size_t len = 0;
    char *bytes = tu_read_file(path, &len);
    reel_error_clear(&err);
    assert_int_equal(reel_safetensors_open_memory(bytes, len, path, &st, &err), c->code);
    assert_null(st);
    check_error(&err, path, c);
    free(bytes);
  }
}

static void test_long_name(void **state) {
  fixture *f = *state;
  char path[512];
  snprintf(path, sizeof path, "%s/long.safetensors", f->dir);
  size_t n = REEL_ST_MAX_NAME + 1;
  char *hdr = malloc(n + 128);
  hdr[0] = '{';
  hdr[1] = '"';
  memset(hdr + 2, 'x', n);
  snprintf(hdr + 2 + n, 128, "\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}");
  write_header(path, hdr, 1);
  reel_error err;
  reel_error_clear(&err);
  reel_safetensors *st = NULL;
  assert_int_equal(reel_safetensors_open(path, &st, &err), REEL_ELIMIT);
  assert_non_null(strstr(err.msg, path));
  assert_non_null(strstr(err.msg, "limit 1024"));
  /* One byte shorter is fine. */
  memmove(hdr + 2, hdr + 3, strlen(hdr + 3) + 1);
  write_header(path, hdr, 1);
  reel_error_clear(&err);
  assert_int_equal(reel_safetensors_open(path, &st, &err), REEL_OK);
  reel_safetensors_close(&st);
  free(hdr);
}

static void test_file_errors(void **state) {
  fixture *f = *state;
  char path[512];
  reel_error err;
  reel_safetensors *st = NULL;

  snprintf(path, sizeof path, "%s/absent.safetensors", f->dir);
  reel_error_clear(&err);
  assert_int_equal(reel_safetensors_open(path, &st, &err), REEL_ENOTFOUND);
  assert_non_null(strstr(err.msg, path));

  reel_error_clear(&err);
  assert_int_equal(reel_safetensors_open(f->dir, &st, &err), REEL_EINVAL);
  assert_non_null(strstr(err.msg, "not a regular file"));

  /* A FIFO is refused at once instead of blocking for a writer. */
  snprintf(path, sizeof path, "%s/fifo.safetensors", f->dir);
  assert_int_equal(mkfifo(path, 0600), 0);
  reel_error_clear(&err);
  assert_int_equal(reel_safetensors_open(path, &st, &err), REEL_EINVAL);
  assert_non_null(strstr(err.msg, "not a regular file"));

  reel_error_clear(&err);
  assert_int_equal(reel_safetensors_open("", &st, &err), REEL_EINVAL);
  reel_error_clear(&err);
  assert_int_equal(reel_safetensors_open(path, NULL, &err), REEL_EINVAL);

  /* Shorter than the length field, and empty. */
  snprintf(path, sizeof path, "%s/short.safetensors", f->dir);
  tu_write_file(path, "\x02\0\0", 3);
  reel_error_clear(&err);
  assert_int_equal(reel_safetensors_open(path, &st, &err), REEL_EFORMAT);
  assert_string_equal(err.field, "header_length");
  assert_non_null(strstr(err.msg, path));
  tu_write_file(path, "", 0);
  reel_error_clear(&err);
  assert_int_equal(reel_safetensors_open(path, &st, &err), REEL_EFORMAT);
  reel_error_clear(&err);
  assert_int_equal(reel_safetensors_open_memory(NULL, 0, NULL, &st, &err), REEL_EFORMAT);
  assert_non_null(strstr(err.msg, "<memory>"));
  reel_error_clear(&err);
  assert_int_equal(reel_safetensors_open_memory(NULL, 5, NULL, &st, &err), REEL_EINVAL);

  /* Header lengths too small for "{}". */
  write_raw(path, 0, "{}", 0);
  reel_error_clear(&err);
  assert_int_equal(reel_safetensors_open(path, &st, &err), REEL_EFORMAT);
  assert_string_equal(err.field, "header_length");
  write_raw(path, 1, "{}", 0);
  reel_error_clear(&err);
  assert_int_equal(reel_safetensors_open(path, &st, &err), REEL_EFORMAT);
  assert_string_equal(err.field, "header_length");

  /* A valid file cut short inside the data section names the tensor that no longer fits. */
  snprintf(path, sizeof path, "%s/cut.safetensors", f->dir);
  float a[4] = {1, 2, 3, 4}, b[4] = {5, 6, 7, 8};
  int64_t s4[1] = {4};
  reel_st_entry t[2] = {{"first", REEL_ST_F32, 1, s4, a}, {"second", REEL_ST_F32, 1, s4, b}};
  reel_error_clear(&err);
  assert_int_equal(reel_safetensors_write(path, t, 2, NULL, 0, &err), REEL_OK);
  size_t len = 0;
  char *bytes = tu_read_file(path, &len);
  tu_write_file(path, bytes, len - 5);
  reel_error_clear(&err);
  assert_int_equal(reel_safetensors_open(path, &st, &err), REEL_EFORMAT);
  assert_non_null(strstr(err.msg, path));
  assert_non_null(strstr(err.msg, "\"second\""));
  assert_string_equal(err.field, "second.data_offsets");
  /* Cut inside the header. */
  tu_write_file(path, bytes, 20);
  reel_error_clear(&err);
  assert_int_equal(reel_safetensors_open(path, &st, &err), REEL_EFORMAT);
  assert_string_equal(err.field, "header_length");
  free(bytes);
}

static void test_writer_errors(void **state) {
  fixture *f = *state;
  char path[512];
  snprintf(path, sizeof path, "%s/w.safetensors", f->dir);
  float a[2] = {1, 2};
  int64_t s2[1] = {2}, neg[1] = {-2};
  reel_error err;

  reel_st_entry dup[2] = {{"x", REEL_ST_F32, 1, s2, a}, {"x", REEL_ST_F32, 1, s2, a}};
  reel_error_clear(&err);
  assert_int_equal(reel_safetensors_write(path, dup, 2, NULL, 0, &err), REEL_EINVAL);
  assert_string_equal(err.field, "x");

  reel_st_entry bad[1] = {{"x", REEL_ST_F32, 1, neg, a}};
  reel_error_clear(&err);
  assert_int_equal(reel_safetensors_write(path, bad, 1, NULL, 0, &err), REEL_EINVAL);

  reel_st_entry nodata[1] = {{"x", REEL_ST_F32, 1, s2, NULL}};
  reel_error_clear(&err);
  assert_int_equal(reel_safetensors_write(path, nodata, 1, NULL, 0, &err), REEL_EINVAL);

  reel_st_entry reserved[1] = {{"__metadata__", REEL_ST_F32, 1, s2, a}};
  reel_error_clear(&err);
  assert_int_equal(reel_safetensors_write(path, reserved, 1, NULL, 0, &err), REEL_EINVAL);

  reel_st_entry badutf[1] = {{"x\xc3", REEL_ST_F32, 1, s2, a}};
  reel_error_clear(&err);
  assert_int_equal(reel_safetensors_write(path, badutf, 1, NULL, 0, &err), REEL_EINVAL);

  reel_st_entry baddtype[1] = {{"x", (reel_st_dtype)77, 1, s2, a}};
  reel_error_clear(&err);
  assert_int_equal(reel_safetensors_write(path, baddtype, 1, NULL, 0, &err), REEL_EINVAL);

  reel_st_kv dupmeta[2] = {{"k", "1"}, {"k", "2"}};
  reel_st_entry ok[1] = {{"x", REEL_ST_F32, 1, s2, a}};
  reel_error_clear(&err);
  assert_int_equal(reel_safetensors_write(path, ok, 1, dupmeta, 2, &err), REEL_EINVAL);
  assert_int_equal(access(path, F_OK), -1); /* nothing was written by any failure */

  /* A directory that does not exist. */
  char nodir[600];
  snprintf(nodir, sizeof nodir, "%s/no/such/dir/w.safetensors", f->dir);
  reel_error_clear(&err);
  assert_int_equal(reel_safetensors_write(nodir, ok, 1, NULL, 0, &err), REEL_ENOTFOUND);
  assert_non_null(strstr(err.msg, nodir));

  /* Writing over an existing file replaces it. */
  reel_error_clear(&err);
  assert_int_equal(reel_safetensors_write(path, ok, 1, NULL, 0, &err), REEL_OK);
  float c[2] = {7, 8};
  reel_st_entry ok2[1] = {{"y", REEL_ST_F32, 1, s2, c}};
  assert_int_equal(reel_safetensors_write(path, ok2, 1, NULL, 0, &err), REEL_OK);
  reel_safetensors *st = NULL;
  assert_int_equal(reel_safetensors_open(path, &st, &err), REEL_OK);
  assert_null(reel_safetensors_find(st, "x"));
  assert_memory_equal(reel_safetensors_find(st, "y")->data, c, sizeof c);
  reel_safetensors_close(&st);

  /* An empty file list is a valid file. */
  void *buf = NULL;
  size_t len = 0;
  assert_int_equal(reel_safetensors_serialize(NULL, 0, NULL, 0, &buf, &len, &err), REEL_OK);
  assert_int_equal(len, 16); /* 8 + "{}" padded to 8 */
  assert_memory_equal((char *)buf + 8, "{}      ", 8);
  reel_free(buf);
}

/* Fails each allocation in turn: every failure is ENOMEM, leaves no handle and leaks nothing (ASan checks). */
static void test_alloc_failures(void **state) {
  fixture *f = *state;
  char path[512];
  snprintf(path, sizeof path, "%s/inj.safetensors", f->dir);
  float a[6] = {1, 2, 3, 4, 5, 6};
  int64_t s[2] = {2, 3};
  reel_st_entry t[3] = {{"a", REEL_ST_F32, 2, s, a}, {"b", REEL_ST_F32, 1, s + 1, a}, {"c", REEL_ST_F32, 1, s, a}};
  reel_st_kv meta[1] = {{"k", "v"}};
  reel_error err;
  reel_error_clear(&err);
  assert_int_equal(reel_safetensors_write(path, t, 3, meta, 1, &err), REEL_OK);

  int succeeded = 0, failed = 0;
  for (long i = 0; i < 200 && !succeeded; i++) {
    reel_safetensors *st = NULL;
    reel_error_clear(&err);
    reel_alloc_fail_after(i, 0);
    reel_status rc = reel_safetensors_open(path, &st, &err);
    long fired = reel_alloc_failures();
    reel_alloc_fail_after(-1, 0);
    if (fired == 0) {
      assert_int_equal(rc, REEL_OK);
      assert_int_equal(reel_safetensors_count(st), 3);
      assert_string_equal(reel_safetensors_metadata(st, "k"), "v");
      reel_safetensors_close(&st);
      succeeded = 1;
    } else {
      assert_int_equal(rc, REEL_ENOMEM);
      assert_null(st);
      failed++;
    }
  }
  assert_true(succeeded);
  assert_true(failed >= 4); /* handle, path, tensors, metadata, pool, offset index */

  /* The same over the writer and the serializer. */
  succeeded = 0;
  for (long i = 0; i < 200 && !succeeded; i++) {
    reel_error_clear(&err);
    reel_alloc_fail_after(i, 0);
    reel_status rc = reel_safetensors_write(path, t, 3, meta, 1, &err);
    long fired = reel_alloc_failures();
    reel_alloc_fail_after(-1, 0);
    if (fired == 0) {
      assert_int_equal(rc, REEL_OK);
      succeeded = 1;
    } else {
      assert_int_equal(rc, REEL_ENOMEM);
    }
  }
  assert_true(succeeded);
  succeeded = 0;
  for (long i = 0; i < 200 && !succeeded; i++) {
    void *buf = (void *)0x1;
    size_t len = 0;
    reel_error_clear(&err);
    reel_alloc_fail_after(i, 0);
    reel_status rc = reel_safetensors_serialize(t, 3, meta, 1, &buf, &len, &err);
    long fired = reel_alloc_failures();
    reel_alloc_fail_after(-1, 0);
    if (fired == 0) {
      assert_int_equal(rc, REEL_OK);
      reel_free(buf);
      succeeded = 1;
    } else {
      assert_int_equal(rc, REEL_ENOMEM);
      assert_null(buf);
    }
  }
  assert_true(succeeded);
  char cmd[600], *out = NULL;
  snprintf(cmd, sizeof cmd, "ls -A '%s'", f->dir);
  assert_int_equal(tu_run(cmd, &out), 0);
  assert_string_equal(out, "inj.safetensors\n"); /* no temporary files left behind */
  free(out);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_roundtrip, setup, teardown),
      cmocka_unit_test(test_dtypes),
      cmocka_unit_test_setup_teardown(test_edge_cases, setup, teardown),
      cmocka_unit_test(test_many_tensors),
      cmocka_unit_test_setup_teardown(test_malformed, setup, teardown),
      cmocka_unit_test_setup_teardown(test_long_name, setup, teardown),
      cmocka_unit_test_setup_teardown(test_file_errors, setup, teardown),
      cmocka_unit_test_setup_teardown(test_writer_errors, setup, teardown),
      cmocka_unit_test_setup_teardown(test_alloc_failures, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
