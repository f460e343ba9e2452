/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Still images and animated previews from RGB frames, through FFmpeg's
 * encoders, written through a sink (so file:// gets the atomic temp+rename,
 * s3:// works too). Used for poster frames, contact sheets and previews.
 *
 * Stills: PNG or JPEG. Animations: a small looping WebP (lossy, libwebp) or GIF
 * (one 256-colour palette for the whole animation, median cut over every frame,
 * ordered dithering) made from a clip's frames as they are produced: frames are
 * picked at the preview's rate and scaled down with an area filter.
 */
#ifndef REEL_IMAGE_H
#define REEL_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#include "reel/log.h"
#include "reel/sink.h"
#include "reel/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { REEL_IMAGE_PNG = 0, REEL_IMAGE_JPEG = 1 } reel_image_format;

/* Picks the format from a file name's extension (.png, .jpg, .jpeg); REEL_EINVAL naming `field` otherwise. */
reel_status reel_image_format_from_name(const char *name, const char *field, reel_image_format *out /* OUT: */,
                                        reel_error *err);

/*
 * Encodes width x height RGB24 pixels (stride bytes per row) and writes the image
 * to `url` (a path or sink URL). `quality` is JPEG quality 1..100 (0 = 90); PNG
 * ignores it. Errors name `url` or the dimension at fault.
 */
reel_status reel_image_write(const char *url, reel_image_format format, const uint8_t *rgb, int width, int height,
                             size_t stride, int quality, const reel_logger *log, reel_error *err);

/*
 * As reel_image_write with sink options (credentials, logger; NULL = defaults;
 * the content type is the image's) and the committed object's URL, size and
 * hash in *res (may be NULL).
 */
reel_status reel_image_write_to(const char *url, const reel_sink_options *sink_opts, reel_image_format format,
                                const uint8_t *rgb, int width, int height, size_t stride, int quality,
                                reel_sink_result *res /* OUT: */, reel_error *err);

/* ---- animated previews ---- */

typedef enum { REEL_ANIM_WEBP = 0, REEL_ANIM_GIF = 1 } reel_anim_format;

/* Picks the format from a file name's extension (.webp, .gif); REEL_EINVAL naming `field` otherwise. */
reel_status reel_anim_format_from_name(const char *name, const char *field, reel_anim_format *out /* OUT: */,
                                       reel_error *err);

typedef struct reel_anim_options {
  int width, height;        /* size of the frames pushed, 2..16384 */
  int fps_num, fps_den;     /* their rate, each 1..1000000 */
  int out_width;            /* preview width, 16..1920 and at most width; 0 = min(320, width) */
  int out_fps;              /* preview rate, 1..30 (the source's when it is lower); 0 = 6 */
  int max_frames;           /* preview frames kept, 1..1000 (later frames are left out); 0 = 150 */
  int quality;              /* WebP quality 1..100; 0 = 75; GIF ignores it */
  const reel_sink_options *sink_opts; /* for the output; NULL = defaults */
  const reel_logger *log;             /* may be NULL */
} reel_anim_options;

typedef struct reel_anim reel_anim;

/*
 * Starts an animated preview to `url` (format from its extension). The
 * output is opened now, so a bad URL fails here, but written only by
 * reel_anim_finish. Errors name "preview_anim" for the URL and the option at
 * fault otherwise. On failure *out is NULL.
 */
reel_status reel_anim_open(const char *url, const reel_anim_options *opts, reel_anim **out /* OUT: */,
                           reel_error *err);

/*
 * Offers the next source frame (width x height RGB24, stride bytes per row);
 * it becomes a preview frame when the preview's clock has reached it.
 */
reel_status reel_anim_push_rgb(reel_anim *a, const uint8_t *rgb, size_t stride, reel_error *err);

/* Encodes the preview and commits it; *res (may be NULL) describes the object. Needs one frame at least. */
reel_status reel_anim_finish(reel_anim *a, reel_sink_result *res /* OUT: */, reel_error *err);

/*
 * Nonzero when the next frame offered would be taken; a caller that has to
 * prepare frames (download them from a GPU) calls reel_anim_skip() for the others.
 */
int reel_anim_wants_next(const reel_anim *a);
/* Counts the next source frame as offered without giving it (only when reel_anim_wants_next() is 0). */
void reel_anim_skip(reel_anim *a);

/* Preview frames taken so far. */
int reel_anim_frames(const reel_anim *a);

/* Frees the preview, aborting its output unless it was finished; accepts NULL and NULL *a. */
void reel_anim_destroy(reel_anim **a);

#ifdef __cplusplus
}
#endif
#endif
