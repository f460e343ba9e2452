/* SPDX-License-Identifier: Apache-2.0 */
/*
 * SHA-256 (FIPS 180-4), incremental. Storage sinks hash every object they commit
 * so that a caller can verify what landed; keeping the hash in core means the
 * file sink needs no crypto library. Uses the x86 SHA extensions when the CPU has
 * them, portable C otherwise; both give the same digest. None of these functions
 * can fail.
 */
#ifndef REEL_SHA256_H
#define REEL_SHA256_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define REEL_SHA256_BYTES 32
#define REEL_SHA256_HEX   65 /* 64 hex digits + NUL */

typedef struct reel_sha256 {
  uint32_t h[8];     /* chaining state */
  uint64_t total;    /* bytes hashed so far */
  uint8_t block[64]; /* pending partial block */
  size_t fill;       /* bytes in block */
  int accel;         /* nonzero: use the CPU's SHA instructions (chosen at init) */
} reel_sha256;

void reel_sha256_init(reel_sha256 *c);
void reel_sha256_update(reel_sha256 *c, const void *data, size_t len);
/* Writes the digest; the context must be re-initialised before reuse. */
void reel_sha256_final(reel_sha256 *c, uint8_t out[REEL_SHA256_BYTES]);
/* One-shot digest of a buffer. */
void reel_sha256_digest(const void *data, size_t len, uint8_t out[REEL_SHA256_BYTES]);
/* Lower-case hex of a digest, NUL-terminated. Returns hex. */
char *reel_sha256_hex(const uint8_t digest[REEL_SHA256_BYTES], char hex[REEL_SHA256_HEX]);

/* Internal, for tests: compress whole blocks with one implementation. shani returns 0 when the CPU lacks it. */
void reel__sha256_blocks_portable(uint32_t h[8], const uint8_t *data, size_t nblocks);
int reel__sha256_blocks_shani(uint32_t h[8], const uint8_t *data, size_t nblocks);
int reel__sha256_have_shani(void);

#ifdef __cplusplus
}
#endif
#endif
