/* SPDX-License-Identifier: Apache-2.0 */
/*
 * safetensors files: a validating reader over a read-only mmap, and a small writer.
 *
 * A safetensors file is an 8-byte little-endian header length N, N bytes of JSON
 * ({"name": {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]}, ...,
 * optionally "__metadata__": {"key": "value"}}), then the data section; offsets are
 * relative to the start of the data section. Model files come from outside, so
 * reel_safetensors_open() checks the whole header before it returns a handle: the
 * length is bounded, the JSON is well formed, every dtype is known, every shape is
 * a list of non-negative integers whose byte size neither overflows nor disagrees
 * with data_offsets, every tensor lies inside the data section and no two tensors
 * overlap. A rejected file gives a reel_error whose message starts with the file's
 * path and names the tensor, and whose field is "<tensor>.<key>" (or "header",
 * "header_length", "__metadata__.<key>").
 *
 * Status codes: REEL_ENOTFOUND (no such file), REEL_EIO (cannot read or map),
 * REEL_EINVAL (not a regular file, bad arguments), REEL_EFORMAT (malformed file),
 * REEL_ELIMIT (a limit below is exceeded), REEL_EUNSUPPORTED (well-formed but
 * unknown dtype), REEL_ENOMEM.
 *
 * Tensor data is never copied: reel_st_tensor.data points into the mapping and is
 * valid until the file is closed. Files written by the usual tools pad the header
 * so that the data section is 8-byte aligned, but the format does not require it:
 * data may be unaligned for its dtype, and readers must load it with memcpy or
 * check reel_st_tensor.data's alignment first. Truncating a mapped file under a
 * running reader raises SIGBUS; reel does not defend against concurrent writers.
 */
#ifndef REEL_SAFETENSORS_H
#define REEL_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "reel/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Limits applied to every file. */
#define REEL_ST_MAX_HEADER  (100u * 1024u * 1024u) /* bytes of header JSON */
#define REEL_ST_MAX_RANK    8                      /* dimensions per tensor */
#define REEL_ST_MAX_NAME    1024                   /* bytes per tensor name or metadata key */
#define REEL_ST_MAX_TENSORS 1000000                /* tensors per file */

/* Element types of the safetensors format that reel knows. */
#define REEL_ST_DTYPE_MAP(X) \
  X(F32, 4)                  \
  X(F16, 2)                  \
  X(BF16, 2)                 \
  X(F64, 8)                  \
  X(I64, 8)                  \
  X(I32, 4)                  \
  X(I16, 2)                  \
  X(I8, 1)                   \
  X(U64, 8)                  \
  X(U32, 4)                  \
  X(U16, 2)                  \
  X(U8, 1)                   \
  X(BOOL, 1)                 \
  X(F8_E4M3, 1)              \
  X(F8_E5M2, 1)

typedef enum reel_st_dtype {
#define REEL__ST_DTYPE_ENUM(name, size) REEL_ST_##name,
  REEL_ST_DTYPE_MAP(REEL__ST_DTYPE_ENUM)
#undef REEL__ST_DTYPE_ENUM
      REEL_ST_DTYPE_COUNT
} reel_st_dtype;

/* Bit for a dtype in the masks of reel_weights_expect(). */
#define REEL_ST_MASK(dtype) (1u << (unsigned)(dtype))

/* The format's name ("BF16"). Never NULL; out-of-range values give "?". */
const char *reel_st_dtype_name(reel_st_dtype dtype);
/* Bytes per element; 0 for out-of-range values. */
size_t reel_st_dtype_size(reel_st_dtype dtype);
/* Parses a format name (case-sensitive, as in files). REEL_EUNSUPPORTED if unknown. */
reel_status reel_st_dtype_parse(const char *name, reel_st_dtype *out /* OUT: */);

