/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Internal to encoder/: what the encoder and the decoder share about FFmpeg —
 * turning AVERROR codes into reel errors, and the "owner" record that FFmpeg
 * contexts point to (through their opaque field) so that log messages can be
 * routed to the right reel logger.
 */
#ifndef REEL_AV_COMMON_H
#define REEL_AV_COMMON_H

#include <stdint.h>

#include "reel/log.h"
#include "reel/status.h"

#define REEL__AV_OWNER_MAGIC 0x7265656cu /* "reel" */

/* First member of every reel object whose FFmpeg contexts carry opaque = &owner. */
typedef struct reel__av_owner {
  uint32_t magic;
  const reel_logger *log;
  const char *job_id;
  const char *module; /* "encoder", "decoder" */
  int quiet;          /* while probing (NVENC): FFmpeg's errors and warnings become debug records */
} reel__av_owner;

/*
 * Records an FFmpeg failure: REEL_ENOMEM for AVERROR(ENOMEM), REEL_ECODEC
 * otherwise, with "<what>: <av_strerror text>". Returns the status.
 */
reel_status reel__av_fail(reel_error *err, const char *field, int averr, const char *what);

#endif
