/* SPDX-License-Identifier: Apache-2.0 */
/*
 * S3-compatible object storage (AWS S3, MinIO, SeaweedFS, R2): configuration,
 * presigned URLs and the spool of clips that could not be uploaded.
 *
 * The s3:// sink itself is opened through reel_sink_open() (reel/sink.h). Its
 * configuration comes from the usual variables, read when a sink is opened:
 *   AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN (optional)
 *   AWS_REGION or AWS_DEFAULT_REGION (default us-east-1)
 *   AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL (e.g. http://127.0.0.1:8333); unset = AWS
 *   REEL_S3_ADDRESSING = path | virtual (default: path with an endpoint, virtual for AWS)
 *   REEL_S3_MAX_ATTEMPTS (default 6), REEL_S3_TIMEOUT_MS (per request, default 60000)
 *
 * Durability: with a spool directory, every byte written to an s3:// sink is also
 * written to a local spool file. When the upload fails for a reason that may pass
 * (network, 5xx, timeouts) the clip stays in the spool with a small JSON manifest
 * and reel_s3_flush_spool() uploads it later, so an encoded clip is never lost.
 */
#ifndef REEL_S3_H
#define REEL_S3_H

#include <stddef.h>

#include "reel/log.h"
#include "reel/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct reel_s3_config {
  char endpoint[512]; /* scheme://host[:port], no trailing slash; "" = AWS */
  char region[64];
  char access_key[256];
  char secret_key[256];
  char session_token[4096];
  int path_style;   /* 1: endpoint/bucket/key; 0: bucket.endpoint/key */
  int max_attempts; /* per request, >= 1 */
  long timeout_ms;  /* per request */
  long connect_timeout_ms;
} reel_s3_config;

/* Fills cfg from the environment (see above). REEL_EAUTH naming the variable when credentials are missing. */
reel_status reel_s3_config_from_env(reel_s3_config *cfg /* OUT: */, reel_error *err);

/*
 * Writes an https/http URL that lets anyone GET s3://bucket/key for `expires_s`
 * seconds (1..604800) into out. Signs locally; no request is made.
 */
reel_status reel_s3_presign_get(const reel_s3_config *cfg, const char *s3_url, int expires_s, char *out, size_t size,
                                reel_error *err);

/*
 * Uploads every complete clip waiting in `spool_dir` to its destination and
 * removes it from the spool on success. *uploaded (may be NULL) gets the count.
 * Clips that still cannot be uploaded stay; the first error is returned.
 */
reel_status reel_s3_flush_spool(const char *spool_dir, const reel_logger *log, int *uploaded /* OUT: */,
                                reel_error *err);

#ifdef __cplusplus
}
#endif
#endif
