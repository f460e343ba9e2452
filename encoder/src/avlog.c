/* SPDX-License-Identifier: Apache-2.0 */
/*
 * FFmpeg error text and log routing. See reel_ffmpeg_route_logs() in
 * reel/encoder.h: messages from codec and format contexts owned by reel go to
 * the owner's logger; the rest keep FFmpeg's default behaviour.
 */
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/log.h>
#include <stdio.h>
#include <string.h>

#include "av_common.h"
#include "reel/encoder.h"

reel_status reel__av_fail(reel_error *err, const char *field, int averr, const char *what) {
  char text[AV_ERROR_MAX_STRING_SIZE];
  if (av_strerror(averr, text, sizeof text) < 0) snprintf(text, sizeof text, "error %d", averr);
  reel_status st = averr == AVERROR(ENOMEM) ? REEL_ENOMEM : REEL_ECODEC;
  return reel_error_set(err, st, field, "%s: %s", what, text);
}

static const reel__av_owner *owner_of(void *avcl) {
  if (!avcl) return NULL;
  const AVClass *cls = *(const AVClass **)avcl;
  const reel__av_owner *o = NULL;
  if (cls == avcodec_get_class())
    o = ((AVCodecContext *)avcl)->opaque;
  else if (cls == avformat_get_class())
    o = ((AVFormatContext *)avcl)->opaque;
  return o && o->magic == REEL__AV_OWNER_MAGIC ? o : NULL;
}

static void route(void *avcl, int level, const char *fmt, va_list vl) {
  const reel__av_owner *o = owner_of(avcl);
  if (!o) {
    av_log_default_callback(avcl, level, fmt, vl);
    return;
  }
  reel_log_level lv = level <= AV_LOG_ERROR     ? REEL_LOG_ERROR
                      : level <= AV_LOG_WARNING ? REEL_LOG_WARN
                      : level <= AV_LOG_INFO    ? REEL_LOG_DEBUG
                                                : REEL_LOG_TRACE;
  if (o->quiet && lv > REEL_LOG_DEBUG) lv = REEL_LOG_DEBUG; /* an expected failure, reported by the caller */
  if (!reel_log_enabled(o->log, lv)) return;
  char msg[512];
  vsnprintf(msg, sizeof msg, fmt, vl);
  size_t n = strlen(msg);
  while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r' || msg[n - 1] == ' ')) msg[--n] = '\0';
  if (!n) return;
  const AVClass *cls = *(const AVClass **)avcl;
  const char *who = cls->item_name ? cls->item_name(avcl) : cls->class_name;
  reel_log(o->log, lv, o->module, o->job_id, msg, "ffmpeg=%s", who ? who : "?");
}

void reel_ffmpeg_route_logs(void) { av_log_set_callback(route); }
