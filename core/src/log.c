/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The structured logger. Records are rendered into a stack buffer and written
 * with one write(2), so concurrent threads never interleave inside a line.
 */
#include "reel/log.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "reel/clock.h"

static const char *level_names[] = {"trace", "debug", "info", "warn", "error", "off"};

void reel_logger_init(reel_logger *lg, reel_log_level level, reel_log_format format, int fd) {
  lg->level = level;
  lg->format = format;
  lg->fd = fd;
}

reel_status reel_log_level_parse(const char *s, reel_log_level *out) {
  if (!s) return REEL_EINVAL;
  for (int i = 0; i <= REEL_LOG_OFF; i++) {
    if (strcasecmp(s, level_names[i]) == 0) {
      *out = (reel_log_level)i;
      return REEL_OK;
    }
  }
  if (strcasecmp(s, "warning") == 0) {
    *out = REEL_LOG_WARN;
    return REEL_OK;
  }
  return REEL_EINVAL;
}

const char *reel_log_level_name(reel_log_level level) {
  if ((int)level < 0 || level > REEL_LOG_OFF) return "?";
  return level_names[level];
}

static const reel_logger default_logger = {REEL_LOG_WARN, REEL_LOG_TEXT, 2};

int reel_log_enabled(const reel_logger *lg, reel_log_level level) {
  if (!lg) lg = &default_logger;
  return level >= lg->level && level < REEL_LOG_OFF;
}

/* Appends with bounds; keeps *len <= size - 1. */
typedef struct {
  char *buf;
  size_t size, len;
} out_buf;

static void put_c(out_buf *o, char c) {
  if (o->len + 1 < o->size) o->buf[o->len++] = c;
}

static void put_s(out_buf *o, const char *s) {
  while (*s) put_c(o, *s++);
}

static void put_n(out_buf *o, const char *s, size_t n) {
  for (size_t i = 0; i < n; i++) put_c(o, s[i]);
}

/* JSON string body escape. */
static void put_json_esc(out_buf *o, const char *s, size_t n) {
  static const char hex[] = "0123456789abcdef";
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    switch (c) {
    case '"': put_s(o, "\\\""); break;
    case '\\': put_s(o, "\\\\"); break;
    case '\n': put_s(o, "\\n"); break;
    case '\r': put_s(o, "\\r"); break;
    case '\t': put_s(o, "\\t"); break;
    default:
      if (c < 0x20) {
        put_s(o, "\\u00");
        put_c(o, hex[c >> 4]);
        put_c(o, hex[c & 15]);
      } else {
        put_c(o, (char)c);
      }
    }
  }
}

/* logfmt value: bare if safe, else quoted with escapes. */
static void put_text_value(out_buf *o, const char *s, size_t n) {
  int bare = n > 0;
  for (size_t i = 0; i < n && bare; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c <= ' ' || c == '"' || c == '=' || c == '\\') bare = 0;
  }
  if (bare) {
    put_n(o, s, n);
  } else {
    put_c(o, '"');
    put_json_esc(o, s, n);
    put_c(o, '"');
  }
}

static int is_json_number(const char *s, size_t n) {
  if (n == 0 || n > 40) return 0;
  char tmp[48];
  memcpy(tmp, s, n);
  tmp[n] = '\0';
  /* JSON forbids leading '+', leading zeros, "inf", "nan" and hex. */
  if (tmp[0] == '+' || tmp[0] == '.') return 0;
  const char *d = tmp[0] == '-' ? tmp + 1 : tmp;
  if (!isdigit((unsigned char)d[0])) return 0;
  if (d[0] == '0' && isdigit((unsigned char)d[1])) return 0;
  for (const char *p = d; *p; p++)
    if (!(isdigit((unsigned char)*p) || *p == '.' || *p == 'e' || *p == 'E' || *p == '-' || *p == '+')) return 0;
  char *end = NULL;
  strtod(tmp, &end);
  return end && *end == '\0';
}

/* Walks "k=v k2="quoted v"" calling emit for each pair. Malformed tokens become msg text. */
typedef void (*pair_fn)(out_buf *o, reel_log_format f, const char *k, size_t kn, const char *v, size_t vn, int quoted);

static void emit_pair(out_buf *o, reel_log_format f, const char *k, size_t kn, const char *v, size_t vn, int quoted) {
  if (f == REEL_LOG_JSON) {
    put_s(o, ",\"");
    put_json_esc(o, k, kn);
    put_s(o, "\":");
    if (!quoted && (is_json_number(v, vn) || (vn == 4 && memcmp(v, "true", 4) == 0) ||
                    (vn == 5 && memcmp(v, "false", 5) == 0))) {
      put_n(o, v, vn);
    } else {
      put_c(o, '"');
      put_json_esc(o, v, vn);
      put_c(o, '"');
    }
  } else {
    put_c(o, ' ');
    put_n(o, k, kn);
    put_c(o, '=');
    put_text_value(o, v, vn);
  }
}