/* One tensor of an open file. Everything in it is owned by the file and lives until it is closed. */
typedef struct reel_st_tensor {
  const char *name; /* NUL-terminated, 1..REEL_ST_MAX_NAME bytes */
  const char *file; /* path (or name) of the file that holds it, for messages */
  reel_st_dtype dtype;
  int rank;                        /* 0..REEL_ST_MAX_RANK; 0 is a scalar */
  int64_t shape[REEL_ST_MAX_RANK]; /* [rank], outermost first; unused entries are 0 */
  uint64_t numel;                  /* product of shape (1 for a scalar) */
  uint64_t nbytes;                 /* numel * dtype size == end - begin */
  uint64_t offset;                 /* begin, relative to the data section */
  const void *data;                /* read-only, nbytes long, possibly unaligned */
} reel_st_tensor;

typedef struct reel_safetensors reel_safetensors;

/*
 * Maps `path` read-only and validates its header. On success *out is a new handle
 * the caller closes with reel_safetensors_close(); on failure *out is NULL, nothing
 * needs closing and `err` (may be NULL) says what is wrong.
 */
reel_status reel_safetensors_open(const char *path, reel_safetensors **out /* OUT: */, reel_error *err);

/*
 * As reel_safetensors_open() over `len` bytes already in memory (a whole file).
 * The bytes are borrowed: they must outlive the handle. `name` is used in messages
 * and as reel_st_tensor.file (NULL gives "<memory>").
 */
reel_status reel_safetensors_open_memory(const void *data, size_t len, const char *name,
                                         reel_safetensors **out /* OUT: */, reel_error *err);

/* Unmaps and frees; accepts NULL and *st == NULL; sets *st to NULL. */
void reel_safetensors_close(reel_safetensors **st);

/* The path (or memory name) given to open. */
const char *reel_safetensors_path(const reel_safetensors *st);
/* Bytes of header JSON (N) and of the data section. */
uint64_t reel_safetensors_header_size(const reel_safetensors *st);
uint64_t reel_safetensors_data_size(const reel_safetensors *st);

/* Number of tensors (__metadata__ is not a tensor). */
size_t reel_safetensors_count(const reel_safetensors *st);
/* The i-th tensor in name order (strcmp), for iteration; NULL when i >= count. */
const reel_st_tensor *reel_safetensors_at(const reel_safetensors *st, size_t i);
/* Binary search by exact name; NULL when absent. */
const reel_st_tensor *reel_safetensors_find(const reel_safetensors *st, const char *name);

/* Number of __metadata__ entries. */
size_t reel_safetensors_metadata_count(const reel_safetensors *st);
/* The i-th entry in key order; returns REEL_ERANGE when i >= count. Strings are owned by st. */
reel_status reel_safetensors_metadata_at(const reel_safetensors *st, size_t i, const char **key /* OUT: */,
                                         const char **value /* OUT: */);
/* Value of a __metadata__ key, or NULL when absent. Owned by st. */
const char *reel_safetensors_metadata(const reel_safetensors *st, const char *key);

/* One tensor to write. Everything is borrowed for the duration of the call. */
typedef struct reel_st_entry {
  const char *name;
  reel_st_dtype dtype;
  int rank;             /* 0..REEL_ST_MAX_RANK */
  const int64_t *shape; /* [rank]; may be NULL when rank is 0 */
  const void *data;     /* numel * dtype size bytes; may be NULL when that is 0 */
} reel_st_entry;

/* One __metadata__ entry to write. */
typedef struct reel_st_kv {
  const char *key;
  const char *value;
} reel_st_kv;

/*
 * Writes a safetensors file: tensors in the given order, packed without gaps, the
 * header padded with spaces so that the data section starts at a multiple of 8.
 * The file appears atomically: it is written to a temporary name in the same
 * directory, fsync'd and renamed over `path`; on failure no file is left behind.
 * Names must be unique and non-empty. `meta` may be NULL when nmeta is 0.
 */
reel_status reel_safetensors_write(const char *path, const reel_st_entry *tensors, size_t n, const reel_st_kv *meta,
                                   size_t nmeta, reel_error *err);

/*
 * As reel_safetensors_write() into memory: *out is a new buffer of *len bytes that
 * the caller frees with reel_free(). On failure *out is NULL.
 */
reel_status reel_safetensors_serialize(const reel_st_entry *tensors, size_t n, const reel_st_kv *meta, size_t nmeta,
                                       void **out /* OUT: */, size_t *len /* OUT: */, reel_error *err);

#ifdef __cplusplus
}
#endif
#endif
