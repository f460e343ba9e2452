/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Status codes and error context shared by every module.
 *
 * Every fallible function in reel returns a reel_status: 0 on success, a negative
 * code on failure. The codes come from one X-macro list so that the enum, the
 * names and the messages can never drift apart. A function that can say more than
 * a code takes a `reel_error *err` out-parameter (which may be NULL) and fills in a
 * message naming the offending field and limit; there is no global "last error".
 */
#ifndef REEL_STATUS_H
#define REEL_STATUS_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* X(NAME, value, message). Values are stable: they travel over the wire. */
#define REEL_STATUS_MAP(X)                                                       \
  X(OK, 0, "success")                                                            \
  X(EINVAL, -1, "invalid argument")                                              \
  X(ENOMEM, -2, "out of memory")                                                 \
  X(EIO, -3, "input/output error")                                               \
  X(EFORMAT, -4, "malformed data")                                               \
  X(ENOTFOUND, -5, "not found")                                                  \
  X(EUNSUPPORTED, -6, "not supported")                                           \
  X(ERANGE, -7, "value out of range")                                            \
  X(ELIMIT, -8, "limit exceeded")                                                \
  X(ECANCELED, -9, "canceled")                                                   \
  X(ETIMEDOUT, -10, "timed out")                                                 \
  X(EAGAIN, -11, "try again")                                                    \
  X(EOF, -12, "end of stream")                                                   \
  X(EEXIST, -13, "already exists")                                               \
  X(ESTATE, -14, "operation not valid in the current state")                     \
  X(EPROTO, -15, "protocol error")                                               \
  X(EAUTH, -16, "authentication or permission failure")                          \
  X(ENONFINITE, -17, "non-finite values (NaN or Inf)")                           \
  X(EBACKEND, -18, "compute backend error")                                      \
  X(EDEVICE, -19, "device error")                                                \
  X(ENODEVICE, -20, "no device available")                                       \
  X(ECODEC, -21, "codec error")                                                  \
  X(ESTORAGE, -22, "storage error")                                              \
  X(ENETWORK, -23, "network error")                                              \
  X(EMODEL, -24, "model error")                                                  \
  X(EINTERNAL, -25, "internal error")

typedef enum reel_status {
#define REEL__STATUS_ENUM(name, value, msg) REEL_##name = (value),
  REEL_STATUS_MAP(REEL__STATUS_ENUM)
#undef REEL__STATUS_ENUM
} reel_status;

/* Human-readable message for a status. Never NULL; unknown codes give "unknown error". */
const char *reel_strerror(reel_status status);

/* Symbolic name without prefix ("EINVAL"). Never NULL; unknown codes give "UNKNOWN". */
const char *reel_status_name(reel_status status);

/* Parses a symbolic name back into a code; returns REEL_ENOTFOUND if the name is unknown. */
reel_status reel_status_from_name(const char *name, reel_status *out /* OUT: */);

#define REEL_ERROR_FIELD_MAX 96
#define REEL_ERROR_MSG_MAX 512

/*
 * Error context. Caller-owned (usually on the stack); functions that fail fill it in.
 * `field` names the offending input ("job.frames", "transformer/blocks.3.attn1.to_q.weight")
 * and is empty when no single field is at fault.
 */
typedef struct reel_error {
  reel_status code;
  char field[REEL_ERROR_FIELD_MAX];
  char msg[REEL_ERROR_MSG_MAX];
} reel_error;

/* Resets to "no error". Accepts NULL. */
void reel_error_clear(reel_error *err);

/*
 * Records an error and returns `code`, so that callers can write
 *   return reel_error_set(err, REEL_ERANGE, "frames", "must be 1..%d, got %d", max, n);
 * `err` and `field` may be NULL. Only the first error is kept: a cleanup path that
 * fails after the real cause does not overwrite it.
 */
reel_status reel_error_set(reel_error *err, reel_status code, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Like reel_error_set but overwrites an existing error. */
reel_status reel_error_reset(reel_error *err, reel_status code, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/*
 * Prefixes the field with a path component ("vae" + "decoder.conv_in" ->
 * "vae/decoder.conv_in") so that nested loaders can say where an error came from.
 */
void reel_error_prefix_field(reel_error *err, const char *prefix, char sep);

/* Formats "field: message (NAME)" into buf. Returns buf. */
const char *reel_error_format(const reel_error *err, char *buf, size_t size);

#ifdef __cplusplus
}
#endif
#endif
