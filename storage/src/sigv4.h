/* SPDX-License-Identifier: Apache-2.0 */
/*
 * AWS Signature Version 4 for S3, written out in full rather than through
 * libcurl's CURLOPT_AWS_SIGV4 (whose canonical query string is wrong for
 * "?uploads" and for several parameters in older releases). Internal to storage/.
 *
 * The canonical request is built from the method, the already-encoded path, the
 * query parameters (sorted here), the signed headers and the payload hash; the
 * signature follows the published algorithm. Used for header auth and for
 * presigned URLs (query auth).
 */
#ifndef REEL_SIGV4_H
#define REEL_SIGV4_H

#include <stddef.h>
#include <stdint.h>

#include "reel/status.h"

#define REEL_SIGV4_MAX_PARAMS  16
#define REEL_SIGV4_MAX_HEADERS 12

typedef struct {
  const char *name;  /* raw (not yet URI-encoded) */
  const char *value; /* raw; "" for a bare flag such as "uploads" */
} reel_sigv4_param;

typedef struct {
  const char *name; /* lowercase */
  const char *value;
} reel_sigv4_header;

typedef struct {
  const char *access_key;
  const char *secret_key;
  const char *session_token; /* NULL or "" when none */
  const char *region;
  const char *service;  /* "s3" */
  const char *amz_date; /* "20130524T000000Z" */
} reel_sigv4_creds;

/* URI-encodes per SigV4: unreserved characters stay, everything else %XX (uppercase); '/' kept when keep_slash. */
size_t reel_sigv4_uri_encode(const char *in, int keep_slash, char *out, size_t size);

/* Hex SHA-256 of data (65 bytes with NUL). */
void reel_sigv4_sha256_hex(const void *data, size_t len, char out[65]);

/*
 * Computes the Authorization header value for a request. `path` is the raw
 * object path ("/bucket/key" or "/key"); headers must include host,
 * x-amz-content-sha256 and x-amz-date (and x-amz-security-token when a session
 * token is used); they are sorted here. Returns REEL_ELIMIT if a buffer is too small.
 */
reel_status reel_sigv4_authorization(const reel_sigv4_creds *c, const char *method, const char *path,
                                     const reel_sigv4_param *params, int nparams, const reel_sigv4_header *headers,
                                     int nheaders, const char *payload_hash, char *out, size_t size);

/*
 * Builds a presigned query string (without the leading '?') for `method` on path
 * at host, valid for `expires` seconds (1..604800), signing only the host header
 * with UNSIGNED-PAYLOAD.
 */
reel_status reel_sigv4_presign_query(const reel_sigv4_creds *c, const char *method, const char *host, const char *path,
                                     int expires, char *out, size_t size);

#endif
