/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The s3:// sink: streams an object into S3-compatible storage while it is being
 * written. Small objects go up in one PutObject at close; larger ones as a
 * multipart upload whose parts (part_size bytes, the last one smaller) are sent
 * by up to max_parts_in_flight threads while the caller keeps writing; write()
 * blocks when every part buffer is in flight (backpressure). Every request is
 * signed with SigV4 (sigv4.c), carries Content-MD5 and the payload's SHA-256,
 * and is retried with exponential backoff and jitter on network errors,
 * timeouts, 5xx, 408 and 429. The part ETags the server returns are checked
 * against our MD5s. A failed upload is aborted (AbortMultipartUpload), so no
 * partial object ever becomes visible. With a spool directory every byte is also
 * teed to a local file, and an upload that fails for any reason leaves the clip
 * in the spool (reel_s3_flush_spool() sends it later): an encoded clip is never
 * lost, even when the server forgot an upload across a restart.
 */
#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "reel/alloc.h"
#include "reel/clock.h"
#include "reel/json.h"
#include "reel/s3.h"
#include "reel/sha256.h"
#include "sigv4.h"
#include "sink_impl.h"

#define S3_MIN_PART       ((size_t)5 << 20)
#define S3_DEFAULT_PART   ((size_t)8 << 20)
#define S3_MAX_PARTS      10000
#define S3_MAX_BODY_REPLY (1 << 20)

/* ---- configuration ----------------------------------------------------------------------- */

static const char *env_first(const char *a, const char *b) {
  const char *v = getenv(a);
  if ((!v || !v[0]) && b) v = getenv(b);
  return v && v[0] ? v : NULL;
}

static reel_status copy_field(char *dst, size_t size, const char *src, const char *name, reel_error *err) {
  if (strlen(src) >= size) return reel_error_set(err, REEL_ELIMIT, name, "is longer than %zu bytes", size - 1);
  memcpy(dst, src, strlen(src) + 1);
  return REEL_OK;
}

reel_status reel_s3_config_from_env(reel_s3_config *cfg, reel_error *err) {
  memset(cfg, 0, sizeof *cfg);
  const char *ak = env_first("AWS_ACCESS_KEY_ID", NULL), *sk = env_first("AWS_SECRET_ACCESS_KEY", NULL);
  if (!ak) return reel_error_set(err, REEL_EAUTH, "AWS_ACCESS_KEY_ID", "is not set (needed for s3:// outputs)");
  if (!sk) return reel_error_set(err, REEL_EAUTH, "AWS_SECRET_ACCESS_KEY", "is not set (needed for s3:// outputs)");
  reel_status st;
  if ((st = copy_field(cfg->access_key, sizeof cfg->access_key, ak, "AWS_ACCESS_KEY_ID", err))) return st;
  if ((st = copy_field(cfg->secret_key, sizeof cfg->secret_key, sk, "AWS_SECRET_ACCESS_KEY", err))) return st;
  const char *tok = env_first("AWS_SESSION_TOKEN", NULL);
  if (tok && (st = copy_field(cfg->session_token, sizeof cfg->session_token, tok, "AWS_SESSION_TOKEN", err))) return st;
  const char *region = env_first("AWS_REGION", "AWS_DEFAULT_REGION");
  if ((st = copy_field(cfg->region, sizeof cfg->region, region ? region : "us-east-1", "AWS_REGION", err))) return st;
  for (const char *p = cfg->region; *p; p++)
    if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-'))
      return reel_error_set(err, REEL_EINVAL, "AWS_REGION", "'%s' is not a region name", cfg->region);
  const char *ep = env_first("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL");
  if (ep) {
    if (strncmp(ep, "http://", 7) != 0 && strncmp(ep, "https://", 8) != 0)
      return reel_error_set(err, REEL_EINVAL, "AWS_ENDPOINT_URL", "'%s' must start with http:// or https://", ep);
    if ((st = copy_field(cfg->endpoint, sizeof cfg->endpoint, ep, "AWS_ENDPOINT_URL", err))) return st;
    size_t n = strlen(cfg->endpoint);
    while (n && cfg->endpoint[n - 1] == '/') cfg->endpoint[--n] = '\0';
    if (strchr(strstr(cfg->endpoint, "://") + 3, '/'))
      return reel_error_set(err, REEL_EINVAL, "AWS_ENDPOINT_URL", "'%s' must not have a path", ep);
  }
  cfg->path_style = cfg->endpoint[0] != '\0';
  const char *addr = getenv("REEL_S3_ADDRESSING");
  if (addr && addr[0]) {
    if (!strcmp(addr, "path"))
      cfg->path_style = 1;
    else if (!strcmp(addr, "virtual"))
      cfg->path_style = 0;
    else
      return reel_error_set(err, REEL_EINVAL, "REEL_S3_ADDRESSING", "must be path or virtual, got '%s'", addr);
  }
  cfg->max_attempts = 8;
  cfg->timeout_ms = 60000;
  cfg->connect_timeout_ms = 5000;
  const char *ma = getenv("REEL_S3_MAX_ATTEMPTS");
  if (ma && ma[0]) {
    char *end;
    long v = strtol(ma, &end, 10);
    if (*end || v < 1 || v > 100)
      return reel_error_set(err, REEL_ERANGE, "REEL_S3_MAX_ATTEMPTS", "must be in 1..100, got '%s'", ma);
    cfg->max_attempts = (int)v;
  }
  const char *to = getenv("REEL_S3_TIMEOUT_MS");
  if (to && to[0]) {
    char *end;
    long v = strtol(to, &end, 10);
    if (*end || v < 100 || v > 3600000)
      return reel_error_set(err, REEL_ERANGE, "REEL_S3_TIMEOUT_MS", "must be in 100..3600000, got '%s'", to);
    cfg->timeout_ms = v;
    if (cfg->connect_timeout_ms > v) cfg->connect_timeout_ms = v;
  }
  return REEL_OK;
}

