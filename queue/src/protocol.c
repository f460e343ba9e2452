/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Frame codec of the queue protocol: strict validation of every part of a message
 * from outside, and the ERROR header both ends use. See reel/protocol.h and
 * docs/protocol.md.
 */
#include "reel/protocol.h"

#include <stdio.h>
#include <string.h>

static const char *const command_names[] = {"UNKNOWN",
#define REEL__CMD_NAME(name) #name,
                                            REEL_PROTO_COMMAND_MAP(REEL__CMD_NAME)
#undef REEL__CMD_NAME
};

const char *const reel_job_state_names[] = {"queued", "running", "succeeded", "failed", "canceled", "expired", NULL};

int reel_job_state_terminal(reel_job_state s) { return s >= REEL_JOB_SUCCEEDED && s <= REEL_JOB_EXPIRED; }

const char *reel_proto_command_name(reel_proto_command cmd) {
  if ((int)cmd <= 0 || cmd >= REEL_CMD_COUNT) return "UNKNOWN";
  return command_names[cmd];
}

reel_proto_command reel_proto_command_lookup(const char *name, size_t len) {
  for (int i = 1; i < REEL_CMD_COUNT; i++)
    if (strlen(command_names[i]) == len && memcmp(command_names[i], name, len) == 0) return (reel_proto_command)i;
  return REEL_CMD_UNKNOWN;
}

void reel_msg_init(reel_msg *msg) { memset(msg, 0, sizeof *msg); }

void reel_msg_fini(reel_msg *msg) {
  if (!msg) return;
  if (msg->header) json_decref(msg->header);
  reel_msg_init(msg);
}

/* Renders up to 16 bytes of untrusted data for a message, escaping non-printables. */
static void render_bytes(const void *data, size_t n, char *buf, size_t size) {
  const unsigned char *p = data;
  size_t o = 0;
  for (size_t i = 0; i < n && i < 16 && o + 5 < size; i++) {
    if (p[i] >= 0x20 && p[i] < 0x7f && p[i] != '"' && p[i] != '\\')
      buf[o++] = (char)p[i];
    else
      o += (size_t)snprintf(buf + o, size - o, "\\x%02x", p[i]);
  }
  if (n > 16 && o + 4 < size) {
    memcpy(buf + o, "...", 3);
    o += 3;
  }
  buf[o] = '\0';
}

reel_status reel_proto_decode(const reel_frame *frames, size_t nframes, const reel_proto_limits *limits, reel_msg *msg,
                              reel_error *err) {
  size_t max_header = limits && limits->max_header_bytes ? limits->max_header_bytes : REEL_PROTO_DEFAULT_MAX_HEADER;
  size_t max_payload = limits && limits->max_payload_bytes ? limits->max_payload_bytes : REEL_PROTO_DEFAULT_MAX_PAYLOAD;
  char shown[96];
  reel_msg_fini(msg);
  if (nframes < 3 || nframes > 4)
    return reel_error_set(err, REEL_EPROTO, "frames",
                          "a message has 3 or 4 frames (protocol, command, header, "
                          "optional payload), got %zu",
                          nframes);
  /* Frame 0: "reel/" then a decimal version. */
  const char *p = frames[0].data;
  size_t n = frames[0].size;
  if (n < 5 || memcmp(p, "reel/", 5) != 0) {
    render_bytes(p, n, shown, sizeof shown);
    return reel_error_set(err, REEL_EPROTO, "protocol", "frame 0 must be \"%s\", got \"%s\"", REEL_PROTO_ID, shown);
  }
  if (n != REEL_PROTO_ID_LEN || p[5] != '0' + REEL_PROTO_VERSION) {
    render_bytes(p + 5, n - 5, shown, sizeof shown);
    return reel_error_set(err, REEL_EPROTO, "version",
                          "protocol version \"%s\" is not supported (this broker speaks %d)", shown,
                          REEL_PROTO_VERSION);
  }
  /* Frame 1: command name. */
  p = frames[1].data;
  n = frames[1].size;
  if (n < 1 || n > REEL_PROTO_COMMAND_MAX)
    return reel_error_set(err, REEL_EPROTO, "command", "must be 1..%d bytes, got %zu", REEL_PROTO_COMMAND_MAX, n);
  for (size_t i = 0; i < n; i++) {
    if (!((p[i] >= 'A' && p[i] <= 'Z') || p[i] == '_')) {
      render_bytes(p, n, shown, sizeof shown);
      return reel_error_set(err, REEL_EPROTO, "command", "must be upper-case letters and '_', got \"%s\"", shown);
    }
  }
  memcpy(msg->command, p, n);
  msg->command[n] = '\0';
  /* Frame 2: header. */
  if (frames[2].size > max_header)
    return reel_error_set(err, REEL_ELIMIT, "header", "is %zu bytes, limit %zu", frames[2].size, max_header);
  if (frames[2].size == 0) return reel_error_set(err, REEL_EFORMAT, "header", "must be a JSON object, got 0 bytes");
  json_t *h = NULL;
  reel_status st = reel_json_parse(frames[2].data, frames[2].size, "header", &h, err);
  if (st) return st;
  if (!json_is_object(h)) {
    json_decref(h);
    return reel_error_set(err, REEL_EFORMAT, "header", "must be a JSON object");
  }
  msg->header = h;
  /* Frame 3: payload. */
  if (nframes == 4) {
    if (frames[3].size > max_payload)
      return reel_error_set(err, REEL_ELIMIT, "payload", "is %zu bytes, limit %zu", frames[3].size, max_payload);
    msg->payload = frames[3].data;
    msg->payload_size = frames[3].size;
    msg->has_payload = 1;
  }
  msg->cmd = reel_proto_command_lookup(msg->command, n);
  if (msg->cmd == REEL_CMD_UNKNOWN)
    return reel_error_set(err, REEL_EUNSUPPORTED, "command", "unknown command \"%s\"", msg->command);
  return REEL_OK;
}

