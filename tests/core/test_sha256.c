/* SPDX-License-Identifier: Apache-2.0 */
/* SHA-256 against the FIPS 180-2 / NIST example vectors, incremental updates, and both implementations. */
#include <stdlib.h>
#include <string.h>

#include "reel/sha256.h"
#include "testutil.h"

static void hex_of(const void *data, size_t len, char hex[REEL_SHA256_HEX]) {
  uint8_t d[REEL_SHA256_BYTES];
  reel_sha256_digest(data, len, d);
  reel_sha256_hex(d, hex);
}

static void test_vectors(void **state) {
  (void)state;
  char hex[REEL_SHA256_HEX];
  hex_of("", 0, hex);
  assert_string_equal(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  hex_of("abc", 3, hex);
  assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  const char *m2 = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
  hex_of(m2, strlen(m2), hex);
  assert_string_equal(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  const char *m3 =
      "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrst"
      "nopqrstu";
  hex_of(m3, strlen(m3), hex);
  assert_string_equal(hex, "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1");
}

static void test_million_a_incremental(void **state) {
  (void)state;
  /* One million 'a', fed in uneven pieces so every buffering branch runs. */
  char chunk[997];
  memset(chunk, 'a', sizeof chunk);
  reel_sha256 c;
  reel_sha256_init(&c);
  size_t left = 1000000, step = 1;
  while (left) {
    size_t n = step < left ? step : left;
    if (n > sizeof chunk) n = sizeof chunk;
    reel_sha256_update(&c, chunk, n);
    left -= n;
    step = step * 3 + 1;
    if (step > sizeof chunk) step = 1;
  }
  uint8_t d[REEL_SHA256_BYTES];
  char hex[REEL_SHA256_HEX];
  reel_sha256_final(&c, d);
  assert_string_equal(reel_sha256_hex(d, hex), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

static void test_padding_boundaries(void **state) {
  (void)state;
  /* Lengths around the 55/56/64-byte padding edges: incremental equals one-shot. */
  uint8_t buf[200];
  for (size_t i = 0; i < sizeof buf; i++) buf[i] = (uint8_t)(i * 37 + 11);
  for (size_t len = 50; len < 140; len++) {
    uint8_t a[32], b[32];
    reel_sha256_digest(buf, len, a);
    reel_sha256 c;
    reel_sha256_init(&c);
    reel_sha256_update(&c, buf, len / 3);
    reel_sha256_update(&c, buf + len / 3, len - len / 3);
    reel_sha256_final(&c, b);
    assert_memory_equal(a, b, 32);
  }
  /* 64 bytes of zero: a published value. */
  memset(buf, 0, 64);
  char hex[REEL_SHA256_HEX];
  hex_of(buf, 64, hex);
  assert_string_equal(hex, "f5a5fd42d16a20302798ef6ed309979b43003d2320d9f0e8ea9831a92759fb4b");
}

static void test_shani_matches_portable(void **state) {
  (void)state;
  if (!reel__sha256_have_shani()) {
    skip();
    return;
  }
  enum { N = 257 };
  uint8_t *data = malloc(N * 64);
  uint32_t x = 12345;
  for (size_t i = 0; i < N * 64; i++) {
    x = x * 1103515245u + 12345u;
    data[i] = (uint8_t)(x >> 16);
  }
  uint32_t h1[8] = {1, 2, 3, 4, 5, 6, 7, 8}, h2[8] = {1, 2, 3, 4, 5, 6, 7, 8};
  reel__sha256_blocks_portable(h1, data, N);
  assert_int_equal(reel__sha256_blocks_shani(h2, data, N), 1);
  assert_memory_equal(h1, h2, sizeof h1);
  free(data);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_vectors),
      cmocka_unit_test(test_million_a_incremental),
      cmocka_unit_test(test_padding_boundaries),
      cmocka_unit_test(test_shani_matches_portable),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
