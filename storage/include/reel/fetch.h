/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Reading objects back: copies an object named by URL (s3://bucket/key signed
 * with the usual AWS_* configuration, or http:// / https://) into a local file.
 * For previews of uploaded clips and, later, image/video conditioning inputs.
 */
#ifndef REEL_FETCH_H
#define REEL_FETCH_H

#include <stddef.h>

#include "reel/log.h"
#include "reel/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Nonzero when `url` names a remote object reel_fetch_to_file() can read (s3, http, https). */
int reel_fetch_is_remote(const char *url);

/*
 * Downloads `url` into the local file `dst_path` (written through the file sink:
 * a temporary name, then renamed). Refuses objects larger than max_bytes
 * (REEL_ELIMIT). REEL_EUNSUPPORTED for other schemes or when reel was built
 * without libcurl; REEL_ENOTFOUND for 404; REEL_EAUTH for 401/403.
 */
reel_status reel_fetch_to_file(const char *url, const char *dst_path, size_t max_bytes, const reel_logger *log,
                               reel_error *err);

#ifdef __cplusplus
}
#endif
#endif
