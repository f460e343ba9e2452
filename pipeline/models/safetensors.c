/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The safetensors reader and writer. See reel/safetensors.h.
 *
 * The reader maps the file, parses the header with jansson (through reel_json_parse,
 * which also rejects duplicate keys), checks every entry, then copies names and
 * metadata into one string pool so that the JSON tree can be freed at once: an open
 * file holds the mapping plus three allocations. Tensors are kept sorted by name for
 * binary search; a second, temporary ordering by offset finds overlaps.
 */
#include "reel/safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "reel/alloc.h"
#include "reel/json.h"

typedef struct st_meta {
  const char *key;
  const char *value;
} st_meta;

struct reel_safetensors {
  char *path;              /* owned copy of the name given to open */
  const uint8_t *base;     /* the whole file: mapped, or borrowed from the caller */
  size_t size;             /* bytes at base */
  int mapped;              /* base is our mapping: munmap on close */
  uint64_t header_size;    /* N */
  const uint8_t *data;     /* base + 8 + N */
  uint64_t data_size;      /* size - 8 - N */
  reel_st_tensor *tensors; /* [count], sorted by name */
  size_t count;
  st_meta *meta; /* [meta_count], sorted by key */
  size_t meta_count;
  char *pool; /* names, metadata keys and values */
};

static const struct {
  const char *name;
  size_t size;
} dtype_table[REEL_ST_DTYPE_COUNT] = {
#define REEL__ST_DTYPE_ROW(name, size) {#name, size},
    REEL_ST_DTYPE_MAP(REEL__ST_DTYPE_ROW)
#undef REEL__ST_DTYPE_ROW
};

const char *reel_st_dtype_name(reel_st_dtype dtype) {
  return (unsigned)dtype < REEL_ST_DTYPE_COUNT ? dtype_table[dtype].name : "?";
}

size_t reel_st_dtype_size(reel_st_dtype dtype) {
  return (unsigned)dtype < REEL_ST_DTYPE_COUNT ? dtype_table[dtype].size : 0;
}

reel_status reel_st_dtype_parse(const char *name, reel_st_dtype *out) {
  if (!name) return REEL_EINVAL;
  for (int i = 0; i < REEL_ST_DTYPE_COUNT; i++) {
    if (strcmp(dtype_table[i].name, name) == 0) {
      if (out) *out = (reel_st_dtype)i;
      return REEL_OK;
    }
  }
  return REEL_EUNSUPPORTED;
}

/* Writes "a.b" (or "a", or "b") into buf, truncating; by hand because truncation is intended. */
static void join_field(char *buf, size_t size, const char *a, const char *b) {
  size_t n = 0, cap = size - 1;
  if (a)
    for (const char *p = a; *p && n < cap; p++) buf[n++] = *p;
  if (a && a[0] && b && n < cap) buf[n++] = '.';
  if (b)
    for (const char *p = b; *p && n < cap; p++) buf[n++] = *p;
  buf[n] = '\0';
}

/*
 * Records an error about `file`: field "<tensor>.<key>" (or just key), message
 * "<file>: tensor \"<tensor>\": <detail>". Returns code.
 */
static reel_status st_fail(reel_error *err, reel_status code, const char *file, const char *tensor, const char *key,
                           const char *fmt, ...) __attribute__((format(printf, 6, 7)));
static reel_status st_fail(reel_error *err, reel_status code, const char *file, const char *tensor, const char *key,
                           const char *fmt, ...) {
  if (!err || err->code != REEL_OK) return code;
  char detail[REEL_ERROR_MSG_MAX];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(detail, sizeof detail, fmt, ap);
  va_end(ap);
  char field[REEL_ERROR_FIELD_MAX];
  join_field(field, sizeof field, tensor, key);
  if (tensor) return reel_error_set(err, code, field, "%s: tensor \"%.200s\": %s", file, tensor, detail);
  return reel_error_set(err, code, field, "%s: %s", file, detail);
}

static const char *json_type_name(const json_t *v) {
  switch (json_typeof(v)) {
    case JSON_OBJECT:
      return "an object";
    case JSON_ARRAY:
      return "an array";
    case JSON_STRING:
      return "a string";
    case JSON_INTEGER:
      return "an integer";
    case JSON_REAL:
      return "a real number";
    case JSON_TRUE:
    case JSON_FALSE:
      return "a boolean";
    case JSON_NULL:
      return "null";
  }
  return "?";
}

static uint64_t load_le64(const uint8_t *p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
  return v;
}

/* Formats a shape as "[2, 3]" for messages. */
static void format_shape(char *buf, size_t size, const int64_t *shape, int rank) {
  size_t off = 0;
  buf[0] = '\0';
  off += (size_t)snprintf(buf, size, "[");
  for (int i = 0; i < rank && off < size; i++)
    off += (size_t)snprintf(buf + off, size - off, "%s%lld", i ? ", " : "", (long long)shape[i]);
  if (off < size) snprintf(buf + off, size - off, "]");
}

