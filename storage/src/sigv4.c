/* SPDX-License-Identifier: Apache-2.0 */
/*
 * SigV4 signing with OpenSSL's HMAC and SHA-256. See sigv4.h.
 */
#include "sigv4.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char hexdigits[] = "0123456789abcdef";

static void to_hex(const unsigned char *d, size_t n, char *out) {
  for (size_t i = 0; i < n; i++) {
    out[2 * i] = hexdigits[d[i] >> 4];
    out[2 * i + 1] = hexdigits[d[i] & 15];
  }
  out[2 * n] = '\0';
}

void reel_sigv4_sha256_hex(const void *data, size_t len, char out[65]) {
  unsigned char d[SHA256_DIGEST_LENGTH];
  SHA256(data, len, d);
  to_hex(d, sizeof d, out);
}

size_t reel_sigv4_uri_encode(const char *in, int keep_slash, char *out, size_t size) {
  static const char hexu[] = "0123456789ABCDEF";
  size_t n = 0;
  for (const unsigned char *p = (const unsigned char *)in; *p; p++) {
    unsigned char c = *p;
    int plain = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
                c == '.' || c == '~' || (keep_slash && c == '/');
    if (plain) {
      if (n + 1 < size) out[n] = (char)c;
      n++;
    } else {
      if (n + 3 < size) {
        out[n] = '%';
        out[n + 1] = hexu[c >> 4];
        out[n + 2] = hexu[c & 15];
      }
      n += 3;
    }
  }
  if (size) out[n < size ? n : size - 1] = '\0';
  return n;
}

static void hmac_sha256(const void *key, size_t keylen, const char *msg, unsigned char out[32]) {
  unsigned int len = 32;
  HMAC(EVP_sha256(), key, (int)keylen, (const unsigned char *)msg, strlen(msg), out, &len);
}

/* Appends to a bounded string; returns nonzero once it overflowed. */
typedef struct {
  char *buf;
  size_t size, len;
  int over;
} sbuf;

static void sb_add(sbuf *b, const char *s) {
  size_t n = strlen(s);
  if (b->len + n + 1 > b->size) {
    b->over = 1;
    return;
  }
  memcpy(b->buf + b->len, s, n + 1);
  b->len += n;
}

static void sb_enc(sbuf *b, const char *s, int keep_slash) {
  size_t need = reel_sigv4_uri_encode(s, keep_slash, NULL, 0);
  if (b->len + need + 1 > b->size) {
    b->over = 1;
    return;
  }
  reel_sigv4_uri_encode(s, keep_slash, b->buf + b->len, b->size - b->len);
  b->len += need;
}

typedef struct {
  char *k, *v; /* encoded */
} enc_param;

static int cmp_param(const void *a, const void *b) {
  const enc_param *x = a, *y = b;
  int c = strcmp(x->k, y->k);
  return c ? c : strcmp(x->v, y->v);
}

static int cmp_header(const void *a, const void *b) {
  return strcmp(((const reel_sigv4_header *)a)->name, ((const reel_sigv4_header *)b)->name);
}

/* Sorted canonical query string into b. */
static void canonical_query(sbuf *b, const reel_sigv4_param *params, int n) {
  enc_param ep[REEL_SIGV4_MAX_PARAMS];
  char store[REEL_SIGV4_MAX_PARAMS][2][1024];
  for (int i = 0; i < n; i++) {
    if (reel_sigv4_uri_encode(params[i].name, 0, store[i][0], sizeof store[i][0]) >= sizeof store[i][0] ||
        reel_sigv4_uri_encode(params[i].value, 0, store[i][1], sizeof store[i][1]) >= sizeof store[i][1]) {
      b->over = 1;
      return;
    }
    ep[i].k = store[i][0];
    ep[i].v = store[i][1];
  }
  qsort(ep, (size_t)n, sizeof ep[0], cmp_param);
  for (int i = 0; i < n; i++) {
    if (i) sb_add(b, "&");
    sb_add(b, ep[i].k);
    sb_add(b, "=");
    sb_add(b, ep[i].v);
  }
}

/* Trims and collapses inner runs of spaces, as SigV4 requires for header values. */
static void sb_header_value(sbuf *b, const char *v) {
  while (*v == ' ' || *v == '\t') v++;
  size_t n = strlen(v);
  while (n && (v[n - 1] == ' ' || v[n - 1] == '\t')) n--;
  int space = 0;
  for (size_t i = 0; i < n; i++) {
    char c = v[i] == '\t' ? ' ' : v[i];
    if (c == ' ') {
      if (space) continue;
      space = 1;
    } else {
      space = 0;
    }
    char s[2] = {c, 0};
    sb_add(b, s);
  }
}

static void scope_of(const reel_sigv4_creds *c, char *scope, size_t size) {
  snprintf(scope, size, "%.8s/%s/%s/aws4_request", c->amz_date, c->region, c->service);
}

