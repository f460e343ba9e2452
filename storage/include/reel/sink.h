/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Output sinks: where encoded bytes go. One interface for every destination
 * (file://, s3://), so that the encoder can stream a clip into storage while it
 * is still being encoded.
 *
 * Lifetime: reel_sink_open() gives a sink; the caller writes bytes and then
 * either reel_sink_close() (commit: the object becomes visible, atomically) or
 * reel_sink_abort() (nothing becomes visible). Both free the sink and null the
 * caller's pointer; abort accepts NULL. After a failed write, seek or read the
 * sink refuses further writes (REEL_ESTATE) and close aborts it; abort is the
 * expected call.
 *
 * Implementations: one file per scheme (storage/src/<scheme>_sink.c) with an
 * open function listed in the scheme table of storage/src/sink.c. Each embeds
 * struct reel_sink first and fills in ops, url and log; the generic layer keeps
 * `bytes` and `failed`. A sink is used by one thread at a time.
 */
#ifndef REEL_SINK_H
#define REEL_SINK_H

#include <stddef.h>
#include <stdint.h>

#include "reel/log.h"
#include "reel/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct reel_sink reel_sink;

/* What a committed object ended up as. */
typedef struct reel_sink_result {
  char url[1024];  /* canonical URL of the object (file:///abs/path or s3://bucket/key) */
  uint64_t bytes;  /* total bytes written */
  char sha256[65]; /* hex SHA-256 of the whole object */
} reel_sink_result;

typedef struct reel_sink_ops {
  const char *scheme; /* "file", "s3" */
  /* Writes all of data at the current position (a short write is an error) and advances it. */
  reel_status (*write)(reel_sink *s, const void *data, size_t len, reel_error *err);
  /*
   * Optional: random access for muxers that rewrite headers (MP4 faststart).
   * NULL (both) when streaming only. seek takes SEEK_SET/SEEK_CUR/SEEK_END and
   * reports the new position; read returns *got == 0 at the end of the object.
   */
  reel_status (*seek)(reel_sink *s, int64_t offset, int whence, int64_t *pos /* OUT: */, reel_error *err);
  reel_status (*read)(reel_sink *s, void *buf, size_t len, size_t *got /* OUT: */, reel_error *err);
  /* Commits and frees s (whatever the result); res is never NULL here. */
  reel_status (*close)(reel_sink *s, reel_sink_result *res, reel_error *err);
  /* Discards and frees s. Cannot fail. */
  void (*abort)(reel_sink *s);
} reel_sink_ops;

/* Base struct every sink implementation embeds first. */
struct reel_sink {
  const reel_sink_ops *ops;
  const reel_logger *log;
  const char *url; /* canonical URL, owned by the implementation; valid until close/abort */
  uint64_t bytes;  /* bytes accepted by write so far (rewrites count again); kept by sink.c */
  int failed;      /* set by sink.c after a failed write/seek/read */
};

/* Options common to all sinks; zero-initialise for defaults. */
typedef struct reel_sink_options {
  const reel_logger *log;
  const char *content_type; /* e.g. "video/mp4"; NULL = guessed from the extension */
  size_t part_size;         /* s3 multipart part size; 0 = 8 MiB (minimum 5 MiB) */
  int max_parts_in_flight;  /* s3; 0 = 4 */
  const char *spool_dir;    /* s3: where a clip waits when storage is unreachable; NULL = no spool */
} reel_sink_options;

/*
 * Opens a sink for `url`: "file:///abs/path" (or "file://localhost/abs/path",
 * percent-escapes decoded), a plain path (absolute or relative to the working
 * directory; never percent-decoded), or "s3://bucket/key" (when built with S3).
 * Anything of the form "scheme://..." is a URL; everything else is a path.
 * Errors name the URL in err->msg with err->field = "url": REEL_EINVAL for a
 * malformed URL or path, REEL_ENOTFOUND when the directory does not exist,
 * REEL_EAUTH when it may not be written, REEL_EUNSUPPORTED for an unknown scheme.
 * opts may be NULL.
 */
reel_status reel_sink_open(const char *url, const reel_sink_options *opts, reel_sink **out /* OUT: */, reel_error *err);

reel_status reel_sink_write(reel_sink *s, const void *data, size_t len, reel_error *err);
/* Nonzero when the sink supports seek and read. */
int reel_sink_seekable(const reel_sink *s);
/* The canonical URL the object will have ("file:///abs/path"); never NULL for an open sink. */
const char *reel_sink_url(const reel_sink *s);
/* Scheme of a URL or path as reel_sink_open would read it ("file" for plain paths), into buf. Returns buf. */
const char *reel_sink_scheme(const char *url, char *buf, size_t size);
reel_status reel_sink_seek(reel_sink *s, int64_t offset, int whence, int64_t *pos /* OUT: */, reel_error *err);
reel_status reel_sink_read(reel_sink *s, void *buf, size_t len, size_t *got /* OUT: */, reel_error *err);
/* Commits and frees; *s is NULL afterwards whatever the result (on failure the object is not visible). */
reel_status reel_sink_close(reel_sink **s, reel_sink_result *res /* OUT: may be NULL */, reel_error *err);
/* Discards and frees; accepts NULL and NULL *s. */
void reel_sink_abort(reel_sink **s);

#ifdef __cplusplus
}
#endif
#endif