/* Reads a JSON integer in 0..INT64_MAX. Returns 0 when v is not one. */
static int get_uint(const json_t *v, uint64_t *out) {
  if (!json_is_integer(v)) return 0;
  json_int_t x = json_integer_value(v);
  if (x < 0) return 0;
  *out = (uint64_t)x;
  return 1;
}

/* Validates one header entry into t (all but name, file and data). */
static reel_status parse_tensor(const reel_safetensors *st, const char *name, const json_t *v, reel_st_tensor *t,
                                reel_error *err) {
  const char *file = st->path;
  size_t name_len = strlen(name);
  if (name_len == 0) return st_fail(err, REEL_EFORMAT, file, name, "name", "tensor names must not be empty");
  if (name_len > REEL_ST_MAX_NAME)
    return st_fail(err, REEL_ELIMIT, file, name, "name", "name is %zu bytes, limit %d", name_len, REEL_ST_MAX_NAME);
  if (!json_is_object(v))
    return st_fail(err, REEL_EFORMAT, file, name, NULL,
                   "entry must be an object with dtype, shape and data_offsets, got %s", json_type_name(v));
  const char *k;
  json_t *x;
  json_object_foreach((json_t *)v, k, x) {
    (void)x;
    if (strcmp(k, "dtype") != 0 && strcmp(k, "shape") != 0 && strcmp(k, "data_offsets") != 0)
      return st_fail(err, REEL_EFORMAT, file, name, k, "unknown field \"%.64s\" (allowed: dtype, shape, data_offsets)",
                     k);
  }

  /* dtype */
  const json_t *d = json_object_get(v, "dtype");
  if (!d) return st_fail(err, REEL_EFORMAT, file, name, "dtype", "dtype is missing");
  if (!json_is_string(d))
    return st_fail(err, REEL_EFORMAT, file, name, "dtype", "dtype must be a string, got %s", json_type_name(d));
  if (reel_st_dtype_parse(json_string_value(d), &t->dtype) != REEL_OK ||
      strlen(json_string_value(d)) != json_string_length(d))
    return st_fail(err, REEL_EUNSUPPORTED, file, name, "dtype",
                   "unknown dtype \"%.32s\" (known: F32, F16, BF16, F64, I64, I32, I16, I8, U64, U32, U16, U8, "
                   "BOOL, F8_E4M3, F8_E5M2)",
                   json_string_value(d));
  size_t esize = dtype_table[t->dtype].size;

  /* shape */
  const json_t *s = json_object_get(v, "shape");
  if (!s) return st_fail(err, REEL_EFORMAT, file, name, "shape", "shape is missing");
  if (!json_is_array(s))
    return st_fail(err, REEL_EFORMAT, file, name, "shape", "shape must be an array of integers, got %s",
                   json_type_name(s));
  size_t rank = json_array_size(s);
  if (rank > REEL_ST_MAX_RANK)
    return st_fail(err, REEL_ELIMIT, file, name, "shape", "rank %zu exceeds the limit of %d", rank, REEL_ST_MAX_RANK);
  t->rank = (int)rank;
  uint64_t numel = 1;
  int overflow = 0;
  for (size_t i = 0; i < rank; i++) {
    uint64_t dim;
    const json_t *e = json_array_get(s, i);
    if (json_is_integer(e) && !get_uint(e, &dim))
      return st_fail(err, REEL_EFORMAT, file, name, "shape", "shape[%zu] must be a non-negative integer, got %lld", i,
                     (long long)json_integer_value(e));
    if (!get_uint(e, &dim))
      return st_fail(err, REEL_EFORMAT, file, name, "shape", "shape[%zu] must be a non-negative integer, got %s", i,
                     json_type_name(e));
    t->shape[i] = (int64_t)dim;
    if (__builtin_mul_overflow(numel, dim, &numel)) overflow = 1;
  }
  uint64_t nbytes = 0;
  if (overflow || __builtin_mul_overflow(numel, (uint64_t)esize, &nbytes)) {
    char sh[160];
    format_shape(sh, sizeof sh, t->shape, t->rank);
    return st_fail(err, REEL_EFORMAT, file, name, "shape", "shape %s x %s overflows 64 bits", sh,
                   dtype_table[t->dtype].name);
  }
  t->numel = numel;
  t->nbytes = nbytes;

  /* data_offsets */
  const json_t *o = json_object_get(v, "data_offsets");
  if (!o) return st_fail(err, REEL_EFORMAT, file, name, "data_offsets", "data_offsets is missing");
  uint64_t begin, end;
  if (!json_is_array(o) || json_array_size(o) != 2 || !get_uint(json_array_get(o, 0), &begin) ||
      !get_uint(json_array_get(o, 1), &end))
    return st_fail(err, REEL_EFORMAT, file, name, "data_offsets",
                   "data_offsets must be an array of two non-negative integers [begin, end]");
  if (begin > end)
    return st_fail(err, REEL_EFORMAT, file, name, "data_offsets", "begin %llu is greater than end %llu",
                   (unsigned long long)begin, (unsigned long long)end);
  if (end > st->data_size)
    return st_fail(err, REEL_EFORMAT, file, name, "data_offsets",
                   "end %llu is past the end of the %llu-byte data section (truncated file?)", (unsigned long long)end,
                   (unsigned long long)st->data_size);
  if (end - begin != nbytes) {
    char sh[160];
    format_shape(sh, sizeof sh, t->shape, t->rank);
    return st_fail(err, REEL_EFORMAT, file, name, "data_offsets",
                   "shape %s x %s needs %llu bytes but data_offsets [%llu, %llu] hold %llu", sh,
                   dtype_table[t->dtype].name, (unsigned long long)nbytes, (unsigned long long)begin,
                   (unsigned long long)end, (unsigned long long)(end - begin));
  }
  t->offset = begin;
  return REEL_OK;
}

