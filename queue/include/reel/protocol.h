/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The reel queue wire protocol (docs/protocol.md): frame codec and message names.
 *
 * A message is 3 or 4 ZeroMQ frames: the protocol id "reel/1", a command name, a
 * JSON object header and an optional binary payload. This header knows nothing of
 * ZeroMQ: the decoder takes an array of (pointer, length) frames, so that the broker,
 * the client library, the worker connector and the fuzz target share one strict
 * validator. Every rejection names the field ("protocol", "version", "command",
 * "header", "payload", "frames") and the limit in a reel_error.
 */
#ifndef REEL_PROTOCOL_H
#define REEL_PROTOCOL_H

#include <stddef.h>
#include <stdint.h>

#include "reel/jobspec.h"
#include "reel/json.h"
#include "reel/status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define REEL_PROTO_ID                  "reel/1"
#define REEL_PROTO_ID_LEN              6
#define REEL_PROTO_VERSION             1
#define REEL_PROTO_COMMAND_MAX         16
#define REEL_PROTO_DEFAULT_MAX_HEADER  65536
#define REEL_PROTO_DEFAULT_MAX_PAYLOAD 1048576
/* Maximum bytes of a "req" string, of worker and tenant names, and of a job id. */
#define REEL_PROTO_REQ_MAX    64
#define REEL_PROTO_NAME_MAX   64
#define REEL_PROTO_JOB_ID_LEN 18

/* X(NAME). Commands of both directions; the broker checks which role may send which. */
#define REEL_PROTO_COMMAND_MAP(X) \
  X(PING)                         \
  X(PONG)                         \
  X(SUBMIT)                       \
  X(ACCEPTED)                     \
  X(STATUS)                       \
  X(FOLLOW)                       \
  X(CANCEL)                       \
  X(LIST)                         \
  X(JOB)                          \
  X(JOBS)                         \
  X(WORKERS)                      \
  X(STATS)                        \
  X(EVENT)                        \
  X(ERROR)                        \
  X(READY)                        \
  X(WELCOME)                      \
  X(HEARTBEAT)                    \
  X(PROGRESS)                     \
  X(RESULT)                       \
  X(ACK)                          \
  X(CREDIT)                       \
  X(BYE)                          \
  X(DISCONNECT)

typedef enum reel_proto_command {
  REEL_CMD_UNKNOWN = 0,
#define REEL__CMD_ENUM(name) REEL_CMD_##name,
  REEL_PROTO_COMMAND_MAP(REEL__CMD_ENUM)
#undef REEL__CMD_ENUM
      REEL_CMD_COUNT
} reel_proto_command;

/* Name of a command ("SUBMIT"); "UNKNOWN" for out-of-range values. Never NULL. */
const char *reel_proto_command_name(reel_proto_command cmd);
/* Looks a name up (`len` bytes, need not be NUL-terminated); REEL_CMD_UNKNOWN if not a known command. */
reel_proto_command reel_proto_command_lookup(const char *name, size_t len);

/* One frame as bytes; borrowed. */
typedef struct reel_frame {
  const void *data;
  size_t size;
} reel_frame;

typedef struct reel_proto_limits {
  size_t max_header_bytes;  /* 0 = REEL_PROTO_DEFAULT_MAX_HEADER */
  size_t max_payload_bytes; /* 0 = REEL_PROTO_DEFAULT_MAX_PAYLOAD */
} reel_proto_limits;

/* A decoded message. */
typedef struct reel_msg {
  reel_proto_command cmd;                   /* REEL_CMD_UNKNOWN when the name is well-formed but unknown */
  char command[REEL_PROTO_COMMAND_MAX + 1]; /* the name as received (NUL-terminated) */
  json_t *header;                           /* owned JSON object; NULL until parsed */
  const void *payload;                      /* borrowed from the frames; NULL when absent */
  size_t payload_size;
  int has_payload;
} reel_msg;

/* Zeroes a message. Cannot fail. */
void reel_msg_init(reel_msg *msg);
/* Releases the header and re-inits. Accepts NULL. */
void reel_msg_fini(reel_msg *msg);

/*
 * Decodes and validates frames, in this order: frame count (3..4), protocol id,
 * version, command syntax, header size, header JSON (an object), payload size,
 * known command. On any failure returns the error (EPROTO, ELIMIT, EFORMAT,
 * EUNSUPPORTED) with `err->field` naming the part; when the header was parsed
 * before the failure (only for an unknown command) msg->header is kept so that
 * the reply can echo its "req". The caller always calls reel_msg_fini(msg).
 */
reel_status reel_proto_decode(const reel_frame *frames, size_t nframes, const reel_proto_limits *limits,
                              reel_msg *msg /* OUT: */, reel_error *err);

/*
 * Serialises a header object compactly into a new heap string (free with free(),
 * it comes from jansson). Returns NULL on allocation failure.
 */
char *reel_proto_header_dump(const json_t *header, size_t *len /* OUT: */);

/*
 * Builds the header of an ERROR reply from an error context: {"code", "status",
 * "field", "message"} plus "req" copied from `req` when not NULL. For a version
 * error adds "versions":[1]. NULL on allocation failure.
 */
json_t *reel_proto_error_header(const json_t *req, const reel_error *err);

/*
 * Reads an ERROR header back into an error context (code from "code", falling
 * back to "status"; unknown codes become EPROTO). Returns the code.
 */
reel_status reel_proto_error_from_header(const json_t *header, reel_error *err);

/*
 * Validates the "req" member of a request header: absent, an integer, or a string
 * of at most REEL_PROTO_REQ_MAX bytes. On success *req is borrowed (NULL if absent).
 */
reel_status reel_proto_get_req(const json_t *header, const json_t **req /* OUT: */, reel_error *err);

/* Nonzero when s (NUL-terminated) is 1..max bytes of printable ASCII without spaces. */
int reel_proto_is_token(const char *s, size_t max);

/* Job states, in the order of reel_job_state_names. */
typedef enum reel_job_state {
  REEL_JOB_QUEUED = 0,
  REEL_JOB_RUNNING,
  REEL_JOB_SUCCEEDED,
  REEL_JOB_FAILED,
  REEL_JOB_CANCELED,
  REEL_JOB_EXPIRED
} reel_job_state;

/* "queued", "running", ...; NULL-terminated. */
extern const char *const reel_job_state_names[];
/* Nonzero for succeeded, failed, canceled and expired. */
int reel_job_state_terminal(reel_job_state s);

/*
 * Decodes a SUBMIT header's job spec (the "job" member) with reel_jobspec_from_json
 * and the given limits: the part the fuzz target and the broker share.
 */
reel_status reel_proto_decode_submit(const json_t *header, const reel_job_limits *limits, reel_jobspec *spec /* OUT: */,
                                     reel_error *err);

#ifdef __cplusplus
}
#endif
#endif
