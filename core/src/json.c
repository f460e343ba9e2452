/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Validating JSON accessors on top of jansson. See reel/json.h.
 */
#include "reel/json.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "reel/alloc.h"

static void field_name(char *buf, size_t size, const char *path, const char *key) {
  if (path && path[0])
    snprintf(buf, size, "%s.%s", path, key);
  else
    snprintf(buf, size, "%s", key);
}

reel_status reel_json_parse(const char *data, size_t len, const char *what, json_t **out, reel_error *err) {
  *out = NULL;
  if (!data) return reel_error_set(err, REEL_EINVAL, what, "no data");
  json_error_t jerr;
  long failed_before = reel_alloc_failed_total();
  json_t *v = json_loadb(data, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
  if (v && reel_alloc_failed_total() != failed_before) {
    /* jansson drops bytes silently when a string buffer cannot grow: never trust a parse that saw a failure. */
    json_decref(v);
    return reel_error_set(err, REEL_ENOMEM, what, "out of memory while parsing JSON");
  }
  if (!v) {
    if (json_error_code(&jerr) == json_error_out_of_memory || reel_alloc_failed_total() != failed_before)
      return reel_error_set(err, REEL_ENOMEM, what, "out of memory while parsing JSON");
    return reel_error_set(err, REEL_EFORMAT, what, "invalid JSON at line %d column %d: %s", jerr.line, jerr.column,
                          jerr.text);
  }
  *out = v;
  return REEL_OK;
}

reel_status reel_json_load_file(const char *path, size_t max_bytes, json_t **out, reel_error *err) {
  *out = NULL;
  FILE *f = fopen(path, "rb");
  if (!f) return reel_error_set(err, errno == ENOENT ? REEL_ENOTFOUND : REEL_EIO, path, "cannot open: %s", strerror(errno));
  reel_status st = REEL_OK;
  char *buf = NULL;
  if (fseek(f, 0, SEEK_END) != 0) {
    st = reel_error_set(err, REEL_EIO, path, "cannot seek");
    goto end;
  }
  long size = ftell(f);
  if (size < 0) {
    st = reel_error_set(err, REEL_EIO, path, "cannot size");
    goto end;
  }
  if ((unsigned long)size > max_bytes) {
    st = reel_error_set(err, REEL_ELIMIT, path, "file is %ld bytes, limit %zu", size, max_bytes);
    goto end;
  }
  rewind(f);
  buf = reel_malloc((size_t)size + 1);
  if (!buf) {
    st = reel_error_set(err, REEL_ENOMEM, path, "cannot allocate %ld bytes", size);
    goto end;
  }
  if (fread(buf, 1, (size_t)size, f) != (size_t)size) {
    st = reel_error_set(err, REEL_EIO, path, "short read");
    goto end;
  }
  st = reel_json_parse(buf, (size_t)size, path, out, err);
end:
  reel_free(buf);
  fclose(f);
  return st;
}

/* Looks up key; returns NULL for absent or JSON null. Reports a missing required member. */
static json_t *lookup(const json_t *obj, const char *path, const char *key, reel_json_need need, reel_status *st,
                      reel_error *err) {
  char name[REEL_ERROR_FIELD_MAX];
  *st = REEL_OK;
  if (!json_is_object(obj)) {
    snprintf(name, sizeof name, "%s", path ? path : "");
    *st = reel_error_set(err, REEL_EFORMAT, name, "expected a JSON object");
    return NULL;
  }
  json_t *v = json_object_get(obj, key);
  if (!v || json_is_null(v)) {
    if (need == REEL_JSON_REQUIRED) {
      field_name(name, sizeof name, path, key);
      *st = reel_error_set(err, REEL_EINVAL, name, "required field is missing");
    }
    return NULL;
  }
  return v;
}

reel_status reel_json_get_int(const json_t *obj, const char *path, const char *key, reel_json_need need,
                              int64_t min, int64_t max, int64_t *out, reel_error *err) {
  reel_status st;
  json_t *v = lookup(obj, path, key, need, &st, err);
  if (!v) return st;
  char name[REEL_ERROR_FIELD_MAX];
  field_name(name, sizeof name, path, key);
  int64_t x;
  if (json_is_integer(v)) {
    x = (int64_t)json_integer_value(v);
  } else if (json_is_real(v)) {
    double d = json_real_value(v);
    if (d != floor(d) || d < -9.2e18 || d > 9.2e18)
      return reel_error_set(err, REEL_EINVAL, name, "must be an integer in %lld..%lld, got %g", (long long)min,
                            (long long)max, d);
    x = (int64_t)d;
  } else {
    return reel_error_set(err, REEL_EINVAL, name, "must be an integer in %lld..%lld", (long long)min, (long long)max);
  }
  if (x < min || x > max)
    return reel_error_set(err, REEL_ERANGE, name, "must be in %lld..%lld, got %lld", (long long)min, (long long)max,
                          (long long)x);
  *out = x;
  return REEL_OK;
}

reel_status reel_json_get_u64(const json_t *obj, const char *path, const char *key, reel_json_need need,
                              uint64_t *out, reel_error *err) {
  reel_status st;
  json_t *v = lookup(obj, path, key, need, &st, err);
  if (!v) return st;
  char name[REEL_ERROR_FIELD_MAX];
  field_name(name, sizeof name, path, key);
  /* jansson integers are signed 64-bit; values above INT64_MAX travel as decimal strings. */
  if (json_is_integer(v) && json_integer_value(v) >= 0) {
    *out = (uint64_t)json_integer_value(v);
    return REEL_OK;
  }
  if (json_is_string(v)) {
    const char *s = json_string_value(v);
    char *end = NULL;
    errno = 0;
    unsigned long long u = strtoull(s, &end, 10);
    if (s[0] >= '0' && s[0] <= '9' && end && *end == '\0' && errno == 0 && json_string_length(v) <= 20) {
      *out = (uint64_t)u;
      return REEL_OK;
    }
  }
  return reel_error_set(err, REEL_EINVAL, name, "must be an integer in 0..18446744073709551615");
}

reel_status reel_json_get_double(const json_t *obj, const char *path, const char *key, reel_json_need need,
                                 double min, double max, double *out, reel_error *err) {
  reel_status st;
  json_t *v = lookup(obj, path, key, need, &st, err);
  if (!v) return st;
  char name[REEL_ERROR_FIELD_MAX];
  field_name(name, sizeof name, path, key);
  if (!json_is_number(v)) return reel_error_set(err, REEL_EINVAL, name, "must be a number in %g..%g", min, max);
  double d = json_number_value(v);
  if (!isfinite(d) || d < min || d > max)
    return reel_error_set(err, REEL_ERANGE, name, "must be in %g..%g, got %g", min, max, d);
  *out = d;
  return REEL_OK;
}

reel_status reel_json_get_bool(const json_t *obj, const char *path, const char *key, reel_json_need need, int *out,
                               reel_error *err) {
  reel_status st;
  json_t *v = lookup(obj, path, key, need, &st, err);
  if (!v) return st;
  if (!json_is_boolean(v)) {
    char name[REEL_ERROR_FIELD_MAX];
    field_name(name, sizeof name, path, key);
    return reel_error_set(err, REEL_EINVAL, name, "must be true or false");
  }
  *out = json_is_true(v);
  return REEL_OK;
}

reel_status reel_json_get_string(const json_t *obj, const char *path, const char *key, reel_json_need need,
                                 size_t max_len, const char **out, reel_error *err) {
  reel_status st;
  json_t *v = lookup(obj, path, key, need, &st, err);
  if (!v) return st;
  char name[REEL_ERROR_FIELD_MAX];
  field_name(name, sizeof name, path, key);
  if (!json_is_string(v)) return reel_error_set(err, REEL_EINVAL, name, "must be a string");
  size_t n = json_string_length(v);
  const char *s = json_string_value(v);
  if (n > max_len) return reel_error_set(err, REEL_ELIMIT, name, "is %zu bytes, limit %zu", n, max_len);
  if (strlen(s) != n) return reel_error_set(err, REEL_EINVAL, name, "must not contain NUL characters");
  *out = s;
  return REEL_OK;
}

reel_status reel_json_get_enum(const json_t *obj, const char *path, const char *key, reel_json_need need,
                               const char *const *choices, int *out, reel_error *err) {
  const char *s = NULL;
  reel_status st = reel_json_get_string(obj, path, key, need, 64, &s, err);
  if (st != REEL_OK || !s) return st;
  for (int i = 0; choices[i]; i++) {
    if (strcmp(choices[i], s) == 0) {
      *out = i;
      return REEL_OK;
    }
  }
  char name[REEL_ERROR_FIELD_MAX], list[256];
  field_name(name, sizeof name, path, key);
  size_t off = 0;
  list[0] = '\0';
  for (int i = 0; choices[i] && off < sizeof list; i++)
    off += (size_t)snprintf(list + off, sizeof list - off, "%s%s", i ? ", " : "", choices[i]);
  return reel_error_set(err, REEL_EINVAL, name, "must be one of: %s; got \"%.64s\"", list, s);
}

reel_status reel_json_check_keys(const json_t *obj, const char *path, const char *const *allowed, reel_error *err) {
  if (!json_is_object(obj)) return reel_error_set(err, REEL_EFORMAT, path, "expected a JSON object");
  const char *key;
  json_t *v;
  json_object_foreach((json_t *)obj, key, v) {
    (void)v;
    int ok = 0;
    for (int i = 0; allowed[i]; i++)
      if (strcmp(allowed[i], key) == 0) ok = 1;
    if (!ok) {
      char name[REEL_ERROR_FIELD_MAX];
      field_name(name, sizeof name, path, key);
      return reel_error_set(err, REEL_EINVAL, name, "unknown field");
    }
  }
  return REEL_OK;
}

/*
 * jansson's allocator: plain malloc that counts failures (reel_alloc_failed_total)
 * but is never failed on purpose. jansson 2.14 asserts (aborts) when an allocation
 * fails in the middle of a string, so injecting there would test jansson's crash,
 * not reel's cleanup; a real failure is still noticed and reported as ENOMEM.
 */
static void *json_counted_malloc(size_t size) { return reel__malloc_uninjected(size); }

void reel_json_use_reel_alloc(void) { json_set_alloc_funcs(json_counted_malloc, reel_free); }

char *reel_json_dumps(const json_t *value) { return json_dumps(value, JSON_COMPACT | JSON_ENCODE_ANY); }