/* Validates __metadata__ and adds the pool bytes it needs to *pool_size. */
static reel_status check_metadata(const reel_safetensors *st, const json_t *m, size_t *pool_size, reel_error *err) {
  if (!json_is_object(m))
    return st_fail(err, REEL_EFORMAT, st->path, NULL, "__metadata__",
                   "__metadata__ must be an object of string values, got %s", json_type_name(m));
  const char *k;
  json_t *v;
  json_object_foreach((json_t *)m, k, v) {
    char field[REEL_ERROR_FIELD_MAX];
    join_field(field, sizeof field, "__metadata__", k);
    size_t klen = strlen(k);
    if (klen > REEL_ST_MAX_NAME)
      return st_fail(err, REEL_ELIMIT, st->path, NULL, field, "__metadata__ key is %zu bytes, limit %d", klen,
                     REEL_ST_MAX_NAME);
    if (!json_is_string(v))
      return st_fail(err, REEL_EFORMAT, st->path, NULL, field,
                     "__metadata__ value of \"%.200s\" must be a string, got %s", k, json_type_name(v));
    if (strlen(json_string_value(v)) != json_string_length(v))
      return st_fail(err, REEL_EFORMAT, st->path, NULL, field,
                     "__metadata__ value of \"%.200s\" contains a NUL character", k);
    *pool_size += klen + 1 + json_string_length(v) + 1;
  }
  return REEL_OK;
}

static int cmp_tensor_name(const void *a, const void *b) {
  return strcmp(((const reel_st_tensor *)a)->name, ((const reel_st_tensor *)b)->name);
}

static int cmp_tensor_offset(const void *a, const void *b) {
  const reel_st_tensor *x = *(const reel_st_tensor *const *)a, *y = *(const reel_st_tensor *const *)b;
  if (x->offset != y->offset) return x->offset < y->offset ? -1 : 1;
  if (x->nbytes != y->nbytes) return x->nbytes < y->nbytes ? -1 : 1;
  return strcmp(x->name, y->name);
}

static int cmp_meta_key(const void *a, const void *b) {
  return strcmp(((const st_meta *)a)->key, ((const st_meta *)b)->key);
}

/* Copies s into the pool at *pos and returns the copy. */
static const char *pool_put(char *pool, size_t *pos, const char *s, size_t len) {
  char *d = pool + *pos;
  memcpy(d, s, len);
  d[len] = '\0';
  *pos += len + 1;
  return d;
}

/* Checks that no two tensors share bytes; zero-byte tensors may sit on a boundary. */
static reel_status check_overlap(reel_safetensors *st, reel_error *err) {
  if (st->count < 2) return REEL_OK;
  const reel_st_tensor **order = reel_calloc(st->count, sizeof *order);
  if (!order)
    return st_fail(err, REEL_ENOMEM, st->path, NULL, "header", "cannot allocate the offset index for %zu tensors",
                   st->count);
  for (size_t i = 0; i < st->count; i++) order[i] = &st->tensors[i];
  qsort(order, st->count, sizeof *order, cmp_tensor_offset);
  reel_status rc = REEL_OK;
  for (size_t i = 1; i < st->count; i++) {
    const reel_st_tensor *p = order[i - 1], *c = order[i];
    if (p->offset + p->nbytes > c->offset) {
      rc = st_fail(err, REEL_EFORMAT, st->path, c->name, "data_offsets",
                   "bytes [%llu, %llu] overlap tensor \"%.200s\" at [%llu, %llu]", (unsigned long long)c->offset,
                   (unsigned long long)(c->offset + c->nbytes), p->name, (unsigned long long)p->offset,
                   (unsigned long long)(p->offset + p->nbytes));
      break;
    }
  }
  reel_free(order);
  return rc;
}

