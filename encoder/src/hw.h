/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Internal to encoder/: what the NVENC path needs besides libavcodec — whether a
 * CUDA driver is there at all (so that machines without one never try NVENC and
 * never see its error messages), the x264-style preset → NVENC preset mapping,
 * and, when reel is built with CUDA, a CUDA hardware device context for FFmpeg
 * that shares a reel CUDA backend's context and stream, with a fixed pool of
 * NV12 frames on it.
 */
#ifndef REEL_ENCODER_HW_H
#define REEL_ENCODER_HW_H

#include <libavutil/buffer.h>

#include "reel/backend.h"
#include "reel/status.h"

/* Nonzero when libcuda.so.1 (the CUDA driver, which NVENC needs) can be loaded. */
int reel__cuda_driver_present(void);

/*
 * NVENC's preset ("p1" fastest .. "p7" slowest) for an x264/x265 preset name
 * ("ultrafast" .. "placebo"); "p4" for NULL or a name it does not know.
 */
const char *reel__nvenc_preset(const char *x26x_preset);

/* Frames allocated up front in a hardware frames context: NVENC's surfaces plus headroom. */
enum { REEL__HW_POOL_FRAMES = 24 };

/*
 * Makes *frames: a CUDA hardware frames context of `pool` NV12 frames of
 * width x height on the device of CUDA backend `b`, whose device context uses
 * the backend's own CUDA context (the device's primary context, as the CUDA
 * runtime made it) and stream, set before av_hwdevice_ctx_init as FFmpeg 5.1
 * wants for a shared context. The `pool` frames are allocated at once and
 * recycled (FFmpeg's CUDA pools grow only if the encoder holds more). REEL_EUNSUPPORTED when reel was built without
 * CUDA or b is not a CUDA backend; REEL_EDEVICE / REEL_ECODEC on CUDA or FFmpeg
 * failures (err says which). On failure *frames is NULL.
 */
reel_status reel__cuda_frames_for_backend(reel_backend *b, int width, int height, int pool, AVBufferRef **frames,
                                          reel_error *err);

#endif