/* ---- URLs -------------------------------------------------------------------------------- */

typedef struct {
  char bucket[64];
  char key[1025];
} s3_location;

static reel_status parse_s3_url(const char *url, s3_location *loc, reel_error *err) {
  if (strncasecmp(url, "s3://", 5) != 0) return reel_error_set(err, REEL_EINVAL, "url", "'%s' is not s3://", url);
  const char *b = url + 5, *slash = strchr(b, '/');
  if (!slash) return reel_error_set(err, REEL_EINVAL, "url", "'%s': expected s3://bucket/key", url);
  size_t bl = (size_t)(slash - b);
  if (bl < 3 || bl > 63)
    return reel_error_set(err, REEL_EINVAL, "url", "'%s': bucket name must be 3..63 characters", url);
  for (size_t i = 0; i < bl; i++) {
    char c = b[i];
    int ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.';
    if (!ok || ((i == 0 || i == bl - 1) && (c == '-' || c == '.')))
      return reel_error_set(err, REEL_EINVAL, "url", "'%s': invalid bucket name (lowercase letters, digits, '-', '.')",
                            url);
  }
  const char *k = slash + 1;
  size_t kl = strlen(k);
  if (kl == 0 || kl > 1024)
    return reel_error_set(err, REEL_EINVAL, "url", "'%s': object key must be 1..1024 bytes", url);
  for (size_t i = 0; i < kl; i++)
    if ((unsigned char)k[i] < 0x20 || k[i] == 0x7f)
      return reel_error_set(err, REEL_EINVAL, "url", "object key must not contain control characters");
  memcpy(loc->bucket, b, bl);
  loc->bucket[bl] = '\0';
  memcpy(loc->key, k, kl + 1);
  return REEL_OK;
}

/* Host header and base URL ("http://host:port") for a bucket. */
static void endpoint_for(const reel_s3_config *cfg, const char *bucket, char *base, size_t bsize, char *host,
                         size_t hsize, char *path_prefix, size_t psize) {
  if (cfg->endpoint[0]) {
    const char *sep = strstr(cfg->endpoint, "://");
    const char *h = sep + 3;
    if (cfg->path_style) {
      snprintf(base, bsize, "%s", cfg->endpoint);
      snprintf(host, hsize, "%s", h);
      snprintf(path_prefix, psize, "/%s", bucket);
    } else {
      snprintf(base, bsize, "%.*s%s.%s", (int)(h - cfg->endpoint), cfg->endpoint, bucket, h);
      snprintf(host, hsize, "%s.%s", bucket, h);
      path_prefix[0] = '\0';
    }
  } else if (cfg->path_style) {
    snprintf(host, hsize, "s3.%s.amazonaws.com", cfg->region);
    snprintf(base, bsize, "https://%s", host);
    snprintf(path_prefix, psize, "/%s", bucket);
  } else {
    snprintf(host, hsize, "%s.s3.%s.amazonaws.com", bucket, cfg->region);
    snprintf(base, bsize, "https://%s", host);
    path_prefix[0] = '\0';
  }
}

/* ---- small helpers ----------------------------------------------------------------------- */

/* Extracts the text of the first <tag>...</tag> in a reply body; "" when absent. Bounded, never reads past len. */
size_t reel__s3_xml_field(const char *body, size_t len, const char *tag, char *out, size_t size);
size_t reel__s3_xml_field(const char *body, size_t len, const char *tag, char *out, size_t size) {
  if (size) out[0] = '\0';
  char open[72], close[72];
  int ol = snprintf(open, sizeof open, "<%s>", tag), cl = snprintf(close, sizeof close, "</%s>", tag);
  if (ol <= 0 || cl <= 0 || (size_t)ol >= sizeof open || (size_t)cl >= sizeof close || !body) return 0;
  for (size_t i = 0; i + (size_t)ol <= len; i++) {
    if (memcmp(body + i, open, (size_t)ol) != 0) continue;
    size_t s = i + (size_t)ol;
    for (size_t j = s; j + (size_t)cl <= len; j++) {
      if (memcmp(body + j, close, (size_t)cl) == 0) {
        size_t n = j - s;
        if (size) {
          size_t c = n < size - 1 ? n : size - 1;
          memcpy(out, body + s, c);
          out[c] = '\0';
        }
        return n;
      }
    }
    return 0;
  }
  return 0;
}

static void base64(const unsigned char *in, size_t n, char *out) { EVP_EncodeBlock((unsigned char *)out, in, (int)n); }

static void md5_of(const void *data, size_t len, unsigned char out[16]) {
  unsigned int n = 16;
  EVP_Digest(data, len, out, &n, EVP_md5(), NULL);
}

static void amz_now(char date[17]) {
  time_t t = time(NULL);
  struct tm tm;
  gmtime_r(&t, &tm);
  strftime(date, 17, "%Y%m%dT%H%M%SZ", &tm);
}

static const char *guess_content_type(const char *key) {
  static const struct {
    const char *ext, *type;
  } types[] = {{".mp4", "video/mp4"},        {".m4v", "video/mp4"},        {".webm", "video/webm"},
               {".mkv", "video/x-matroska"}, {".mov", "video/quicktime"},  {".png", "image/png"},
               {".jpg", "image/jpeg"},       {".jpeg", "image/jpeg"},      {".gif", "image/gif"},
               {".webp", "image/webp"},      {".json", "application/json"}};
  const char *dot = strrchr(key, '.');
  if (dot)
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
      if (!strcasecmp(dot, types[i].ext)) return types[i].type;
  return "application/octet-stream";
}

/* ---- one signed request with retries ----------------------------------------------------- */

typedef struct {
  const char *method;       /* GET PUT POST DELETE HEAD */
  const char *bucket, *key; /* key NULL = bucket root */
  reel_sigv4_param params[4];
  int nparams;
  const void *body;
  size_t body_len;
  const char *content_type; /* NULL = none */
  int want_md5;             /* send Content-MD5 */
} s3_req;

