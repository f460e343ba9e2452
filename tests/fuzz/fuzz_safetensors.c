/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fuzz target for the safetensors header parser (reel_safetensors_open_memory).
 *
 * Any input must either be rejected with a filled-in error or give a handle whose
 * every promise holds: tensors sorted and found by name, each inside the data
 * section with nbytes = numel x dtype size and no two overlapping, metadata found
 * by key. An accepted file is then written back with the serializer and read
 * again, and must give the same tensors and bytes. A broken promise aborts, which
 * libFuzzer (and the corpus runner) report as a crash.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "reel/alloc.h"
#include "reel/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                            \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
      abort();                                                                 \
    }                                                                          \
  } while (0)

/* Checks the handle's invariants and returns a checksum of every tensor byte (so each is read). */
static unsigned check_handle(const reel_safetensors *st, const uint8_t *data, size_t size) {
  size_t n = reel_safetensors_count(st);
  uint64_t hdr = reel_safetensors_header_size(st), dsize = reel_safetensors_data_size(st);
  CHECK(8 + hdr + dsize == size);
  const uint8_t *section = data + 8 + hdr;
  unsigned sum = 0;
  for (size_t i = 0; i < n; i++) {
    const reel_st_tensor *t = reel_safetensors_at(st, i);
    CHECK(t != NULL);
    CHECK(reel_safetensors_find(st, t->name) == t);
    if (i > 0) CHECK(strcmp(reel_safetensors_at(st, i - 1)->name, t->name) < 0);
    size_t len = strlen(t->name);
    CHECK(len >= 1 && len <= REEL_ST_MAX_NAME);
    CHECK(t->rank >= 0 && t->rank <= REEL_ST_MAX_RANK);
    uint64_t numel = 1;
    for (int d = 0; d < t->rank; d++) {
      CHECK(t->shape[d] >= 0);
      numel *= (uint64_t)t->shape[d];
    }
    CHECK(numel == t->numel);
    CHECK(t->nbytes == numel * reel_st_dtype_size(t->dtype));
    CHECK(t->offset <= dsize && t->nbytes <= dsize - t->offset);
    CHECK((const uint8_t *)t->data == section + t->offset);
    for (uint64_t b = 0; b < t->nbytes; b++) sum += ((const uint8_t *)t->data)[b];
    for (size_t j = 0; j < i; j++) { /* quadratic, but fuzz inputs are small */
      const reel_st_tensor *u = reel_safetensors_at(st, j);
      if (t->nbytes && u->nbytes) CHECK(t->offset + t->nbytes <= u->offset || u->offset + u->nbytes <= t->offset);
    }
  }
  CHECK(reel_safetensors_at(st, n) == NULL);
  size_t m = reel_safetensors_metadata_count(st);
  for (size_t i = 0; i < m; i++) {
    const char *k = NULL, *v = NULL;
    CHECK(reel_safetensors_metadata_at(st, i, &k, &v) == REEL_OK);
    CHECK(reel_safetensors_metadata(st, k) == v);
  }
  return sum;
}

/* Serializes the handle's tensors and metadata and checks that reading them back gives the same. */
static void check_roundtrip(const reel_safetensors *st) {
  size_t n = reel_safetensors_count(st), m = reel_safetensors_metadata_count(st);
  reel_st_entry *e = calloc(n ? n : 1, sizeof *e);
  reel_st_kv *kv = calloc(m ? m : 1, sizeof *kv);
  CHECK(e && kv);
  for (size_t i = 0; i < n; i++) {
    const reel_st_tensor *t = reel_safetensors_at(st, i);
    e[i] = (reel_st_entry){t->name, t->dtype, t->rank, t->shape, t->data};
  }
  for (size_t i = 0; i < m; i++) CHECK(reel_safetensors_metadata_at(st, i, &kv[i].key, &kv[i].value) == REEL_OK);
  void *buf = NULL;
  size_t len = 0;
  reel_error err;
  reel_error_clear(&err);
  reel_status rc = reel_safetensors_serialize(e, n, kv, m, &buf, &len, &err);
  if (rc == REEL_OK) {
    reel_safetensors *back = NULL;
    reel_error_clear(&err);
    rc = reel_safetensors_open_memory(buf, len, "roundtrip", &back, &err);
    if (rc != REEL_OK) fprintf(stderr, "round trip rejected: %s\n", err.msg);
    CHECK(rc == REEL_OK);
    CHECK(reel_safetensors_header_size(back) % 8 == 0);
    CHECK(reel_safetensors_count(back) == n);
    CHECK(reel_safetensors_metadata_count(back) == m);
    for (size_t i = 0; i < n; i++) {
      const reel_st_tensor *a = reel_safetensors_at(st, i), *b = reel_safetensors_at(back, i);
      CHECK(strcmp(a->name, b->name) == 0 && a->dtype == b->dtype && a->rank == b->rank);
      CHECK(memcmp(a->shape, b->shape, sizeof a->shape) == 0 && a->nbytes == b->nbytes);
      CHECK(a->nbytes == 0 || memcmp(a->data, b->data, a->nbytes) == 0);
    }
    for (size_t i = 0; i < m; i++) CHECK(strcmp(reel_safetensors_metadata(back, kv[i].key), kv[i].value) == 0);
    reel_safetensors_close(&back);
    reel_free(buf);
  } else {
    /* The only reason a valid file cannot be rewritten: its compact header outgrows the limit. */
    CHECK(rc == REEL_ELIMIT || rc == REEL_ENOMEM);
  }
  free(e);
  free(kv);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  reel_safetensors *st = (reel_safetensors *)&st;
  reel_error err;
  reel_error_clear(&err);
  reel_status rc = reel_safetensors_open_memory(data, size, "fuzz.safetensors", &st, &err);
  if (rc != REEL_OK) {
    CHECK(st == NULL);
    CHECK(err.code == rc);
    CHECK(strncmp(err.msg, "fuzz.safetensors: ", 18) == 0);
    return 0;
  }
  CHECK(st != NULL && err.code == REEL_OK);
  volatile unsigned sum = check_handle(st, data, size);
  (void)sum;
  check_roundtrip(st);
  reel_safetensors_close(&st);
  CHECK(st == NULL);
  return 0;
}
