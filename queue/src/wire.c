/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Multipart receive/send over libzmq for the queue protocol. See wire.h.
 */
#include "wire.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int reel_wire_recv(void *sock, reel_wire_msg *m, int flags) {
  m->n = 0;
  m->total = 0;
  for (;;) {
    zmq_msg_t part;
    zmq_msg_init(&part);
    if (zmq_msg_recv(&part, sock, m->total == 0 ? flags : 0) < 0) {
      int e = errno;
      zmq_msg_close(&part);
      reel_wire_close(m);
      errno = e;
      return -1;
    }
    int more = zmq_msg_more(&part);
    if (m->n < REEL_WIRE_MAX_FRAMES) {
      m->parts[m->n++] = part; /* ownership moves; zmq_msg_t is a plain struct */
    } else {
      zmq_msg_close(&part);
    }
    m->total++;
    if (!more) return 0;
  }
}

void reel_wire_close(reel_wire_msg *m) {
  for (size_t i = 0; i < m->n; i++) zmq_msg_close(&m->parts[i]);
  m->n = 0;
  m->total = 0;
}

reel_status reel_wire_decode(reel_wire_msg *m, size_t first, const reel_proto_limits *limits, reel_msg *out,
                             reel_error *err) {
  reel_frame frames[REEL_WIRE_MAX_FRAMES];
  size_t nframes = m->total > first ? m->total - first : 0;
  size_t kept = m->n > first ? m->n - first : 0;
  for (size_t i = 0; i < kept; i++) {
    frames[i].data = zmq_msg_data(&m->parts[first + i]);
    frames[i].size = zmq_msg_size(&m->parts[first + i]);
  }
  /* The codec reads frames only when there are 3..4 of them, all of which are kept. */
  return reel_proto_decode(frames, nframes, limits, out, err);
}

int reel_wire_send_raw(void *sock, const void *rid, size_t rid_len, const char *cmd, const char *hdr, size_t hdr_len,
                       const void *payload, size_t payload_len, int flags) {
  int more = ZMQ_SNDMORE | flags;
  if (rid && zmq_send(sock, rid, rid_len, more) < 0) return -1;
  if (zmq_send(sock, REEL_PROTO_ID, REEL_PROTO_ID_LEN, more) < 0) return -1;
  if (zmq_send(sock, cmd, strlen(cmd), more) < 0) return -1;
  if (zmq_send(sock, hdr, hdr_len, payload ? more : flags) < 0) return -1;
  if (payload && zmq_send(sock, payload, payload_len, flags) < 0) return -1;
  return 0;
}

int reel_wire_send(void *sock, const void *rid, size_t rid_len, reel_proto_command cmd, const json_t *header,
                   int flags) {
  size_t len = 0;
  char *hdr = reel_proto_header_dump(header, &len);
  if (!hdr) {
    errno = ENOMEM;
    return -1;
  }
  int rc = reel_wire_send_raw(sock, rid, rid_len, reel_proto_command_name(cmd), hdr, len, NULL, 0, flags);
  int e = errno;
  free(hdr);
  errno = e;
  return rc;
}
