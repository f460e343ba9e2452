/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Downloads for previews: s3:// objects are fetched through a presigned GET URL
 * (the same SigV4 code as uploads), http(s):// directly, both with libcurl, and
 * streamed into a file sink so that a partial download never appears as a file.
 */
#include "reel/fetch.h"

#include <string.h>
#include <strings.h>

#include "reel/sink.h"

int reel_fetch_is_remote(const char *url) {
  return url && (!strncasecmp(url, "s3://", 5) || !strncasecmp(url, "http://", 7) || !strncasecmp(url, "https://", 8));
}

#ifdef REEL_HAVE_S3
#include <curl/curl.h>

#include "reel/s3.h"

typedef struct {
  reel_sink *sink;
  size_t got, max;
  reel_status st;
  reel_error *err;
} fetch_ctx;

static size_t on_data(char *ptr, size_t size, size_t nmemb, void *ud) {
  fetch_ctx *c = ud;
  size_t n = size * nmemb;
  if (c->got + n > c->max) {
    c->st = reel_error_set(c->err, REEL_ELIMIT, "url", "object is larger than the limit of %zu bytes", c->max);
    return 0;
  }
  if ((c->st = reel_sink_write(c->sink, ptr, n, c->err)) != REEL_OK) return 0;
  c->got += n;
  return n;
}

reel_status reel_fetch_to_file(const char *url, const char *dst_path, size_t max_bytes, const reel_logger *log,
                               reel_error *err) {
  if (!reel_fetch_is_remote(url))
    return reel_error_set(err, REEL_EUNSUPPORTED, "url", "'%s': only s3://, http:// and https:// can be fetched",
                          url ? url : "");
  char presigned[8192];
  const char *get_url = url;
  if (!strncasecmp(url, "s3://", 5)) {
    reel_s3_config cfg;
    reel_status st = reel_s3_config_from_env(&cfg, err);
    if (st) return st;
    if ((st = reel_s3_presign_get(&cfg, url, 300, presigned, sizeof presigned, err))) return st;
    get_url = presigned;
  }
  reel_sink_options so = {0};
  so.log = log;
  fetch_ctx c = {NULL, 0, max_bytes, REEL_OK, err};
  reel_status st = reel_sink_open(dst_path, &so, &c.sink, err);
  if (st) return st;
  CURL *h = curl_easy_init();
  if (!h) {
    reel_sink_abort(&c.sink);
    return reel_error_set(err, REEL_ENOMEM, "url", "cannot create an HTTP handle");
  }
  curl_easy_setopt(h, CURLOPT_URL, get_url);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &c);
  curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 1L);
  curl_easy_setopt(h, CURLOPT_MAXREDIRS, 5L);
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
  curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
  curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, 30L);
  CURLcode cc = curl_easy_perform(h);
  long code = 0;
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
  curl_easy_cleanup(h);
  if (c.st != REEL_OK) {
    st = c.st;
  } else if (cc != CURLE_OK) {
    st = reel_error_set(err, REEL_ENETWORK, "url", "'%s': %s", url, curl_easy_strerror(cc));
  } else if (code < 200 || code >= 300) {
    st = reel_error_set(err,
                        code == 404                    ? REEL_ENOTFOUND
                        : (code == 401 || code == 403) ? REEL_EAUTH
                                                       : REEL_ESTORAGE,
                        "url", "'%s': HTTP %ld", url, code);
  }
  if (st != REEL_OK) {
    reel_sink_abort(&c.sink);
    return st;
  }
  return reel_sink_close(&c.sink, NULL, err);
}

#else

reel_status reel_fetch_to_file(const char *url, const char *dst_path, size_t max_bytes, const reel_logger *log,
                               reel_error *err) {
  (void)dst_path;
  (void)max_bytes;
  (void)log;
  return reel_error_set(err, REEL_EUNSUPPORTED, "url", "'%s': this reel was built without libcurl (REEL_WITH_S3=OFF)",
                        url ? url : "");
}

#endif
