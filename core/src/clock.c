/* SPDX-License-Identifier: Apache-2.0 */
/* Monotonic and wall clocks. See reel/clock.h. */
#include "reel/clock.h"

#include <errno.h>
#include <stdio.h>
#include <time.h>

int64_t reel_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int64_t reel_now_ms(void) { return reel_now_ns() / 1000000LL; }

int64_t reel_wall_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000LL + ts.tv_nsec / 1000000LL;
}

const char *reel_format_rfc3339(int64_t wall_ms, char *buf, size_t size) {
  time_t secs = (time_t)(wall_ms / 1000);
  struct tm tm;
  gmtime_r(&secs, &tm);
  snprintf(buf, size, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
           tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(wall_ms % 1000));
  return buf;
}

void reel_sleep_ms(int64_t ms) {
  if (ms <= 0) return;
  struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}