typedef struct {
  long status;
  char *body; /* NUL-terminated, heap, may be NULL */
  size_t body_len;
  char etag[128];
} s3_resp;

typedef struct {
  const unsigned char *data;
  size_t len, pos;
} upload_cursor;

static size_t read_cb(char *buf, size_t size, size_t nitems, void *ud) {
  upload_cursor *c = ud;
  size_t n = size * nitems, left = c->len - c->pos;
  if (n > left) n = left;
  memcpy(buf, c->data + c->pos, n);
  c->pos += n;
  return n;
}

static size_t write_cb(char *ptr, size_t size, size_t nmemb, void *ud) {
  s3_resp *r = ud;
  size_t n = size * nmemb;
  if (r->body_len + n > S3_MAX_BODY_REPLY) return 0; /* abort: the reply is too large to be an S3 reply */
  char *nb = realloc(r->body, r->body_len + n + 1);
  if (!nb) return 0;
  memcpy(nb + r->body_len, ptr, n);
  r->body = nb;
  r->body_len += n;
  r->body[r->body_len] = '\0';
  return n;
}

static size_t header_cb(char *buf, size_t size, size_t nitems, void *ud) {
  s3_resp *r = ud;
  size_t n = size * nitems;
  if (n > 5 && strncasecmp(buf, "ETag:", 5) == 0) {
    const char *v = buf + 5;
    size_t vl = n - 5;
    while (vl && (*v == ' ' || *v == '"')) v++, vl--;
    while (vl && (v[vl - 1] == '\r' || v[vl - 1] == '\n' || v[vl - 1] == ' ' || v[vl - 1] == '"')) vl--;
    if (vl >= sizeof r->etag) vl = sizeof r->etag - 1;
    memcpy(r->etag, v, vl);
    r->etag[vl] = '\0';
  }
  return n;
}

typedef struct {
  uint64_t state;
} jitter_rng;

static double jitter_next(jitter_rng *g) {
  g->state ^= g->state << 13;
  g->state ^= g->state >> 7;
  g->state ^= g->state << 17;
  return (double)(g->state >> 11) / 9007199254740992.0;
}

static int retryable_http(long code) { return code >= 500 || code == 408 || code == 429; }

static int retryable_curl(CURLcode c) {
  switch (c) {
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
      return 1;
    default:
      return 0;
  }
}

/*
 * Runs one request with retries. On success resp holds a 2xx reply. Returns
 * REEL_ENETWORK/REEL_ESTORAGE (transient, retries exhausted: *transient = 1),
 * REEL_EAUTH (403), REEL_ENOTFOUND (404) or REEL_ESTORAGE with the S3 error code.
 */
