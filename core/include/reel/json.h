/* SPDX-License-Identifier: Apache-2.0 */
/*
 * JSON through jansson, with validating accessors.
 *
 * Every JSON document reel reads comes from outside (job specs, protocol headers,
 * model configs, safetensors headers). These helpers read one member, check its
 * type and range, and on failure fill a reel_error that names the field
 * ("job.frames") and the limit ("must be an integer in 1..1025, got 2000").
 * `path` is the dotted prefix used in messages ("job", "transformer/config.json").
 */
#ifndef REEL_JSON_H
#define REEL_JSON_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "reel/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Parses `len` bytes (need not be NUL-terminated) as one JSON value. Rejects
 * duplicate object keys and trailing garbage. On success *out holds a new
 * reference the caller must json_decref(); on failure *out is NULL and `err`
 * names `what` and the line/column.
 */
reel_status reel_json_parse(const char *data, size_t len, const char *what, json_t **out /* OUT: */,
                            reel_error *err);

/* Reads a whole file (at most max_bytes) and parses it; as reel_json_parse. */
reel_status reel_json_load_file(const char *path, size_t max_bytes, json_t **out /* OUT: */, reel_error *err);

/* Requirement for the getters below. */
typedef enum { REEL_JSON_OPTIONAL = 0, REEL_JSON_REQUIRED = 1 } reel_json_need;

/*
 * Each getter returns REEL_OK and writes *out when the member is present and
 * valid; returns REEL_OK and leaves *out untouched when it is absent (or null)
 * and optional; otherwise an error naming path.key.
 */
reel_status reel_json_get_int(const json_t *obj, const char *path, const char *key, reel_json_need need,
                              int64_t min, int64_t max, int64_t *out, reel_error *err);
reel_status reel_json_get_u64(const json_t *obj, const char *path, const char *key, reel_json_need need,
                              uint64_t *out, reel_error *err);
reel_status reel_json_get_double(const json_t *obj, const char *path, const char *key, reel_json_need need,
                                 double min, double max, double *out, reel_error *err);
reel_status reel_json_get_bool(const json_t *obj, const char *path, const char *key, reel_json_need need, int *out,
                               reel_error *err);
/* *out is borrowed from obj (valid while obj lives). Rejects strings longer than max_len bytes or with NUL. */
reel_status reel_json_get_string(const json_t *obj, const char *path, const char *key, reel_json_need need,
                                 size_t max_len, const char **out, reel_error *err);
/* Matches the string against a NULL-terminated list; *out is the index. */
reel_status reel_json_get_enum(const json_t *obj, const char *path, const char *key, reel_json_need need,
                               const char *const *choices, int *out, reel_error *err);

/* Fails with an error naming the first member of obj not in the NULL-terminated `allowed`. */
reel_status reel_json_check_keys(const json_t *obj, const char *path, const char *const *allowed, reel_error *err);

/*
 * Routes jansson's allocations through reel's counting allocator, so that a
 * parse during which memory ran out is reported as REEL_ENOMEM (jansson itself
 * silently drops bytes from strings when a buffer cannot grow). The injector does
 * not fire inside jansson (jansson 2.14 aborts on some failures mid-string).
 * jansson's allocator is process-wide: programs (the CLI, test binaries) call
 * this once at start-up; libraries never do. Cannot fail.
 */
void reel_json_use_reel_alloc(void);

/* Serialises compactly (sorted keys off, no indent) into a new heap string; NULL on failure. Free with free(). */
char *reel_json_dumps(const json_t *value);

#ifdef __cplusplus
}
#endif
#endif
