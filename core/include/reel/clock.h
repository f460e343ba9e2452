/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Time: a monotonic clock for durations and deadlines, and wall-clock time for
 * records that leave the process (journal entries, events, logs).
 */
#ifndef REEL_CLOCK_H
#define REEL_CLOCK_H

#include <stdint.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Monotonic nanoseconds since an arbitrary point (CLOCK_MONOTONIC). Cannot fail. */
int64_t reel_now_ns(void);
/* Monotonic milliseconds. */
int64_t reel_now_ms(void);
/* Wall-clock milliseconds since the Unix epoch (CLOCK_REALTIME). */
int64_t reel_wall_ms(void);
/* Formats wall-clock ms as RFC 3339 UTC with milliseconds ("2026-11-29T12:00:00.123Z"). Returns buf. */
const char *reel_format_rfc3339(int64_t wall_ms, char *buf, size_t size);
/* Sleeps for `ms` milliseconds, resuming after signals. */
void reel_sleep_ms(int64_t ms);

#ifdef __cplusplus
}
#endif
#endif
