/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Internal to storage/: the open function every scheme provides, listed in the
 * scheme table of sink.c. `url` is the caller's string as given (for messages
 * and parsing); on success the function sets ops, log and url of the embedded
 * struct reel_sink and returns it in *out.
 */
#ifndef REEL_SINK_IMPL_H
#define REEL_SINK_IMPL_H

#include "reel/sink.h"

typedef reel_status (*reel__sink_open_fn)(const char *url, const reel_sink_options *opts, reel_sink **out,
                                          reel_error *err);

/* file:// URLs and plain paths (file_sink.c). */
reel_status reel__file_sink_open(const char *url, const reel_sink_options *opts, reel_sink **out, reel_error *err);

/* s3:// URLs (s3_sink.c; only when built with REEL_WITH_S3). */
reel_status reel__s3_sink_open(const char *url, const reel_sink_options *opts, reel_sink **out, reel_error *err);

#endif