/* Validates st->base/size and fills in the rest of st. */
static reel_status parse(reel_safetensors *st, reel_error *err) {
  const char *file = st->path;
  if (st->size < 8)
    return st_fail(err, REEL_EFORMAT, file, NULL, "header_length",
                   "file is %zu bytes; a safetensors file starts with an 8-byte header length", st->size);
  uint64_t n = load_le64(st->base);
  if (n > REEL_ST_MAX_HEADER)
    return st_fail(err, REEL_ELIMIT, file, NULL, "header_length", "header length %llu exceeds the limit of %u bytes",
                   (unsigned long long)n, REEL_ST_MAX_HEADER);
  if (n > st->size - 8)
    return st_fail(err, REEL_EFORMAT, file, NULL, "header_length",
                   "header length %llu exceeds the %zu bytes that follow it (truncated file?)", (unsigned long long)n,
                   st->size - 8);
  if (n < 2)
    return st_fail(err, REEL_EFORMAT, file, NULL, "header_length", "header length %llu is too short for a JSON object",
                   (unsigned long long)n);
  st->header_size = n;
  st->data = st->base + 8 + n;
  st->data_size = (uint64_t)st->size - 8 - n;
  const char *hdr = (const char *)st->base + 8;
  if (hdr[0] != '{')
    return st_fail(err, REEL_EFORMAT, file, NULL, "header",
                   "header must be a JSON object starting with '{', got byte 0x%02x", (unsigned)(unsigned char)hdr[0]);

  json_t *root = NULL;
  reel_error jerr;
  reel_error_clear(&jerr);
  if (reel_json_parse(hdr, (size_t)n, "header", &root, &jerr) != REEL_OK)
    return st_fail(err, jerr.code == REEL_OK ? REEL_EFORMAT : jerr.code, file, NULL, "header", "header: %s", jerr.msg);
  reel_status rc = REEL_OK;
  if (!json_is_object(root)) {
    rc = st_fail(err, REEL_EFORMAT, file, NULL, "header", "header must be a JSON object, got %s", json_type_name(root));
    goto done;
  }

  const json_t *meta = json_object_get(root, "__metadata__");
  size_t ntensors = json_object_size(root) - (meta ? 1 : 0);
  if (ntensors > REEL_ST_MAX_TENSORS) {
    rc = st_fail(err, REEL_ELIMIT, file, NULL, "header", "%zu tensors exceed the limit of %d", ntensors,
                 REEL_ST_MAX_TENSORS);
    goto done;
  }
  size_t pool_size = 0;
  if (meta) {
    rc = check_metadata(st, meta, &pool_size, err);
    if (rc != REEL_OK) goto done;
  }
  const char *key;
  json_t *v;
  json_object_foreach(root, key, v) {
    (void)v;
    if (strcmp(key, "__metadata__") != 0) pool_size += strlen(key) + 1;
  }

  st->meta_count = meta ? json_object_size(meta) : 0;
  st->tensors = reel_calloc(ntensors, sizeof *st->tensors);
  st->meta = reel_calloc(st->meta_count, sizeof *st->meta);
  st->pool = reel_malloc(pool_size);
  if (!st->tensors || !st->meta || !st->pool) {
    rc = st_fail(err, REEL_ENOMEM, file, NULL, "header", "cannot allocate the index of %zu tensors", ntensors);
    goto done;
  }

  size_t pos = 0;
  json_object_foreach(root, key, v) {
    if (strcmp(key, "__metadata__") == 0) continue;
    reel_st_tensor *t = &st->tensors[st->count];
    rc = parse_tensor(st, key, v, t, err);
    if (rc != REEL_OK) goto done;
    t->name = pool_put(st->pool, &pos, key, strlen(key));
    t->file = st->path;
    t->data = st->data + t->offset;
    st->count++;
  }
  if (meta) {
    size_t i = 0;
    json_object_foreach((json_t *)meta, key, v) {
      st->meta[i].key = pool_put(st->pool, &pos, key, strlen(key));
      st->meta[i].value = pool_put(st->pool, &pos, json_string_value(v), json_string_length(v));
      i++;
    }
    qsort(st->meta, st->meta_count, sizeof *st->meta, cmp_meta_key);
  }

  qsort(st->tensors, st->count, sizeof *st->tensors, cmp_tensor_name);
  /* reel_json_parse rejects duplicate keys; this guards the binary search should that ever change. */
  for (size_t i = 1; i < st->count; i++) {
    if (strcmp(st->tensors[i - 1].name, st->tensors[i].name) == 0) {
      rc = st_fail(err, REEL_EFORMAT, file, st->tensors[i].name, NULL, "tensor is listed twice");
      goto done;
    }
  }
  rc = check_overlap(st, err);
done:
  json_decref(root);
  return rc;
}

/* Frees everything but the struct's mapping bookkeeping; shared by close and failed opens. */
static void st_free(reel_safetensors *st) {
  if (!st) return;
  if (st->mapped && st->base) munmap((void *)st->base, st->size);
  reel_free(st->tensors);
  reel_free(st->meta);
  reel_free(st->pool);
  reel_free(st->path);
  reel_free(st);
}

