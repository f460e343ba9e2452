/* SPDX-License-Identifier: Apache-2.0 */
/*
 * CURVE key pairs for queue authentication: generation (`reel keygen`), and the
 * key files the broker, clients and workers read (docs/protocol.md, "Security").
 *
 * A key file is text: `public = "<40 Z85 characters>"` and, in a secret key file
 * (NAME.key, mode 0600), `secret = "<40 Z85 characters>"`; '#' starts a comment.
 * A public key file (NAME.pub) holds only the public line.
 */
#ifndef REEL_KEYS_H
#define REEL_KEYS_H

#include "reel/status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define REEL_KEY_Z85_LEN 40

typedef struct reel_keypair {
  char public_key[REEL_KEY_Z85_LEN + 1]; /* Z85 */
  char secret_key[REEL_KEY_Z85_LEN + 1]; /* Z85; empty when only the public key is known */
} reel_keypair;

/* Generates a new key pair. EUNSUPPORTED when libzmq was built without CURVE. */
reel_status reel_keys_generate(reel_keypair *kp /* OUT: */, reel_error *err);

/*
 * Writes BASE.pub (public line, 0644) and BASE.key (both lines, 0600). Refuses to
 * overwrite existing files (EEXIST) unless `force`.
 */
reel_status reel_keys_write(const char *base, const reel_keypair *kp, int force, reel_error *err);

/*
 * Reads a key file (.pub or .key). The secret is required when `need_secret`.
 * Each key must be 40 valid Z85 characters (EFORMAT naming the file and line).
 */
reel_status reel_keys_load(const char *path, int need_secret, reel_keypair *kp /* OUT: */, reel_error *err);

/* Nonzero when s is 40 characters that decode as Z85 to 32 bytes. */
int reel_keys_valid_z85(const char *s);

/* Decodes a Z85 key into 32 bytes. EFORMAT when invalid. */
reel_status reel_keys_decode(const char *z85, unsigned char out[32]);

#ifdef __cplusplus
}
#endif
#endif
