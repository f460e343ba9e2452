/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Still images from RGB frames: PNG and JPEG through FFmpeg's image encoders,
 * written through a sink (so file:// gets the atomic temp+rename, s3:// works
 * too). Used for poster frames, contact sheets and previews.
 */
#ifndef REEL_IMAGE_H
#define REEL_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#include "reel/log.h"
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

#ifdef __cplusplus
}
#endif
#endif