static reel_status st_new(const char *name, reel_safetensors **out, reel_error *err) {
  reel_safetensors *st = reel_calloc(1, sizeof *st);
  if (!st) return reel_error_set(err, REEL_ENOMEM, "path", "%s: cannot allocate a safetensors handle", name);
  st->path = reel_strdup(name);
  if (!st->path) {
    reel_free(st);
    return reel_error_set(err, REEL_ENOMEM, "path", "%s: cannot allocate a safetensors handle", name);
  }
  *out = st;
  return REEL_OK;
}

reel_status reel_safetensors_open(const char *path, reel_safetensors **out, reel_error *err) {
  if (!out) return reel_error_set(err, REEL_EINVAL, "out", "no output handle given");
  *out = NULL;
  if (!path || !path[0]) return reel_error_set(err, REEL_EINVAL, "path", "no path given");
  /* O_NONBLOCK: a FIFO given by mistake must be refused below, not block the open. */
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) {
    int e = errno;
    return reel_error_set(err, e == ENOENT || e == ENOTDIR ? REEL_ENOTFOUND : REEL_EIO, "path", "%s: cannot open: %s",
                          path, strerror(e));
  }
  reel_safetensors *st = NULL;
  reel_status rc = st_new(path, &st, err);
  if (rc != REEL_OK) goto fail;
  struct stat sb;
  if (fstat(fd, &sb) != 0) {
    rc = reel_error_set(err, REEL_EIO, "path", "%s: cannot stat: %s", path, strerror(errno));
    goto fail;
  }
  if (!S_ISREG(sb.st_mode)) {
    rc = reel_error_set(err, REEL_EINVAL, "path", "%s: not a regular file", path);
    goto fail;
  }
  st->size = (size_t)sb.st_size;
  if (st->size >= 8) {
    void *p = mmap(NULL, st->size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      rc = reel_error_set(err, REEL_EIO, "path", "%s: cannot map %zu bytes: %s", path, st->size, strerror(errno));
      goto fail;
    }
    st->base = p;
    st->mapped = 1;
  }
  close(fd);
  fd = -1;
  rc = parse(st, err);
  if (rc != REEL_OK) goto fail;
  *out = st;
  return REEL_OK;
fail:
  if (fd >= 0) close(fd);
  st_free(st);
  return rc;
}

reel_status reel_safetensors_open_memory(const void *data, size_t len, const char *name, reel_safetensors **out,
                                         reel_error *err) {
  if (!out) return reel_error_set(err, REEL_EINVAL, "out", "no output handle given");
  *out = NULL;
  if (!name) name = "<memory>";
  if (!data && len) return reel_error_set(err, REEL_EINVAL, "data", "%s: no data given", name);
  reel_safetensors *st = NULL;
  reel_status rc = st_new(name, &st, err);
  if (rc != REEL_OK) return rc;
  st->base = data;
  st->size = len;
  rc = parse(st, err);
  if (rc != REEL_OK) {
    st_free(st);
    return rc;
  }
  *out = st;
  return REEL_OK;
}

void reel_safetensors_close(reel_safetensors **st) {
  if (!st || !*st) return;
  st_free(*st);
  *st = NULL;
}

const char *reel_safetensors_path(const reel_safetensors *st) { return st->path; }
uint64_t reel_safetensors_header_size(const reel_safetensors *st) { return st->header_size; }
uint64_t reel_safetensors_data_size(const reel_safetensors *st) { return st->data_size; }
size_t reel_safetensors_count(const reel_safetensors *st) { return st->count; }

const reel_st_tensor *reel_safetensors_at(const reel_safetensors *st, size_t i) {
  return i < st->count ? &st->tensors[i] : NULL;
}

const reel_st_tensor *reel_safetensors_find(const reel_safetensors *st, const char *name) {
  if (!name) return NULL;
  size_t lo = 0, hi = st->count;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    int c = strcmp(name, st->tensors[mid].name);
    if (c == 0) return &st->tensors[mid];
    if (c < 0)
      hi = mid;
    else
      lo = mid + 1;
  }
  return NULL;
}

size_t reel_safetensors_metadata_count(const reel_safetensors *st) { return st->meta_count; }

reel_status reel_safetensors_metadata_at(const reel_safetensors *st, size_t i, const char **key, const char **value) {
  if (i >= st->meta_count) return REEL_ERANGE;
  if (key) *key = st->meta[i].key;
  if (value) *value = st->meta[i].value;
  return REEL_OK;
}

const char *reel_safetensors_metadata(const reel_safetensors *st, const char *key) {
  if (!key) return NULL;
  size_t lo = 0, hi = st->meta_count;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    int c = strcmp(key, st->meta[mid].key);
    if (c == 0) return st->meta[mid].value;
    if (c < 0)
      hi = mid;
    else
      lo = mid + 1;
  }
  return NULL;
}

/* ---- writer ---- */