static void walk_fields(out_buf *o, reel_log_format f, const char *s, pair_fn fn) {
  const char *p = s;
  while (*p) {
    while (*p == ' ') p++;
    if (!*p) break;
    const char *k = p;
    while (*p && *p != '=' && *p != ' ') p++;
    size_t kn = (size_t)(p - k);
    if (*p != '=' || kn == 0) {
      /* Not a pair: keep it as a "field" named "_" so nothing is lost. */
      fn(o, f, "_", 1, k, kn, 1);
      continue;
    }
    p++; /* '=' */
    const char *v;
    size_t vn;
    int quoted = 0;
    if (*p == '"') {
      quoted = 1;
      v = ++p;
      while (*p && *p != '"') p++;
      vn = (size_t)(p - v);
      if (*p == '"') p++;
    } else {
      v = p;
      while (*p && *p != ' ') p++;
      vn = (size_t)(p - v);
    }
    fn(o, f, k, kn, v, vn, quoted);
  }
}

size_t reel_log_render(reel_log_format format, long long wall_ms, reel_log_level level, const char *module,
                       const char *job_id, const char *msg, const char *fields, char *buf, size_t size) {
  if (!buf || size == 0) return 0;
  out_buf o = {buf, size, 0};
  char ts[40];
  reel_format_rfc3339(wall_ms, ts, sizeof ts);
  if (!msg) msg = "";
  if (format == REEL_LOG_JSON) {
    put_s(&o, "{\"ts\":\"");
    put_s(&o, ts);
    put_s(&o, "\",\"level\":\"");
    put_s(&o, reel_log_level_name(level));
    put_c(&o, '"');
    if (module) {
      put_s(&o, ",\"module\":\"");
      put_json_esc(&o, module, strlen(module));
      put_c(&o, '"');
    }
    if (job_id) {
      put_s(&o, ",\"job\":\"");
      put_json_esc(&o, job_id, strlen(job_id));
      put_c(&o, '"');
    }
    put_s(&o, ",\"msg\":\"");
    put_json_esc(&o, msg, strlen(msg));
    put_c(&o, '"');
    if (fields) walk_fields(&o, format, fields, emit_pair);
    /* Always close the object, even when truncated. */
    if (o.len + 2 > o.size) o.len = o.size >= 2 ? o.size - 2 : 0;
    put_c(&o, '}');
  } else {
    put_s(&o, "ts=");
    put_s(&o, ts);
    put_s(&o, " level=");
    put_s(&o, reel_log_level_name(level));
    if (module) {
      put_s(&o, " module=");
      put_text_value(&o, module, strlen(module));
    }
    if (job_id) {
      put_s(&o, " job=");
      put_text_value(&o, job_id, strlen(job_id));
    }
    put_s(&o, " msg=");
    put_text_value(&o, msg, strlen(msg));
    if (fields) walk_fields(&o, format, fields, emit_pair);
  }
  o.buf[o.len] = '\0';
  return o.len;
}

static void log_write(const reel_logger *lg, reel_log_level level, const char *module, const char *job_id,
                      const char *msg, const char *fields) {
  char line[4096];
  size_t n = reel_log_render(lg->format, reel_wall_ms(), level, module, job_id, msg, fields, line, sizeof line - 1);
  line[n++] = '\n';
  size_t off = 0;
  while (off < n) {
    ssize_t w = write(lg->fd, line + off, n - off);
    if (w <= 0) break;
    off += (size_t)w;
  }
}

void reel_log(const reel_logger *lg, reel_log_level level, const char *module, const char *job_id, const char *msg,
              const char *fields_fmt, ...) {
  if (!lg) lg = &default_logger;
  if (!reel_log_enabled(lg, level)) return;
  char fields[2048];
  fields[0] = '\0';
  if (fields_fmt) {
    va_list ap;
    va_start(ap, fields_fmt);
    vsnprintf(fields, sizeof fields, fields_fmt, ap);
    va_end(ap);
  }
  log_write(lg, level, module, job_id, msg, fields_fmt ? fields : NULL);
}

void reel_log_error(const reel_logger *lg, reel_log_level level, const char *module, const char *job_id,
                    const reel_error *err) {
  if (!err) return;
  reel_log(lg, level, module, job_id, err->msg[0] ? err->msg : reel_strerror(err->code), "code=%s field=\"%s\"",
           reel_status_name(err->code), err->field);
}