static reel_status s3_request(const reel_s3_config *cfg, const s3_req *rq, jitter_rng *rng, const reel_logger *log,
                              s3_resp *resp, int *transient, reel_error *err) {
  char base[700], host[600], prefix[80];
  endpoint_for(cfg, rq->bucket, base, sizeof base, host, sizeof host, prefix, sizeof prefix);
  char path[1200];
  snprintf(path, sizeof path, "%s/%s", prefix, rq->key ? rq->key : "");
  char enc_path[3700];
  if (reel_sigv4_uri_encode(path, 1, enc_path, sizeof enc_path) >= sizeof enc_path)
    return reel_error_set(err, REEL_ELIMIT, "url", "object path too long");
  /* Query string in the order given; SigV4 canonicalises separately. */
  char query[1200] = "";
  size_t ql = 0;
  for (int i = 0; i < rq->nparams; i++) {
    char k[256], v[700];
    reel_sigv4_uri_encode(rq->params[i].name, 0, k, sizeof k);
    reel_sigv4_uri_encode(rq->params[i].value, 0, v, sizeof v);
    ql += (size_t)snprintf(query + ql, sizeof query - ql, "%s%s=%s", i ? "&" : "?", k, v);
    if (ql >= sizeof query) return reel_error_set(err, REEL_ELIMIT, "url", "query too long");
  }
  char full_url[5800];
  snprintf(full_url, sizeof full_url, "%s%s%s", base, enc_path, query);

  char payload_hash[65];
  reel_sigv4_sha256_hex(rq->body ? rq->body : "", rq->body_len, payload_hash);
  char md5_b64[32] = "";
  if (rq->want_md5) {
    unsigned char d[16];
    md5_of(rq->body ? rq->body : "", rq->body_len, d);
    base64(d, 16, md5_b64);
  }

  *transient = 0;
  memset(resp, 0, sizeof *resp);
  reel_status st = REEL_ESTORAGE;
  for (int attempt = 0; attempt < cfg->max_attempts; attempt++) {
    if (attempt > 0) {
      double cap = 10000.0, d = 200.0 * (double)(1u << (attempt < 16 ? attempt - 1 : 15));
      if (d > cap) d = cap;
      d *= 0.5 + 0.5 * jitter_next(rng);
      reel_sleep_ms((int64_t)d);
    }
    free(resp->body);
    memset(resp, 0, sizeof *resp);
    char amz_date[17];
    amz_now(amz_date);
    reel_sigv4_header hs[6];
    int nh = 0;
    hs[nh++] = (reel_sigv4_header){"host", host};
    hs[nh++] = (reel_sigv4_header){"x-amz-content-sha256", payload_hash};
    hs[nh++] = (reel_sigv4_header){"x-amz-date", amz_date};
    if (cfg->session_token[0]) hs[nh++] = (reel_sigv4_header){"x-amz-security-token", cfg->session_token};
    if (md5_b64[0]) hs[nh++] = (reel_sigv4_header){"content-md5", md5_b64};
    reel_sigv4_creds cr = {cfg->access_key, cfg->secret_key, cfg->session_token, cfg->region, "s3", amz_date};
    char auth[1024];
    if (reel_sigv4_authorization(&cr, rq->method, path, rq->params, rq->nparams, hs, nh, payload_hash, auth,
                                 sizeof auth) != REEL_OK)
      return reel_error_set(err, REEL_ELIMIT, "url", "request too large to sign");
    CURL *c = curl_easy_init();
    if (!c) return reel_error_set(err, REEL_ENOMEM, "s3", "cannot create an HTTP handle");
    struct curl_slist *hl = NULL;
    char line[4200];
    snprintf(line, sizeof line, "Authorization: %s", auth);
    hl = curl_slist_append(hl, line);
    snprintf(line, sizeof line, "x-amz-content-sha256: %s", payload_hash);
    hl = curl_slist_append(hl, line);
    snprintf(line, sizeof line, "x-amz-date: %s", amz_date);
    hl = curl_slist_append(hl, line);
    if (cfg->session_token[0]) {
      snprintf(line, sizeof line, "x-amz-security-token: %s", cfg->session_token);
      hl = curl_slist_append(hl, line);
    }
    if (md5_b64[0]) {
      snprintf(line, sizeof line, "Content-MD5: %s", md5_b64);
      hl = curl_slist_append(hl, line);
    }
    snprintf(line, sizeof line, "Content-Type: %s", rq->content_type ? rq->content_type : "application/octet-stream");
    hl = curl_slist_append(hl, line);
    hl = curl_slist_append(hl, "Expect:");
    upload_cursor cur = {rq->body, rq->body_len, 0};
    curl_easy_setopt(c, CURLOPT_URL, full_url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, cfg->timeout_ms);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, cfg->connect_timeout_ms);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, write_cb);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, resp);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, header_cb);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, resp);
    if (!strcmp(rq->method, "PUT")) {
      curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
      curl_easy_setopt(c, CURLOPT_READFUNCTION, read_cb);
      curl_easy_setopt(c, CURLOPT_READDATA, &cur);
      curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE, (curl_off_t)rq->body_len);
    } else if (!strcmp(rq->method, "POST")) {
      curl_easy_setopt(c, CURLOPT_POST, 1L);
      curl_easy_setopt(c, CURLOPT_POSTFIELDS, rq->body ? (const char *)rq->body : "");
      curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)rq->body_len);
    } else if (!strcmp(rq->method, "HEAD")) {
      curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    } else if (strcmp(rq->method, "GET") != 0) {
      curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, rq->method);
    }
    CURLcode cc = curl_easy_perform(c);
    if (cc == CURLE_OK) curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &resp->status);
    curl_slist_free_all(hl);
    curl_easy_cleanup(c);
    if (cc != CURLE_OK) {
      st = reel_error_reset(err, REEL_ENETWORK, "s3", "%s s3://%s/%s: %s (attempt %d of %d)", rq->method, rq->bucket,
                            rq->key ? rq->key : "", curl_easy_strerror(cc), attempt + 1, cfg->max_attempts);
      reel_log(log, REEL_LOG_WARN, "storage", NULL, "s3 request failed", "method=%s error=\"%s\" attempt=%d",
               rq->method, curl_easy_strerror(cc), attempt + 1);
      if (retryable_curl(cc)) {
        *transient = 1;
        continue;
      }
      *transient = 0;
      return st;
    }
    char code[64], msg[256];
    reel__s3_xml_field(resp->body, resp->body_len, "Code", code, sizeof code);
    reel__s3_xml_field(resp->body, resp->body_len, "Message", msg, sizeof msg);
    /* CompleteMultipartUpload can answer 200 with an error document. */
    int error_doc = resp->status == 200 && resp->body && strstr(resp->body, "<Error>") != NULL;
    if (resp->status >= 200 && resp->status < 300 && !error_doc) {
      *transient = 0;
      return REEL_OK;
    }
    if (retryable_http(resp->status) || (error_doc && (!strcmp(code, "InternalError") || !strcmp(code, "SlowDown")))) {
      *transient = 1;
      st =
          reel_error_reset(err, REEL_ESTORAGE, "s3", "%s s3://%s/%s: HTTP %ld %s %s (attempt %d of %d)", rq->method,
                           rq->bucket, rq->key ? rq->key : "", resp->status, code, msg, attempt + 1, cfg->max_attempts);
      reel_log(log, REEL_LOG_WARN, "storage", NULL, "s3 request failed", "method=%s status=%ld code=%s attempt=%d",
               rq->method, resp->status, code, attempt + 1);
      continue;
    }
    *transient = 0;
    reel_status final = resp->status == 403 || resp->status == 401 ? REEL_EAUTH
                        : resp->status == 404                      ? REEL_ENOTFOUND
                                                                   : REEL_ESTORAGE;
    return reel_error_reset(err, final, "s3", "%s s3://%s/%s: HTTP %ld %s%s%s", rq->method, rq->bucket,
                            rq->key ? rq->key : "", resp->status, code[0] ? code : "error", msg[0] ? ": " : "", msg);
  }
  return st;
}

static void resp_free(s3_resp *r) {
  free(r->body);
  r->body = NULL;
}

/* ---- the sink ---------------------------------------------------------------------------- */

typedef struct s3_sink s3_sink;

typedef struct {
  s3_sink *owner;
  unsigned char *buf;
  size_t len;
  int number; /* part number, 1-based */
  int busy;   /* a thread is uploading it */
  pthread_t thread;
  reel_status status; /* result of the upload */
  int transient;
  reel_error err;
  char etag[128];
  jitter_rng rng;
} s3_part;

struct s3_sink {
  reel_sink base;
  reel_s3_config cfg;
  s3_location loc;
  char *url;
  char content_type[128];
  size_t part_size;
  int nslots;
  s3_part *slots;
  int filling;   /* slot index being filled by write() */
  int next_part; /* next part number */
  char upload_id[512];
  char (*etags)[128]; /* etags[i] for part i+1 */
  int netags;
  reel_sha256 sha;
  uint64_t total;
  reel_status failed; /* first upload failure */
  int failed_transient;
  reel_error fail_err;
  jitter_rng rng;
  /* spool */
  char *spool_dir;
  char *spool_path; /* data file being written */
  int spool_fd;
};