/* Nonzero when s[0..len) is valid UTF-8 (no overlongs, no surrogates, at most U+10FFFF). */
static int utf8_valid(const unsigned char *s, size_t len) {
  size_t i = 0;
  while (i < len) {
    unsigned c = s[i];
    size_t n;
    unsigned cp;
    if (c < 0x80) {
      i++;
      continue;
    } else if ((c & 0xe0) == 0xc0) {
      n = 1;
      cp = c & 0x1f;
    } else if ((c & 0xf0) == 0xe0) {
      n = 2;
      cp = c & 0x0f;
    } else if ((c & 0xf8) == 0xf0) {
      n = 3;
      cp = c & 0x07;
    } else {
      return 0;
    }
    if (len - i <= n) return 0;
    for (size_t j = 1; j <= n; j++) {
      if ((s[i + j] & 0xc0) != 0x80) return 0;
      cp = (cp << 6) | (s[i + j] & 0x3f);
    }
    if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) || cp > 0x10ffff ||
        (cp >= 0xd800 && cp <= 0xdfff))
      return 0;
    i += n + 1;
  }
  return 1;
}

/* Checks a name or metadata string that goes into the header. */
static reel_status check_string(const char *s, const char *what, size_t index, size_t max_len, reel_error *err) {
  char field[REEL_ERROR_FIELD_MAX];
  snprintf(field, sizeof field, "%s[%zu]", what, index);
  if (!s) return reel_error_set(err, REEL_EINVAL, field, "must not be NULL");
  size_t len = strlen(s);
  if (len > max_len) return reel_error_set(err, REEL_ELIMIT, field, "is %zu bytes, limit %zu", len, max_len);
  if (!utf8_valid((const unsigned char *)s, len))
    return reel_error_set(err, REEL_EINVAL, field, "\"%.200s\" is not valid UTF-8", s);
  return REEL_OK;
}

static int json_add(json_t *obj, const char *key, json_t *v) { return json_object_set_new(obj, key, v); }

/*
 * Validates the entries and builds the padded header: *hdr (reel_malloc'd) holds
 * *hdr_len bytes, a multiple of 8 minus nothing (8 + *hdr_len is a multiple of 8).
 * *data_len is the size of the data section.
 */