char *reel_proto_header_dump(const json_t *header, size_t *len) {
  char *s = json_dumps(header, JSON_COMPACT);
  if (s && len) *len = strlen(s);
  return s;
}

json_t *reel_proto_error_header(const json_t *req, const reel_error *err) {
  reel_status code = err && err->code ? err->code : REEL_EINTERNAL;
  json_t *h = json_object();
  if (!h) return NULL;
  int bad = 0;
  if (req) bad |= json_object_set(h, "req", (json_t *)req);
  bad |= json_object_set_new(h, "code", json_string(reel_status_name(code)));
  bad |= json_object_set_new(h, "status", json_integer(code));
  bad |= json_object_set_new(h, "field", json_string(err ? err->field : ""));
  bad |= json_object_set_new(h, "message", json_string(err && err->msg[0] ? err->msg : reel_strerror(code)));
  if (err && strcmp(err->field, "version") == 0) {
    json_t *v = json_array();
    bad |= !v || json_array_append_new(v, json_integer(REEL_PROTO_VERSION));
    bad |= json_object_set_new(h, "versions", v);
  }
  if (bad) {
    json_decref(h);
    return NULL;
  }
  return h;
}

reel_status reel_proto_error_from_header(const json_t *header, reel_error *err) {
  reel_status code = REEL_EPROTO;
  const char *name = json_string_value(json_object_get(header, "code"));
  if (!name || reel_status_from_name(name, &code) != REEL_OK || code == REEL_OK) {
    json_t *s = json_object_get(header, "status");
    code = REEL_EPROTO;
    if (json_is_integer(s) && json_integer_value(s) < 0 && json_integer_value(s) > -1000) {
      reel_status c = (reel_status)json_integer_value(s);
      if (strcmp(reel_status_name(c), "UNKNOWN") != 0) code = c;
    }
  }
  const char *field = json_string_value(json_object_get(header, "field"));
  const char *message = json_string_value(json_object_get(header, "message"));
  reel_error_reset(err, code, field ? field : "", "%s", message ? message : reel_strerror(code));
  return code;
}

reel_status reel_proto_get_req(const json_t *header, const json_t **req, reel_error *err) {
  *req = NULL;
  json_t *r = json_object_get(header, "req");
  if (!r || json_is_null(r)) return REEL_OK;
  if (json_is_integer(r) || (json_is_string(r) && json_string_length(r) <= REEL_PROTO_REQ_MAX)) {
    *req = r;
    return REEL_OK;
  }
  return reel_error_set(err, REEL_EINVAL, "req", "must be an integer or a string of at most %d bytes",
                        REEL_PROTO_REQ_MAX);
}

int reel_proto_is_token(const char *s, size_t max) {
  if (!s) return 0;
  size_t n = 0;
  for (const unsigned char *p = (const unsigned char *)s; *p; p++, n++)
    if (*p < 0x21 || *p > 0x7e || n >= max) return 0;
  return n > 0;
}

reel_status reel_proto_decode_submit(const json_t *header, const reel_job_limits *limits, reel_jobspec *spec,
                                     reel_error *err) {
  json_t *job = json_object_get(header, "job");
  if (!job || json_is_null(job)) return reel_error_set(err, REEL_EINVAL, "job", "required field is missing");
  if (!json_is_object(job)) return reel_error_set(err, REEL_EINVAL, "job", "must be a JSON object (a job spec)");
  return reel_jobspec_from_json(job, "job", limits, spec, err);
}