static reel_status s3_request_logged(s3_sink *s, const s3_req *rq, jitter_rng *rng, s3_resp *resp, int *transient,
                                     reel_error *err) {
  return s3_request(&s->cfg, rq, rng, s->base.log, resp, transient, err);
}

static void *part_thread(void *arg) {
  s3_part *p = arg;
  s3_sink *s = p->owner;
  char num[16];
  snprintf(num, sizeof num, "%d", p->number);
  s3_req rq = {0};
  rq.method = "PUT";
  rq.bucket = s->loc.bucket;
  rq.key = s->loc.key;
  rq.params[0] = (reel_sigv4_param){"partNumber", num};
  rq.params[1] = (reel_sigv4_param){"uploadId", s->upload_id};
  rq.nparams = 2;
  rq.body = p->buf;
  rq.body_len = p->len;
  rq.want_md5 = 1;
  s3_resp resp;
  reel_error_clear(&p->err);
  p->status = s3_request_logged(s, &rq, &p->rng, &resp, &p->transient, &p->err);
  if (p->status == REEL_OK) {
    /* For unencrypted parts the ETag is the hex MD5 of the part: a cheap end-to-end check. */
    unsigned char d[16];
    char hex[33];
    md5_of(p->buf, p->len, d);
    for (int i = 0; i < 16; i++) snprintf(hex + 2 * i, 3, "%02x", d[i]);
    if (!resp.etag[0]) {
      p->status = reel_error_set(&p->err, REEL_ESTORAGE, "s3", "part %d: the server returned no ETag", p->number);
    } else if (strlen(resp.etag) == 32 && strcasecmp(resp.etag, hex) != 0) {
      p->status = reel_error_set(&p->err, REEL_ESTORAGE, "s3", "part %d: ETag %s does not match the MD5 %s we sent",
                                 p->number, resp.etag, hex);
    } else {
      snprintf(p->etag, sizeof p->etag, "%s", resp.etag);
    }
  }
  resp_free(&resp);
  return NULL;
}

/* Waits for slot i's upload and records its result. */
static void join_slot(s3_sink *s, int i) {
  s3_part *p = &s->slots[i];
  if (!p->busy) return;
  pthread_join(p->thread, NULL);
  p->busy = 0;
  if (p->status == REEL_OK) {
    memcpy(s->etags[p->number - 1], p->etag, sizeof p->etag);
  } else if (s->failed == REEL_OK) {
    s->failed = p->status;
    s->failed_transient = p->transient;
    s->fail_err = p->err;
  }
  p->len = 0;
}

static reel_status start_multipart(s3_sink *s, reel_error *err) {
  s3_req rq = {0};
  rq.method = "POST";
  rq.bucket = s->loc.bucket;
  rq.key = s->loc.key;
  rq.params[0] = (reel_sigv4_param){"uploads", ""};
  rq.nparams = 1;
  rq.content_type = s->content_type;
  s3_resp resp;
  int transient;
  reel_status st = s3_request_logged(s, &rq, &s->rng, &resp, &transient, err);
  if (st == REEL_OK) {
    size_t n = reel__s3_xml_field(resp.body, resp.body_len, "UploadId", s->upload_id, sizeof s->upload_id);
    if (n == 0 || n >= sizeof s->upload_id)
      st = reel_error_set(err, REEL_ESTORAGE, "s3", "CreateMultipartUpload for '%s' returned no usable UploadId",
                          s->url);
  } else if (transient) {
    s->failed_transient = 1;
  }
  resp_free(&resp);
  return st;
}

/* Sends the filling slot as the next part (asynchronously). */
static reel_status flush_part(s3_sink *s, reel_error *err) {
  s3_part *p = &s->slots[s->filling];
  if (p->len == 0) return REEL_OK;
  if (!s->upload_id[0]) {
    reel_status st = start_multipart(s, err);
    if (st) return st;
  }
  if (s->next_part > S3_MAX_PARTS)
    return reel_error_set(err, REEL_ELIMIT, "part_size", "object needs more than %d parts of %zu bytes", S3_MAX_PARTS,
                          s->part_size);
  if (s->next_part > s->netags) {
    int n = s->netags ? s->netags * 2 : 64;
    void *ne = reel_realloc(s->etags, (size_t)n * sizeof s->etags[0]);
    if (!ne) return reel_error_set(err, REEL_ENOMEM, "s3", "out of memory");
    s->etags = ne;
    s->netags = n;
  }
  p->number = s->next_part++;
  p->rng.state = s->rng.state ^ ((uint64_t)p->number * 0x9E3779B97F4A7C15ull);
  if (pthread_create(&p->thread, NULL, part_thread, p) != 0) {
    return reel_error_set(err, REEL_EINTERNAL, "s3", "cannot start an upload thread");
  }
  p->busy = 1;
  /* Next slot to fill: the least recently used one, waiting for it if it is in flight. */
  s->filling = (s->filling + 1) % s->nslots;
  join_slot(s, s->filling);
  if (s->failed) {
    reel_error_reset(err, s->fail_err.code, s->fail_err.field, "%s", s->fail_err.msg);
    return s->failed;
  }
  return REEL_OK;
}

static reel_status spool_write(s3_sink *s, const void *data, size_t len, reel_error *err) {
  if (s->spool_fd < 0) return REEL_OK;
  const unsigned char *p = data;
  while (len) {
    ssize_t w = write(s->spool_fd, p, len);
    if (w < 0) {
      if (errno == EINTR) continue;
      return reel_error_set(err, REEL_EIO, "spool_dir", "'%s': write failed: %s", s->spool_path, strerror(errno));
    }
    p += w;
    len -= (size_t)w;
  }
  return REEL_OK;
}

