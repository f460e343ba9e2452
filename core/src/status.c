/* SPDX-License-Identifier: Apache-2.0 */
/*
 * reel_strerror() and the error context. The tables are generated from
 * REEL_STATUS_MAP so that a new code needs one line in status.h and nothing else.
 */
#include "reel/status.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

typedef struct {
  reel_status code;
  const char *name;
  const char *msg;
} status_entry;

static const status_entry status_table[] = {
#define REEL__STATUS_ROW(name, value, msg) {(reel_status)(value), #name, msg},
    REEL_STATUS_MAP(REEL__STATUS_ROW)
#undef REEL__STATUS_ROW
};

static const status_entry *status_lookup(reel_status status) {
  for (size_t i = 0; i < sizeof status_table / sizeof status_table[0]; i++)
    if (status_table[i].code == status) return &status_table[i];
  return NULL;
}

const char *reel_strerror(reel_status status) {
  const status_entry *e = status_lookup(status);
  return e ? e->msg : "unknown error";
}

const char *reel_status_name(reel_status status) {
  const status_entry *e = status_lookup(status);
  return e ? e->name : "UNKNOWN";
}

reel_status reel_status_from_name(const char *name, reel_status *out) {
  if (!name) return REEL_EINVAL;
  for (size_t i = 0; i < sizeof status_table / sizeof status_table[0]; i++) {
    if (strcmp(status_table[i].name, name) == 0) {
      if (out) *out = status_table[i].code;
      return REEL_OK;
    }
  }
  return REEL_ENOTFOUND;
}

void reel_error_clear(reel_error *err) {
  if (!err) return;
  err->code = REEL_OK;
  err->field[0] = '\0';
  err->msg[0] = '\0';
}

static void error_vset(reel_error *err, reel_status code, const char *field, const char *fmt, va_list ap) {
  err->code = code;
  snprintf(err->field, sizeof err->field, "%s", field ? field : "");
  if (fmt)
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
  else
    snprintf(err->msg, sizeof err->msg, "%s", reel_strerror(code));
}

reel_status reel_error_set(reel_error *err, reel_status code, const char *field, const char *fmt, ...) {
  if (!err || err->code != REEL_OK) return code;
  va_list ap;
  va_start(ap, fmt);
  error_vset(err, code, field, fmt, ap);
  va_end(ap);
  return code;
}

reel_status reel_error_reset(reel_error *err, reel_status code, const char *field, const char *fmt, ...) {
  if (!err) return code;
  va_list ap;
  va_start(ap, fmt);
  error_vset(err, code, field, fmt, ap);
  va_end(ap);
  return code;
}

void reel_error_prefix_field(reel_error *err, const char *prefix, char sep) {
  if (!err || !prefix || !prefix[0]) return;
  /* Built by hand: truncation is intended, and snprintf would warn about it. */
  char tmp[REEL_ERROR_FIELD_MAX];
  size_t n = 0, cap = sizeof tmp - 1;
  for (const char *p = prefix; *p && n < cap; p++) tmp[n++] = *p;
  if (err->field[0]) {
    if (n < cap) tmp[n++] = sep;
    for (const char *p = err->field; *p && n < cap; p++) tmp[n++] = *p;
  }
  tmp[n] = '\0';
  memcpy(err->field, tmp, n + 1);
}

const char *reel_error_format(const reel_error *err, char *buf, size_t size) {
  if (!buf || size == 0) return buf;
  if (!err || err->code == REEL_OK) {
    snprintf(buf, size, "no error");
  } else if (err->field[0]) {
    snprintf(buf, size, "%s: %s (%s)", err->field, err->msg[0] ? err->msg : reel_strerror(err->code),
             reel_status_name(err->code));
  } else {
    snprintf(buf, size, "%s (%s)", err->msg[0] ? err->msg : reel_strerror(err->code), reel_status_name(err->code));
  }
  return buf;
}
