/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The sink front end: picks the implementation by URL scheme and enforces the
 * lifetime rules of reel/sink.h (no writes after a failure, close/abort free and
 * null the handle) so that each implementation need not repeat them.
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "reel/sink.h"
#include "sink_impl.h"

typedef struct {
  const char *scheme;
  reel__sink_open_fn open; /* NULL: known scheme, not built into this reel */
  const char *needs;       /* what a build needs for it, when open is NULL */
} scheme_row;

static const scheme_row schemes[] = {
    {"file", reel__file_sink_open, NULL},
#ifdef REEL_HAVE_S3
    {"s3", reel__s3_sink_open, NULL},
#else
    {"s3", NULL, "a reel built with REEL_WITH_S3=ON (libcurl and OpenSSL)"},
#endif
};

/* Length of the scheme when `url` has the form scheme "://", else 0. */
static size_t url_scheme_len(const char *url) {
  if (!isalpha((unsigned char)url[0])) return 0;
  size_t n = 1;
  while (isalnum((unsigned char)url[n]) || url[n] == '+' || url[n] == '-' || url[n] == '.') n++;
  if (strncmp(url + n, "://", 3) == 0) return n;
  /* RFC 8089 also allows the one-slash form "file:/abs/path". */
  if (n == 4 && strncasecmp(url, "file:/", 6) == 0) return n;
  return 0;
}

const char *reel_sink_scheme(const char *url, char *buf, size_t size) {
  if (!buf || size == 0) return buf;
  size_t n = url ? url_scheme_len(url) : 0;
  if (n == 0) {
    snprintf(buf, size, "file");
    return buf;
  }
  if (n >= size) n = size - 1;
  for (size_t i = 0; i < n; i++) buf[i] = (char)tolower((unsigned char)url[i]);
  buf[n] = '\0';
  return buf;
}

reel_status reel_sink_open(const char *url, const reel_sink_options *opts, reel_sink **out, reel_error *err) {
  reel_sink_options defaults;
  if (!out) return reel_error_set(err, REEL_EINVAL, "out", "must not be NULL");
  *out = NULL;
  if (!url) return reel_error_set(err, REEL_EINVAL, "url", "output URL is missing");
  if (!url[0]) return reel_error_set(err, REEL_EINVAL, "url", "output URL is empty");
  if (!opts) {
    memset(&defaults, 0, sizeof defaults);
    opts = &defaults;
  }
  char scheme[32];
  reel_sink_scheme(url, scheme, sizeof scheme);
  for (size_t i = 0; i < sizeof schemes / sizeof schemes[0]; i++) {
    if (strcmp(schemes[i].scheme, scheme) != 0) continue;
    if (!schemes[i].open)
      return reel_error_set(err, REEL_EUNSUPPORTED, "url", "'%s': %s:// outputs need %s", url, scheme,
                            schemes[i].needs);
    reel_status st = schemes[i].open(url, opts, out, err);
    if (st == REEL_OK) {
      (*out)->bytes = 0;
      (*out)->failed = 0;
    }
    return st;
  }
  return reel_error_set(err, REEL_EUNSUPPORTED, "url", "'%s': unknown scheme '%s' (supported: file, s3)", url, scheme);
}

reel_status reel_sink_write(reel_sink *s, const void *data, size_t len, reel_error *err) {
  if (!s) return reel_error_set(err, REEL_EINVAL, "sink", "must not be NULL");
  if (s->failed) return reel_error_set(err, REEL_ESTATE, "sink", "'%s': write after a failed operation", s->url);
  if (len == 0) return REEL_OK;
  if (!data) return reel_error_set(err, REEL_EINVAL, "data", "must not be NULL");
  reel_status st = s->ops->write(s, data, len, err);
  if (st != REEL_OK) {
    s->failed = 1;
    return st;
  }
  s->bytes += len;
  return REEL_OK;
}

int reel_sink_seekable(const reel_sink *s) { return s && s->ops->seek && s->ops->read; }

const char *reel_sink_url(const reel_sink *s) { return s && s->url ? s->url : ""; }

reel_status reel_sink_seek(reel_sink *s, int64_t offset, int whence, int64_t *pos, reel_error *err) {
  if (!s) return reel_error_set(err, REEL_EINVAL, "sink", "must not be NULL");
  if (!reel_sink_seekable(s))
    return reel_error_set(err, REEL_EUNSUPPORTED, "sink", "'%s': %s sinks cannot seek", s->url, s->ops->scheme);
  if (s->failed) return reel_error_set(err, REEL_ESTATE, "sink", "'%s': seek after a failed operation", s->url);
  int64_t ignored;
  reel_status st = s->ops->seek(s, offset, whence, pos ? pos : &ignored, err);
  /* A bad argument is the caller's mistake, not a broken object. */
  if (st != REEL_OK && st != REEL_EINVAL) s->failed = 1;
  return st;
}

reel_status reel_sink_read(reel_sink *s, void *buf, size_t len, size_t *got, reel_error *err) {
  size_t ignored;
  if (!got) got = &ignored;
  *got = 0;
  if (!s) return reel_error_set(err, REEL_EINVAL, "sink", "must not be NULL");
  if (!reel_sink_seekable(s))
    return reel_error_set(err, REEL_EUNSUPPORTED, "sink", "'%s': %s sinks cannot read", s->url, s->ops->scheme);
  if (s->failed) return reel_error_set(err, REEL_ESTATE, "sink", "'%s': read after a failed operation", s->url);
  if (len == 0) return REEL_OK;
  if (!buf) return reel_error_set(err, REEL_EINVAL, "buf", "must not be NULL");
  reel_status st = s->ops->read(s, buf, len, got, err);
  if (st != REEL_OK) s->failed = 1;
  return st;
}

reel_status reel_sink_close(reel_sink **sp, reel_sink_result *res, reel_error *err) {
  reel_sink_result ignored;
  if (!res) res = &ignored;
  memset(res, 0, sizeof *res);
  if (!sp || !*sp) return reel_error_set(err, REEL_EINVAL, "sink", "must not be NULL");
  reel_sink *s = *sp;
  *sp = NULL;
  if (s->failed) {
    reel_status st = reel_error_set(err, REEL_ESTATE, "sink", "'%s': not committed after a failed operation", s->url);
    s->ops->abort(s);
    return st;
  }
  return s->ops->close(s, res, err);
}

void reel_sink_abort(reel_sink **sp) {
  if (!sp || !*sp) return;
  reel_sink *s = *sp;
  *sp = NULL;
  s->ops->abort(s);
}