static reel_status s3_write(reel_sink *base, const void *data, size_t len, reel_error *err) {
  s3_sink *s = (s3_sink *)base;
  if (s->failed) {
    reel_error_set(err, s->fail_err.code, s->fail_err.field, "%s", s->fail_err.msg);
    return s->failed;
  }
  reel_status st = spool_write(s, data, len, err);
  if (st) return st;
  reel_sha256_update(&s->sha, data, len);
  s->total += len;
  const unsigned char *p = data;
  while (len) {
    s3_part *slot = &s->slots[s->filling];
    size_t room = s->part_size - slot->len;
    size_t n = len < room ? len : room;
    memcpy(slot->buf + slot->len, p, n);
    slot->len += n;
    p += n;
    len -= n;
    if (slot->len == s->part_size) {
      reel_error local;
      reel_error_clear(&local);
      if ((st = flush_part(s, &local)) != REEL_OK) {
        if (s->failed == REEL_OK) {
          s->failed = st;
          s->fail_err = local;
        }
        reel_error_set(err, local.code, local.field, "%s", local.msg);
        return st;
      }
    }
  }
  return REEL_OK;
}

static void join_all(s3_sink *s) {
  for (int i = 0; i < s->nslots; i++) join_slot(s, i);
}

static void abort_multipart(s3_sink *s) {
  if (!s->upload_id[0]) return;
  s3_req rq = {0};
  rq.method = "DELETE";
  rq.bucket = s->loc.bucket;
  rq.key = s->loc.key;
  rq.params[0] = (reel_sigv4_param){"uploadId", s->upload_id};
  rq.nparams = 1;
  s3_resp resp;
  int transient;
  reel_error e;
  reel_error_clear(&e);
  if (s3_request_logged(s, &rq, &s->rng, &resp, &transient, &e) != REEL_OK)
    reel_log(s->base.log, REEL_LOG_WARN, "storage", NULL, "AbortMultipartUpload failed", "url=%s error=\"%s\"", s->url,
             e.msg);
  resp_free(&resp);
  s->upload_id[0] = '\0';
}

static void s3_free(s3_sink *s) {
  if (!s) return;
  join_all(s);
  if (s->slots)
    for (int i = 0; i < s->nslots; i++) reel_aligned_free(s->slots[i].buf);
  reel_free(s->slots);
  reel_free(s->etags);
  if (s->spool_fd >= 0) close(s->spool_fd);
  reel_free(s->spool_path);
  reel_free(s->spool_dir);
  reel_free(s->url);
  reel_free(s);
}

static void spool_discard(s3_sink *s) {
  if (s->spool_fd >= 0) {
    close(s->spool_fd);
    s->spool_fd = -1;
  }
  if (s->spool_path) unlink(s->spool_path);
}

/* Keeps the teed copy as a complete spooled clip with its manifest. Returns REEL_OK when it is safe on disk. */
static reel_status spool_keep(s3_sink *s, const char *sha_hex, char *where, size_t wsize) {
  if (s->spool_fd < 0) return REEL_ENOTFOUND;
  if (fsync(s->spool_fd) != 0) return REEL_EIO;
  close(s->spool_fd);
  s->spool_fd = -1;
  char clip[4200], manifest[4200], tmp[4300];
  size_t n = strlen(s->spool_path);
  snprintf(clip, sizeof clip, "%.*s.clip", (int)(n - 5), s->spool_path); /* strip ".part" */
  snprintf(manifest, sizeof manifest, "%.*s.json", (int)(n - 5), s->spool_path);
  snprintf(tmp, sizeof tmp, "%s.tmp", manifest);
  if (rename(s->spool_path, clip) != 0) return REEL_EIO;
  json_t *m = json_pack("{s:s, s:I, s:s, s:s}", "url", s->url, "bytes", (json_int_t)s->total, "sha256", sha_hex,
                        "content_type", s->content_type);
  reel_status st = REEL_EIO;
  if (m && json_dump_file(m, tmp, JSON_COMPACT) == 0) {
    int fd = open(tmp, O_RDONLY);
    if (fd >= 0) {
      if (fsync(fd) == 0 && rename(tmp, manifest) == 0) st = REEL_OK;
      close(fd);
    }
  }
  json_decref(m);
  if (st == REEL_OK) {
    int dfd = open(s->spool_dir, O_RDONLY | O_DIRECTORY);
    if (dfd >= 0) {
      fsync(dfd);
      close(dfd);
    }
    snprintf(where, wsize, "%s", clip);
  }
  return st;
}

