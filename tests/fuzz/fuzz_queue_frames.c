/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fuzz target for the queue protocol decoder: the bytes are split into frames
 * ([u16 little-endian length][bytes], repeated; a short tail is the last frame)
 * and go through reel_proto_decode() with small limits, then, for a SUBMIT, the
 * job-spec decoder reel_proto_decode_submit(). Invariants: a decode either
 * succeeds with a known command and an object header, or fails with a code and a
 * named field; the ERROR header built from any failure round-trips to the same
 * code; a decoded spec passes reel_jobspec_validate() and survives a JSON round trip.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "reel/protocol.h"

#define MAX_FRAMES 8

static void check(int cond) {
  if (!cond) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  reel_frame frames[MAX_FRAMES];
  size_t n = 0, off = 0;
  while (off < size && n < MAX_FRAMES) {
    if (size - off < 2) {
      frames[n].data = data + off;
      frames[n++].size = size - off;
      break;
    }
    size_t len = (size_t)data[off] | (size_t)data[off + 1] << 8;
    off += 2;
    if (len > size - off) len = size - off;
    frames[n].data = data + off;
    frames[n++].size = len;
    off += len;
  }
  reel_proto_limits lim = {4096, 1024};
  reel_msg msg;
  reel_msg_init(&msg);
  reel_error err;
  reel_error_clear(&err);
  reel_status st = reel_proto_decode(frames, n, &lim, &msg, &err);
  if (st == REEL_OK) {
    check(msg.cmd > REEL_CMD_UNKNOWN && msg.cmd < REEL_CMD_COUNT);
    check(json_is_object(msg.header));
    check(!msg.has_payload || msg.payload_size <= lim.max_payload_bytes);
    const json_t *req = NULL;
    reel_error rerr;
    reel_error_clear(&rerr);
    reel_proto_get_req(msg.header, &req, &rerr);
    if (msg.cmd == REEL_CMD_SUBMIT) {
      reel_jobspec spec;
      reel_jobspec_init(&spec);
      reel_error serr;
      reel_error_clear(&serr);
      if (reel_proto_decode_submit(msg.header, NULL, &spec, &serr) == REEL_OK) {
        check(reel_jobspec_validate(&spec, NULL, &serr) == REEL_OK);
        json_t *again = reel_jobspec_to_json(&spec);
        if (again) {
          reel_jobspec spec2;
          reel_jobspec_init(&spec2);
          check(reel_jobspec_from_json(again, "job", NULL, &spec2, &serr) == REEL_OK);
          check(strcmp(spec.prompt, spec2.prompt) == 0 && spec.frames == spec2.frames && spec.seed == spec2.seed);
          reel_jobspec_fini(&spec2);
          json_decref(again);
        }
      } else {
        check(serr.code != REEL_OK && serr.field[0] != '\0');
      }
      reel_jobspec_fini(&spec);
    }
  } else {
    check(err.code == st && err.field[0] != '\0');
    const json_t *req = NULL;
    if (msg.header) {
      reel_error rerr;
      reel_error_clear(&rerr);
      reel_proto_get_req(msg.header, &req, &rerr);
    }
    json_t *eh = reel_proto_error_header(req, &err);
    if (eh) {
      reel_error back;
      reel_error_clear(&back);
      check(reel_proto_error_from_header(eh, &back) == st);
      check(strcmp(back.field, err.field) == 0);
      json_decref(eh);
    }
  }
  reel_msg_fini(&msg);
  return 0;
}
