/* SPDX-License-Identifier: Apache-2.0 */
/* SigV4 against the worked examples in the Amazon S3 API reference (signature calculation examples). */
#include <string.h>

#include "sigv4.h"
#include "testutil.h"

static const reel_sigv4_creds creds = {
    "AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", NULL, "us-east-1", "s3", "20130524T000000Z"};
static const char *empty_hash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

static const char *sig_of(const char *auth) {
  const char *s = strstr(auth, "Signature=");
  return s ? s + 10 : "";
}

static void test_get_object(void **state) {
  (void)state;
  reel_sigv4_header h[] = {{"host", "examplebucket.s3.amazonaws.com"},
                           {"range", "bytes=0-9"},
                           {"x-amz-content-sha256", empty_hash},
                           {"x-amz-date", "20130524T000000Z"}};
  char auth[512];
  assert_int_equal(reel_sigv4_authorization(&creds, "GET", "/test.txt", NULL, 0, h, 4, empty_hash, auth, sizeof auth),
                   REEL_OK);
  assert_string_equal(sig_of(auth), "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
  assert_non_null(strstr(auth, "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,"));
  assert_non_null(strstr(auth, "Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,"));
}

static void test_put_object(void **state) {
  (void)state;
  char hash[65];
  const char *body = "Welcome to Amazon S3.";
  reel_sigv4_sha256_hex(body, strlen(body), hash);
  assert_string_equal(hash, "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072");
  /* Unsorted on purpose: the signer sorts. */
  reel_sigv4_header h[] = {{"x-amz-storage-class", "REDUCED_REDUNDANCY"},
                           {"host", "examplebucket.s3.amazonaws.com"},
                           {"date", "Fri, 24 May 2013 00:00:00 GMT"},
                           {"x-amz-date", "20130524T000000Z"},
                           {"x-amz-content-sha256", hash}};
  char auth[512];
  assert_int_equal(reel_sigv4_authorization(&creds, "PUT", "/test$file.text", NULL, 0, h, 5, hash, auth, sizeof auth),
                   REEL_OK);
  assert_string_equal(sig_of(auth), "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd");
}

static void test_query_params(void **state) {
  (void)state;
  reel_sigv4_header h[] = {{"host", "examplebucket.s3.amazonaws.com"},
                           {"x-amz-content-sha256", empty_hash},
                           {"x-amz-date", "20130524T000000Z"}};
  char auth[512];
  reel_sigv4_param lifecycle[] = {{"lifecycle", ""}};
  assert_int_equal(reel_sigv4_authorization(&creds, "GET", "/", lifecycle, 1, h, 3, empty_hash, auth, sizeof auth),
                   REEL_OK);
  assert_string_equal(sig_of(auth), "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543");
  reel_sigv4_param list[] = {{"prefix", "J"}, {"max-keys", "2"}}; /* sorted by the signer */
  assert_int_equal(reel_sigv4_authorization(&creds, "GET", "/", list, 2, h, 3, empty_hash, auth, sizeof auth), REEL_OK);
  assert_string_equal(sig_of(auth), "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7");
}

static void test_presign(void **state) {
  (void)state;
  char q[1024];
  assert_int_equal(
      reel_sigv4_presign_query(&creds, "GET", "examplebucket.s3.amazonaws.com", "/test.txt", 86400, q, sizeof q),
      REEL_OK);
  assert_non_null(strstr(q, "X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404"));
  assert_int_equal(reel_sigv4_presign_query(&creds, "GET", "h", "/k", 0, q, sizeof q), REEL_ERANGE);
  assert_int_equal(reel_sigv4_presign_query(&creds, "GET", "h", "/k", 60, q, 10), REEL_ELIMIT);
}

static void test_uri_encode(void **state) {
  (void)state;
  char out[64];
  assert_int_equal(reel_sigv4_uri_encode("a b/c~d+é", 1, out, sizeof out), strlen("a%20b/c~d%2B%C3%A9"));
  assert_string_equal(out, "a%20b/c~d%2B%C3%A9");
  reel_sigv4_uri_encode("a/b", 0, out, sizeof out);
  assert_string_equal(out, "a%2Fb");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_get_object), cmocka_unit_test(test_put_object), cmocka_unit_test(test_query_params),
      cmocka_unit_test(test_presign),    cmocka_unit_test(test_uri_encode),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