static reel_status s3_close(reel_sink *base, reel_sink_result *res, reel_error *err) {
  s3_sink *s = (s3_sink *)base;
  reel_status st = s->failed;
  if (st) reel_error_set(err, s->fail_err.code, s->fail_err.field, "%s", s->fail_err.msg);
  uint8_t digest[REEL_SHA256_BYTES];
  reel_sha256_final(&s->sha, digest);
  char sha_hex[REEL_SHA256_HEX];
  reel_sha256_hex(digest, sha_hex);
  int transient = s->failed_transient;
  if (st == REEL_OK && !s->upload_id[0]) {
    /* Everything fits in one part: a single PutObject. */
    s3_req rq = {0};
    rq.method = "PUT";
    rq.bucket = s->loc.bucket;
    rq.key = s->loc.key;
    rq.body = s->slots[s->filling].buf;
    rq.body_len = s->slots[s->filling].len;
    rq.content_type = s->content_type;
    rq.want_md5 = 1;
    s3_resp resp;
    st = s3_request_logged(s, &rq, &s->rng, &resp, &transient, err);
    resp_free(&resp);
  } else if (st == REEL_OK) {
    if ((st = flush_part(s, err)) == REEL_OK) {
      join_all(s);
      st = s->failed;
      transient = s->failed_transient;
      if (st) reel_error_set(err, s->fail_err.code, s->fail_err.field, "%s", s->fail_err.msg);
    }
    if (st == REEL_OK) {
      int nparts = s->next_part - 1;
      size_t cap = 64 + (size_t)nparts * 200;
      char *xml = reel_malloc(cap);
      if (!xml) {
        st = reel_error_set(err, REEL_ENOMEM, "s3", "out of memory");
      } else {
        size_t off = (size_t)snprintf(xml, cap, "<CompleteMultipartUpload>");
        for (int i = 0; i < nparts; i++)
          off += (size_t)snprintf(xml + off, cap - off, "<Part><PartNumber>%d</PartNumber><ETag>\"%s\"</ETag></Part>",
                                  i + 1, s->etags[i]);
        off += (size_t)snprintf(xml + off, cap - off, "</CompleteMultipartUpload>");
        s3_req rq = {0};
        rq.method = "POST";
        rq.bucket = s->loc.bucket;
        rq.key = s->loc.key;
        rq.params[0] = (reel_sigv4_param){"uploadId", s->upload_id};
        rq.nparams = 1;
        rq.body = xml;
        rq.body_len = off;
        rq.content_type = "application/xml";
        s3_resp resp;
        st = s3_request_logged(s, &rq, &s->rng, &resp, &transient, err);
        resp_free(&resp);
        reel_free(xml);
        if (st == REEL_OK) s->upload_id[0] = '\0';
      }
    }
  }
  if (st != REEL_OK) {
    join_all(s);
    abort_multipart(s);
    char where[4200];
    /* Whatever went wrong, a teed copy keeps the clip: the spool flush retries it later. */
    (void)transient;
    if (spool_keep(s, sha_hex, where, sizeof where) == REEL_OK) {
      reel_log(s->base.log, REEL_LOG_WARN, "storage", NULL, "upload failed; clip spooled", "url=%s spool=%s", s->url,
               where);
      reel_error_reset(err, REEL_EAGAIN, "url",
                       "'%s': storage unreachable (%s); the clip is spooled at %s and will be "
                       "uploaded by the next spool flush",
                       s->url, err && err->msg[0] ? err->msg : "", where);
      st = REEL_EAGAIN;
    } else {
      spool_discard(s);
    }
    snprintf(res->url, sizeof res->url, "%s", s->url);
    res->bytes = s->total;
    memcpy(res->sha256, sha_hex, sizeof res->sha256);
    s3_free(s);
    return st;
  }
  spool_discard(s);
  snprintf(res->url, sizeof res->url, "%s", s->url);
  res->bytes = s->total;
  memcpy(res->sha256, sha_hex, sizeof res->sha256);
  reel_log(s->base.log, REEL_LOG_DEBUG, "storage", NULL, "object committed", "url=%s bytes=%llu parts=%d sha256=%s",
           s->url, (unsigned long long)s->total, s->next_part - 1, sha_hex);
  s3_free(s);
  return REEL_OK;
}

static void s3_abort(reel_sink *base) {
  s3_sink *s = (s3_sink *)base;
  join_all(s);
  abort_multipart(s);
  spool_discard(s);
  s3_free(s);
}

static const reel_sink_ops s3_ops = {"s3", s3_write, NULL, NULL, s3_close, s3_abort};

static reel_status open_spool(s3_sink *s, const char *dir, reel_error *err) {
  struct stat sb;
  if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode))
    return reel_error_set(err, REEL_ENOTFOUND, "spool_dir", "'%s' is not a directory", dir);
  s->spool_dir = reel_strdup(dir);
  s->spool_path = reel_malloc(strlen(dir) + 64);
  if (!s->spool_dir || !s->spool_path) return reel_error_set(err, REEL_ENOMEM, "spool_dir", "out of memory");
  for (int tries = 0; tries < 16; tries++) {
    uint64_t r = 0;
    if (getrandom(&r, sizeof r, 0) != sizeof r) r = (uint64_t)reel_now_ns() ^ ((uint64_t)getpid() << 32);
    sprintf(s->spool_path, "%s/%016llx.part", dir, (unsigned long long)r);
    s->spool_fd = open(s->spool_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
    if (s->spool_fd >= 0) return REEL_OK;
    if (errno != EEXIST) break;
  }
  return reel_error_set(err, REEL_EIO, "spool_dir", "'%s': cannot create a spool file: %s", dir, strerror(errno));
}

/* libcurl's global state must be set up once, before any thread uses it. */
static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void curl_init_once(void) { curl_global_init(CURL_GLOBAL_DEFAULT); }

reel_status reel__s3_sink_open(const char *url, const reel_sink_options *opts, reel_sink **out, reel_error *err) {
  s3_location loc;
  reel_status st = parse_s3_url(url, &loc, err);
  if (st) return st;
  pthread_once(&curl_once, curl_init_once);
  size_t part = opts->part_size ? opts->part_size : S3_DEFAULT_PART;
  if (part < S3_MIN_PART || part > ((size_t)5 << 30))
    return reel_error_set(err, REEL_ERANGE, "part_size", "must be in 5 MiB..5 GiB, got %zu", part);
  int slots = opts->max_parts_in_flight ? opts->max_parts_in_flight : 4;
  if (slots < 1 || slots > 64)
    return reel_error_set(err, REEL_ERANGE, "max_parts_in_flight", "must be in 1..64, got %d", slots);
  s3_sink *s = reel_calloc(1, sizeof *s);
  if (!s) return reel_error_set(err, REEL_ENOMEM, "url", "out of memory");
  s->spool_fd = -1;
  if ((st = reel_s3_config_from_env(&s->cfg, err))) goto fail;
  s->loc = loc;
  s->part_size = part;
  /* One slot more than the parts in flight: the caller fills it while the others upload. */
  s->nslots = slots + 1;
  s->slots = reel_calloc((size_t)s->nslots, sizeof *s->slots);
  s->url = reel_malloc(strlen(loc.bucket) + strlen(loc.key) + 8);
  if (!s->slots || !s->url) {
    st = reel_error_set(err, REEL_ENOMEM, "url", "out of memory");
    goto fail;
  }
  sprintf(s->url, "s3://%s/%s", loc.bucket, loc.key);
  for (int i = 0; i < s->nslots; i++) {
    s->slots[i].owner = s;
    if (!(s->slots[i].buf = reel_aligned_alloc(part))) {
      st = reel_error_set(err, REEL_ENOMEM, "part_size", "cannot allocate %d part buffers of %zu bytes", s->nslots,
                          part);
      goto fail;
    }
  }
  snprintf(s->content_type, sizeof s->content_type, "%s",
           opts->content_type ? opts->content_type : guess_content_type(loc.key));
  reel_sha256_init(&s->sha);
  uint64_t seed = 0;
  if (getrandom(&seed, sizeof seed, 0) != sizeof seed) seed = (uint64_t)reel_now_ns();
  s->rng.state = seed | 1;
  s->next_part = 1;
  if (opts->spool_dir && (st = open_spool(s, opts->spool_dir, err))) goto fail;
  s->base.ops = &s3_ops;
  s->base.log = opts->log;
  s->base.url = s->url;
  *out = &s->base;
  return REEL_OK;
fail:
  spool_discard(s);
  s3_free(s);
  return st;
}

