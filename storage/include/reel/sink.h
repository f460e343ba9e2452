/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Output sinks: where encoded bytes go. One interface for every destination
 * (file://, s3://), so that the encoder can stream a clip into storage while it
 * is still being encoded.
 *
 * Lifetime: reel_sink_open() gives a sink; the caller writes bytes and then
 * either reel_sink_close() (commit: the object becomes visible, atomically) or
 * reel_sink_abort() (nothing becomes visible). Both free the sink and null the
 * caller's pointer; abort accepts NULL. After a failed write the only valid
 * call is abort.
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
  char url[1024];        /* canonical URL of the object (file:///abs/path or s3://bucket/key) */
  uint64_t bytes;        /* total bytes written */
  char sha256[65];       /* hex SHA-256 of the whole object */
} reel_sink_result;

typedef struct reel_sink_ops {
  const char *scheme; /* "file", "s3" */
  reel_status (*write)(reel_sink *s, const void *data, size_t len, reel_error *err);
  /* Optional: random access for muxers that rewrite headers (MP4 faststart). NULL when streaming only. */
  reel_status (*seek)(reel_sink *s, int64_t offset, int whence, int64_t *pos /* OUT: */, reel_error *err);
  reel_status (*read)(reel_sink *s, void *buf, size_t len, size_t *got /* OUT: */, reel_error *err);
  reel_status (*close)(reel_sink *s, reel_sink_result *res, reel_error *err);
  void (*abort)(reel_sink *s);
} reel_sink_ops;

/* Base struct every sink implementation embeds first. */
struct reel_sink {
  const reel_sink_ops *ops;
  const reel_logger *log;
  uint64_t bytes;
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
 * Opens a sink for `url`: "file:///abs/path", a plain path (treated as file), or
 * "s3://bucket/key" (when built with S3). Returns REEL_EUNSUPPORTED for unknown
 * schemes, naming the scheme in err.
 */
reel_status reel_sink_open(const char *url, const reel_sink_options *opts, reel_sink **out /* OUT: */, reel_error *err);

reel_status reel_sink_write(reel_sink *s, const void *data, size_t len, reel_error *err);
/* Nonzero when the sink supports seek and read. */
int reel_sink_seekable(const reel_sink *s);
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