static reel_status build_header(const reel_st_entry *t, size_t n, const reel_st_kv *meta, size_t nmeta, char **hdr,
                                size_t *hdr_len, uint64_t *data_len, reel_error *err) {
  *hdr = NULL;
  if (n && !t) return reel_error_set(err, REEL_EINVAL, "tensors", "no tensor list given for %zu tensors", n);
  if (nmeta && !meta)
    return reel_error_set(err, REEL_EINVAL, "metadata", "no metadata list given for %zu entries", nmeta);
  reel_status rc = REEL_OK;
  json_t *root = json_object();
  if (!root) return reel_error_set(err, REEL_ENOMEM, "header", "cannot allocate the header");
  if (nmeta) {
    json_t *m = json_object();
    if (!m || json_add(root, "__metadata__", m) != 0) {
      rc = reel_error_set(err, REEL_ENOMEM, "header", "cannot allocate the header");
      goto done;
    }
    for (size_t i = 0; i < nmeta; i++) {
      if ((rc = check_string(meta[i].key, "metadata.key", i, REEL_ST_MAX_NAME, err)) != REEL_OK) goto done;
      if ((rc = check_string(meta[i].value, "metadata.value", i, REEL_ST_MAX_HEADER, err)) != REEL_OK) goto done;
      if (json_object_get(m, meta[i].key)) {
        rc = reel_error_set(err, REEL_EINVAL, "metadata", "key \"%.200s\" is given twice", meta[i].key);
        goto done;
      }
      if (json_add(m, meta[i].key, json_string(meta[i].value)) != 0) {
        rc = reel_error_set(err, REEL_ENOMEM, "header", "cannot allocate the header");
        goto done;
      }
    }
  }
  uint64_t off = 0;
  for (size_t i = 0; i < n; i++) {
    const reel_st_entry *e = &t[i];
    if ((rc = check_string(e->name, "tensors.name", i, REEL_ST_MAX_NAME, err)) != REEL_OK) goto done;
    if (!e->name[0] || strcmp(e->name, "__metadata__") == 0) {
      rc = reel_error_set(err, REEL_EINVAL, "tensors.name", "tensor %zu: name \"%s\" is reserved or empty", i, e->name);
      goto done;
    }
    if (json_object_get(root, e->name)) {
      rc = reel_error_set(err, REEL_EINVAL, e->name, "tensor name is given twice");
      goto done;
    }
    if ((unsigned)e->dtype >= REEL_ST_DTYPE_COUNT) {
      rc = reel_error_set(err, REEL_EINVAL, e->name, "dtype %d is not a known dtype", (int)e->dtype);
      goto done;
    }
    if (e->rank < 0 || e->rank > REEL_ST_MAX_RANK || (e->rank > 0 && !e->shape)) {
      rc =
          reel_error_set(err, REEL_EINVAL, e->name, "rank %d must be in 0..%d with a shape", e->rank, REEL_ST_MAX_RANK);
      goto done;
    }
    uint64_t nbytes = dtype_table[e->dtype].size;
    for (int d = 0; d < e->rank; d++) {
      if (e->shape[d] < 0 || __builtin_mul_overflow(nbytes, (uint64_t)e->shape[d], &nbytes)) {
        rc = reel_error_set(err, REEL_EINVAL, e->name, "shape[%d] = %lld is negative or overflows", d,
                            (long long)e->shape[d]);
        goto done;
      }
    }
    if (nbytes && !e->data) {
      rc = reel_error_set(err, REEL_EINVAL, e->name, "no data for %llu bytes", (unsigned long long)nbytes);
      goto done;
    }
    if (nbytes > (uint64_t)INT64_MAX - off) {
      rc = reel_error_set(err, REEL_ELIMIT, e->name, "data section exceeds %lld bytes", (long long)INT64_MAX);
      goto done;
    }
    json_t *obj = json_object(), *shape = json_array(), *offs = json_array();
    int bad = !obj || !shape || !offs;
    for (int d = 0; !bad && d < e->rank; d++) bad = json_array_append_new(shape, json_integer(e->shape[d])) != 0;
    bad = bad || json_array_append_new(offs, json_integer((json_int_t)off)) != 0 ||
          json_array_append_new(offs, json_integer((json_int_t)(off + nbytes))) != 0;
    if (bad) {
      json_decref(obj);
      json_decref(shape);
      json_decref(offs);
      rc = reel_error_set(err, REEL_ENOMEM, "header", "cannot allocate the header");
      goto done;
    }
    /* Each json_add consumes its value, also on failure; what was not yet added is released here. */
    int failed_at = 0;
    if (json_add(obj, "dtype", json_string(dtype_table[e->dtype].name)) != 0)
      failed_at = 1;
    else if (json_add(obj, "shape", shape) != 0)
      failed_at = 2;
    else if (json_add(obj, "data_offsets", offs) != 0)
      failed_at = 3;
    if (failed_at) {
      if (failed_at < 2) json_decref(shape);
      if (failed_at < 3) json_decref(offs);
      json_decref(obj);
      rc = reel_error_set(err, REEL_ENOMEM, "header", "cannot allocate the header");
      goto done;
    }
    if (json_add(root, e->name, obj) != 0) {
      rc = reel_error_set(err, REEL_ENOMEM, "header", "cannot allocate the header");
      goto done;
    }
    off += nbytes;
  }
  size_t need = json_dumpb(root, NULL, 0, JSON_COMPACT);
  if (need == 0) {
    rc = reel_error_set(err, REEL_ENOMEM, "header", "cannot serialise the header");
    goto done;
  }
  if (need > REEL_ST_MAX_HEADER) {
    rc = reel_error_set(err, REEL_ELIMIT, "header", "header is %zu bytes, limit %u", need, REEL_ST_MAX_HEADER);
    goto done;
  }
  size_t padded = (need + 7) & ~(size_t)7; /* 8 + padded is a multiple of 8 */
  char *buf = reel_malloc(padded);
  if (!buf) {
    rc = reel_error_set(err, REEL_ENOMEM, "header", "cannot allocate %zu bytes for the header", padded);
    goto done;
  }
  size_t wrote = json_dumpb(root, buf, need, JSON_COMPACT);
  if (wrote != need) {
    reel_free(buf);
    /* json_dumpb allocates internally: 0 means it ran out of memory. */
    rc = wrote == 0 ? reel_error_set(err, REEL_ENOMEM, "header", "cannot serialise the header")
                    : reel_error_set(err, REEL_EINTERNAL, "header", "header serialisation changed size");
    goto done;
  }
  memset(buf + need, ' ', padded - need);
  *hdr = buf;
  *hdr_len = padded;
  *data_len = off;
done:
  json_decref(root);
  return rc;
}

static void store_le64(uint8_t *p, uint64_t v) {
  for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}