/* ---- presigned URLs ---------------------------------------------------------------------- */

reel_status reel_s3_presign_get(const reel_s3_config *cfg, const char *s3_url, int expires_s, char *out, size_t size,
                                reel_error *err) {
  s3_location loc;
  reel_status st = parse_s3_url(s3_url, &loc, err);
  if (st) return st;
  if (expires_s < 1 || expires_s > 604800)
    return reel_error_set(err, REEL_ERANGE, "expires", "must be in 1..604800 seconds, got %d", expires_s);
  char base[700], host[600], prefix[80], path[1200], amz_date[17];
  endpoint_for(cfg, loc.bucket, base, sizeof base, host, sizeof host, prefix, sizeof prefix);
  snprintf(path, sizeof path, "%s/%s", prefix, loc.key);
  amz_now(amz_date);
  reel_sigv4_creds cr = {cfg->access_key, cfg->secret_key, cfg->session_token, cfg->region, "s3", amz_date};
  char q[8192], enc[3700];
  if (reel_sigv4_presign_query(&cr, "GET", host, path, expires_s, q, sizeof q) != REEL_OK ||
      reel_sigv4_uri_encode(path, 1, enc, sizeof enc) >= sizeof enc)
    return reel_error_set(err, REEL_ELIMIT, "url", "presigned URL too long");
  int n = snprintf(out, size, "%s%s?%s", base, enc, q);
  if (n < 0 || (size_t)n >= size) return reel_error_set(err, REEL_ELIMIT, "url", "presigned URL does not fit");
  return REEL_OK;
}

/* ---- spool flush ------------------------------------------------------------------------- */

static reel_status upload_spooled(const char *manifest_path, const reel_logger *log, reel_error *err) {
  json_t *m = NULL;
  reel_status st = reel_json_load_file(manifest_path, 1 << 16, &m, err);
  if (st) return st;
  const char *url = NULL, *sha = NULL, *ctype = NULL;
  int64_t bytes = 0;
  if ((st = reel_json_get_string(m, "spool", "url", REEL_JSON_REQUIRED, 2048, &url, err)) ||
      (st = reel_json_get_string(m, "spool", "sha256", REEL_JSON_REQUIRED, 64, &sha, err)) ||
      (st = reel_json_get_string(m, "spool", "content_type", REEL_JSON_OPTIONAL, 127, &ctype, err)) ||
      (st = reel_json_get_int(m, "spool", "bytes", REEL_JSON_REQUIRED, 0, INT64_MAX, &bytes, err))) {
    json_decref(m);
    return st;
  }
  char clip[4200];
  size_t n = strlen(manifest_path);
  snprintf(clip, sizeof clip, "%.*s.clip", (int)(n - 5), manifest_path);
  FILE *f = fopen(clip, "rb");
  if (!f) {
    st = reel_error_set(err, REEL_ENOTFOUND, "spool", "'%s' is missing", clip);
    json_decref(m);
    return st;
  }
  reel_sink_options o = {0};
  o.log = log;
  o.content_type = ctype;
  reel_sink *sink = NULL;
  if ((st = reel_sink_open(url, &o, &sink, err)) == REEL_OK) {
    unsigned char buf[1 << 16];
    size_t r;
    while (st == REEL_OK && (r = fread(buf, 1, sizeof buf, f)) > 0) st = reel_sink_write(sink, buf, r, err);
    if (st == REEL_OK) {
      reel_sink_result res;
      st = reel_sink_close(&sink, &res, err);
      if (st == REEL_OK && (strcmp(res.sha256, sha) != 0 || (int64_t)res.bytes != bytes))
        st = reel_error_set(err, REEL_EFORMAT, "spool", "'%s' does not match its manifest (sha256 or size)", clip);
    } else {
      reel_sink_abort(&sink);
    }
  }
  fclose(f);
  if (st == REEL_OK) {
    unlink(clip);
    unlink(manifest_path);
    reel_log(log, REEL_LOG_INFO, "storage", NULL, "spooled clip uploaded", "url=%s bytes=%lld", url, (long long)bytes);
  }
  json_decref(m);
  return st;
}

reel_status reel_s3_flush_spool(const char *spool_dir, const reel_logger *log, int *uploaded, reel_error *err) {
  if (uploaded) *uploaded = 0;
  DIR *d = opendir(spool_dir);
  if (!d) return reel_error_set(err, REEL_ENOTFOUND, "spool_dir", "'%s': %s", spool_dir, strerror(errno));
  reel_status first = REEL_OK;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    size_t n = strlen(e->d_name);
    if (n < 6 || strcmp(e->d_name + n - 5, ".json") != 0) continue;
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", spool_dir, e->d_name);
    reel_error local;
    reel_error_clear(&local);
    reel_status st = upload_spooled(path, log, &local);
    if (st == REEL_OK) {
      if (uploaded) (*uploaded)++;
    } else if (first == REEL_OK) {
      first = st;
      if (err) *err = local;
    }
  }
  closedir(d);
  return first;
}
