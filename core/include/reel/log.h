/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Structured logger: level, module, job id, a message and key=value fields, written
 * as one text line or one JSON object per record.
 *
 *   reel_log(lg, REEL_LOG_INFO, "encoder", job_id, "clip encoded",
 *            "frames=%d bytes=%zu codec=%s", n, bytes, "h264");
 *
 * Fields are given printf-style as space-separated key=value pairs; a value that
 * contains spaces must be quoted with "" in the format. In JSON mode each pair
 * becomes a member (numbers stay numbers). A logger is an object passed
 * explicitly; a NULL logger writes warnings and errors to stderr as text.
 * Writing is thread-safe: each record is one write(2) of a whole line.
 */
#ifndef REEL_LOG_H
#define REEL_LOG_H

#include <stdio.h>

#include "reel/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum reel_log_level {
  REEL_LOG_TRACE = 0,
  REEL_LOG_DEBUG = 1,
  REEL_LOG_INFO = 2,
  REEL_LOG_WARN = 3,
  REEL_LOG_ERROR = 4,
  REEL_LOG_OFF = 5
} reel_log_level;

typedef enum reel_log_format { REEL_LOG_TEXT = 0, REEL_LOG_JSON = 1 } reel_log_format;

typedef struct reel_logger {
  reel_log_level level;
  reel_log_format format;
  int fd; /* file descriptor records go to (2 = stderr) */
} reel_logger;

/* Fills a logger that writes to `fd` at `level` in `format`. Cannot fail. */
void reel_logger_init(reel_logger *lg, reel_log_level level, reel_log_format format, int fd);

/* Parses "trace|debug|info|warn|error|off" (case-insensitive). */
reel_status reel_log_level_parse(const char *s, reel_log_level *out /* OUT: */);
const char *reel_log_level_name(reel_log_level level);

/* Nonzero when a record at `level` would be written. */
int reel_log_enabled(const reel_logger *lg, reel_log_level level);

/*
 * Writes one record. `module` and `job_id` may be NULL. `fields_fmt` may be NULL
 * for no fields. Never fails visibly: a record that cannot be written is dropped.
 */
void reel_log(const reel_logger *lg, reel_log_level level, const char *module, const char *job_id, const char *msg,
              const char *fields_fmt, ...) __attribute__((format(printf, 6, 7)));

/* Logs an error context at `level` with the status name and field. */
void reel_log_error(const reel_logger *lg, reel_log_level level, const char *module, const char *job_id,
                    const reel_error *err);

/*
 * Renders one record into `buf` (no trailing newline) without writing it; used by
 * reel_log() and by tests. Returns the length written (truncated to size - 1).
 */
size_t reel_log_render(reel_log_format format, long long wall_ms, reel_log_level level, const char *module,
                       const char *job_id, const char *msg, const char *fields, char *buf, size_t size);

#ifdef __cplusplus
}
#endif
#endif