reel_status reel_safetensors_serialize(const reel_st_entry *tensors, size_t n, const reel_st_kv *meta, size_t nmeta,
                                       void **out, size_t *len, reel_error *err) {
  if (!out || !len) return reel_error_set(err, REEL_EINVAL, "out", "no output buffer given");
  *out = NULL;
  *len = 0;
  char *hdr = NULL;
  size_t hlen = 0;
  uint64_t dlen = 0;
  reel_status rc = build_header(tensors, n, meta, nmeta, &hdr, &hlen, &dlen, err);
  if (rc != REEL_OK) return rc;
  if (dlen > SIZE_MAX - 8 - hlen) {
    reel_free(hdr);
    return reel_error_set(err, REEL_ELIMIT, "tensors", "%llu bytes of data do not fit in memory",
                          (unsigned long long)dlen);
  }
  size_t total = 8 + hlen + (size_t)dlen;
  uint8_t *buf = reel_malloc(total);
  if (!buf) {
    reel_free(hdr);
    return reel_error_set(err, REEL_ENOMEM, "tensors", "cannot allocate %zu bytes", total);
  }
  store_le64(buf, hlen);
  memcpy(buf + 8, hdr, hlen);
  reel_free(hdr);
  size_t pos = 8 + hlen;
  for (size_t i = 0; i < n; i++) {
    size_t nb = reel_st_dtype_size(tensors[i].dtype);
    for (int d = 0; d < tensors[i].rank; d++) nb *= (size_t)tensors[i].shape[d];
    if (nb) memcpy(buf + pos, tensors[i].data, nb);
    pos += nb;
  }
  *out = buf;
  *len = total;
  return REEL_OK;
}

/* write(2) until done; returns 0 or an errno value. */
static int write_all(int fd, const void *p, size_t n) {
  const uint8_t *b = p;
  while (n) {
    ssize_t w = write(fd, b, n > (1u << 30) ? (1u << 30) : n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    b += w;
    n -= (size_t)w;
  }
  return 0;
}

/*
 * Best-effort fsync of the directory holding `path`, so that a rename survives a
 * crash. `path` is scratch: it is cut at its last '/'. Some filesystems refuse
 * fsync on directories; the file itself is already durable then.
 */
static void sync_parent_dir(char *path) {
  char *slash = strrchr(path, '/');
  const char *dir = ".";
  if (slash) {
    slash[slash == path ? 1 : 0] = '\0';
    dir = path;
  }
  int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd >= 0) {
    (void)fsync(fd);
    close(fd);
  }
}

reel_status reel_safetensors_write(const char *path, const reel_st_entry *tensors, size_t n, const reel_st_kv *meta,
                                   size_t nmeta, reel_error *err) {
  if (!path || !path[0]) return reel_error_set(err, REEL_EINVAL, "path", "no path given");
  char *hdr = NULL, *tmp = NULL;
  size_t hlen = 0;
  uint64_t dlen = 0;
  int fd = -1, e;
  reel_status rc = build_header(tensors, n, meta, nmeta, &hdr, &hlen, &dlen, err);
  if (rc != REEL_OK) return rc;
  size_t plen = strlen(path);
  tmp = reel_malloc(plen + sizeof ".tmp-XXXXXX");
  if (!tmp) {
    rc = reel_error_set(err, REEL_ENOMEM, "path", "%s: cannot allocate the temporary name", path);
    goto fail;
  }
  memcpy(tmp, path, plen);
  memcpy(tmp + plen, ".tmp-XXXXXX", sizeof ".tmp-XXXXXX");
  fd = mkostemp(tmp, O_CLOEXEC);
  if (fd < 0) {
    e = errno;
    reel_free(tmp);
    tmp = NULL; /* nothing was created */
    rc = reel_error_set(err, e == ENOENT ? REEL_ENOTFOUND : REEL_EIO, "path", "%s: cannot create a temporary file: %s",
                        path, strerror(e));
    goto fail;
  }
  /* mkostemp creates 0600; model files and dumps are meant to be shared like any other output. */
  if (fchmod(fd, 0644) != 0) {
    rc = reel_error_set(err, REEL_EIO, "path", "%s: cannot chmod: %s", tmp, strerror(errno));
    goto fail;
  }
  uint8_t lenbuf[8];
  store_le64(lenbuf, hlen);
  if ((e = write_all(fd, lenbuf, 8)) != 0 || (e = write_all(fd, hdr, hlen)) != 0) goto write_fail;
  for (size_t i = 0; i < n; i++) {
    size_t nb = reel_st_dtype_size(tensors[i].dtype);
    for (int d = 0; d < tensors[i].rank; d++) nb *= (size_t)tensors[i].shape[d];
    if (nb && (e = write_all(fd, tensors[i].data, nb)) != 0) goto write_fail;
  }
  if (fsync(fd) != 0) {
    e = errno;
    goto write_fail;
  }
  if (close(fd) != 0) {
    fd = -1;
    e = errno;
    goto write_fail;
  }
  fd = -1;
  if (rename(tmp, path) != 0) {
    rc = reel_error_set(err, REEL_EIO, "path", "%s: cannot rename %s into place: %s", path, tmp, strerror(errno));
    goto fail;
  }
  sync_parent_dir(tmp); /* tmp is no longer a file name after the rename; reuse its buffer */
  reel_free(tmp);
  reel_free(hdr);
  return REEL_OK;
write_fail:
  rc = reel_error_set(err, e == ENOSPC ? REEL_ELIMIT : REEL_EIO, "path", "%s: cannot write: %s", tmp, strerror(e));
fail:
  if (fd >= 0) close(fd);
  if (tmp) unlink(tmp);
  reel_free(tmp);
  reel_free(hdr);
  return rc;
}