/* Signature (hex) of the canonical request. */
static void sign(const reel_sigv4_creds *c, const char *canonical, char sig[65]) {
  char creq_hash[65], scope[256];
  reel_sigv4_sha256_hex(canonical, strlen(canonical), creq_hash);
  scope_of(c, scope, sizeof scope);
  char sts[512];
  snprintf(sts, sizeof sts, "AWS4-HMAC-SHA256\n%s\n%s\n%s", c->amz_date, scope, creq_hash);
  char kstart[300];
  snprintf(kstart, sizeof kstart, "AWS4%s", c->secret_key);
  char date[9];
  snprintf(date, sizeof date, "%.8s", c->amz_date);
  unsigned char k1[32], k2[32], k3[32], k4[32], s[32];
  hmac_sha256(kstart, strlen(kstart), date, k1);
  hmac_sha256(k1, 32, c->region, k2);
  hmac_sha256(k2, 32, c->service, k3);
  hmac_sha256(k3, 32, "aws4_request", k4);
  hmac_sha256(k4, 32, sts, s);
  to_hex(s, 32, sig);
}

reel_status reel_sigv4_authorization(const reel_sigv4_creds *c, const char *method, const char *path,
                                     const reel_sigv4_param *params, int nparams, const reel_sigv4_header *headers,
                                     int nheaders, const char *payload_hash, char *out, size_t size) {
  if (nparams > REEL_SIGV4_MAX_PARAMS || nheaders > REEL_SIGV4_MAX_HEADERS) return REEL_ELIMIT;
  reel_sigv4_header hs[REEL_SIGV4_MAX_HEADERS];
  memcpy(hs, headers, sizeof hs[0] * (size_t)nheaders);
  qsort(hs, (size_t)nheaders, sizeof hs[0], cmp_header);
  char *canon = malloc(16384);
  if (!canon) return REEL_ENOMEM;
  sbuf b = {canon, 16384, 0, 0};
  canon[0] = '\0';
  sb_add(&b, method);
  sb_add(&b, "\n");
  sb_enc(&b, path, 1);
  sb_add(&b, "\n");
  canonical_query(&b, params, nparams);
  sb_add(&b, "\n");
  char signed_headers[512];
  sbuf sh = {signed_headers, sizeof signed_headers, 0, 0};
  signed_headers[0] = '\0';
  for (int i = 0; i < nheaders; i++) {
    sb_add(&b, hs[i].name);
    sb_add(&b, ":");
    sb_header_value(&b, hs[i].value);
    sb_add(&b, "\n");
    if (i) sb_add(&sh, ";");
    sb_add(&sh, hs[i].name);
  }
  sb_add(&b, "\n");
  sb_add(&b, signed_headers);
  sb_add(&b, "\n");
  sb_add(&b, payload_hash);
  reel_status st = REEL_OK;
  if (b.over || sh.over) {
    st = REEL_ELIMIT;
  } else {
    char sig[65], scope[256];
    sign(c, canon, sig);
    scope_of(c, scope, sizeof scope);
    int n = snprintf(out, size, "AWS4-HMAC-SHA256 Credential=%s/%s, SignedHeaders=%s, Signature=%s", c->access_key,
                     scope, signed_headers, sig);
    if (n < 0 || (size_t)n >= size) st = REEL_ELIMIT;
  }
  free(canon);
  return st;
}

reel_status reel_sigv4_presign_query(const reel_sigv4_creds *c, const char *method, const char *host, const char *path,
                                     int expires, char *out, size_t size) {
  if (expires < 1 || expires > 604800) return REEL_ERANGE;
  char scope[256], cred[600], exp[16];
  scope_of(c, scope, sizeof scope);
  snprintf(cred, sizeof cred, "%s/%s", c->access_key, scope);
  snprintf(exp, sizeof exp, "%d", expires);
  reel_sigv4_param params[6];
  int n = 0;
  params[n++] = (reel_sigv4_param){"X-Amz-Algorithm", "AWS4-HMAC-SHA256"};
  params[n++] = (reel_sigv4_param){"X-Amz-Credential", cred};
  params[n++] = (reel_sigv4_param){"X-Amz-Date", c->amz_date};
  params[n++] = (reel_sigv4_param){"X-Amz-Expires", exp};
  if (c->session_token && c->session_token[0])
    params[n++] = (reel_sigv4_param){"X-Amz-Security-Token", c->session_token};
  params[n++] = (reel_sigv4_param){"X-Amz-SignedHeaders", "host"};
  char *canon = malloc(16384);
  if (!canon) return REEL_ENOMEM;
  sbuf b = {canon, 16384, 0, 0};
  canon[0] = '\0';
  sb_add(&b, method);
  sb_add(&b, "\n");
  sb_enc(&b, path, 1);
  sb_add(&b, "\n");
  size_t qstart = b.len;
  canonical_query(&b, params, n);
  size_t qend = b.len;
  sb_add(&b, "\nhost:");
  sb_add(&b, host);
  sb_add(&b, "\n\nhost\nUNSIGNED-PAYLOAD");
  reel_status st = REEL_OK;
  if (b.over) {
    st = REEL_ELIMIT;
  } else {
    char sig[65];
    sign(c, canon, sig);
    int w = snprintf(out, size, "%.*s&X-Amz-Signature=%s", (int)(qend - qstart), canon + qstart, sig);
    if (w < 0 || (size_t)w >= size) st = REEL_ELIMIT;
  }
  free(canon);
  return st;
}
