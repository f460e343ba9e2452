/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ZeroMQ side of the protocol, shared by the broker, the client library and the
 * worker connector: receive a whole multipart message, decode it with the codec,
 * send one. Internal to queue/ (it includes zmq.h, which public headers must not).
 */
#ifndef REEL_QUEUE_WIRE_H
#define REEL_QUEUE_WIRE_H

#include <stddef.h>
#include <zmq.h>

#include "reel/protocol.h"

/* Frames kept of one received message; extra frames are counted and dropped. */
#define REEL_WIRE_MAX_FRAMES 8

typedef struct reel_wire_msg {
  zmq_msg_t parts[REEL_WIRE_MAX_FRAMES];
  size_t n;     /* frames kept (initialised zmq_msg_t's) */
  size_t total; /* frames in the message */
} reel_wire_msg;

/*
 * Receives all frames of one message (flags: 0 or ZMQ_DONTWAIT). Returns 0, or -1
 * with errno set (EAGAIN when nothing is waiting, EINTR, ETERM). On -1 nothing
 * needs closing; on 0 call reel_wire_close().
 */
int reel_wire_recv(void *sock, reel_wire_msg *m, int flags);
void reel_wire_close(reel_wire_msg *m);

/* Decodes frames [first, total) of a received message (first = 1 on a ROUTER to skip the routing id). */
reel_status reel_wire_decode(reel_wire_msg *m, size_t first, const reel_proto_limits *limits, reel_msg *out,
                             reel_error *err);

/*
 * Sends one message: optional routing id, "reel/1", the command, the header bytes
 * and an optional payload. Returns 0 or -1 with errno (EHOSTUNREACH for a gone
 * ROUTER peer, EAGAIN at the high-water mark with ZMQ_DONTWAIT).
 */
int reel_wire_send_raw(void *sock, const void *rid, size_t rid_len, const char *cmd, const char *hdr, size_t hdr_len,
                       const void *payload, size_t payload_len, int flags);

/* As reel_wire_send_raw with a JSON header. -1 with errno ENOMEM when the header cannot be serialised. */
int reel_wire_send(void *sock, const void *rid, size_t rid_len, reel_proto_command cmd, const json_t *header,
                   int flags);

#endif
