/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The file:// sink: commit by rename, abort, no partial file under the final
 * name, seek/read for muxers, the SHA-256 of what was committed, URL validation
 * and allocation-failure injection through every open/close path.
 */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "reel/alloc.h"
#include "reel/sha256.h"
#include "reel/sink.h"
#include "testutil.h"

typedef struct {
  char dir[PATH_MAX];  /* temp dir as created */
  char real[PATH_MAX]; /* its resolved path */
} fixture;

static int setup(void **state) {
  fixture *f = calloc(1, sizeof *f);
  tu_mkdtemp(f->dir, sizeof f->dir);
  assert_non_null(realpath(f->dir, f->real));
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fixture *f = *state;
  reel_alloc_fail_after(-1, 0);
  tu_rmtree(f->dir);
  free(f);
  return 0;
}

/* Number of entries in dir other than . and ..; the first one's name goes to first. */
static int count_entries(const char *dir, char *first, size_t size) {
  DIR *d = opendir(dir);
  assert_non_null(d);
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d))) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
    if (n == 0 && first) snprintf(first, size, "%s", e->d_name);
    n++;
  }
  closedir(d);
  return n;
}

static int exists(const char *path) {
  struct stat sb;
  return stat(path, &sb) == 0;
}

static void hex_digest(const void *data, size_t len, char hex[REEL_SHA256_HEX]) {
  uint8_t d[REEL_SHA256_BYTES];
  reel_sha256_digest(data, len, d);
  reel_sha256_hex(d, hex);
}

static void test_round_trip(void **state) {
  fixture *f = *state;
  char url[PATH_MAX + 16], path[PATH_MAX + 16], expect_url[PATH_MAX + 32];
  snprintf(url, sizeof url, "file://%s/clip.mp4", f->dir);
  snprintf(path, sizeof path, "%s/clip.mp4", f->dir);
  snprintf(expect_url, sizeof expect_url, "file://%s/clip.mp4", f->real);
  enum { N = 300000 };
  uint8_t *data = malloc(N);
  for (size_t i = 0; i < N; i++) data[i] = (uint8_t)(i * 131 + (i >> 9));
  reel_error err = {0};
  reel_sink *s = NULL;
  assert_int_equal(reel_sink_open(url, NULL, &s, &err), REEL_OK);
  assert_true(reel_sink_seekable(s));
  assert_string_equal(reel_sink_url(s), expect_url);
  for (size_t off = 0; off < N;) {
    size_t n = (N - off) < 7777 ? N - off : 7777;
    assert_int_equal(reel_sink_write(s, data + off, n, &err), REEL_OK);
    off += n;
  }
  assert_int_equal(s->bytes, N);
  reel_sink_result res;
  assert_int_equal(reel_sink_close(&s, &res, &err), REEL_OK);
  assert_null(s);
  assert_string_equal(res.url, expect_url);
  assert_int_equal(res.bytes, N);
  char hex[REEL_SHA256_HEX];
  hex_digest(data, N, hex);
  assert_string_equal(res.sha256, hex);
  size_t len = 0;
  char *back = tu_read_file(path, &len);
  assert_non_null(back);
  assert_int_equal(len, N);
  assert_memory_equal(back, data, N);
  assert_int_equal(count_entries(f->dir, NULL, 0), 1); /* no temporary left behind */
  free(back);
  free(data);
}

static void test_sha256_known_value(void **state) {
  fixture *f = *state;
  char path[PATH_MAX + 16];
  snprintf(path, sizeof path, "%s/abc.txt", f->dir); /* a plain absolute path */
  reel_sink *s = NULL;
  reel_error err = {0};
  assert_int_equal(reel_sink_open(path, NULL, &s, &err), REEL_OK);
  assert_int_equal(reel_sink_write(s, "ab", 2, &err), REEL_OK);
  assert_int_equal(reel_sink_write(s, "c", 1, &err), REEL_OK);
  reel_sink_result res;
  assert_int_equal(reel_sink_close(&s, &res, &err), REEL_OK);
  assert_string_equal(res.sha256, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  assert_int_equal(res.bytes, 3);
  /* An empty object is valid too. */
  snprintf(path, sizeof path, "%s/empty", f->dir);
  assert_int_equal(reel_sink_open(path, NULL, &s, &err), REEL_OK);
  assert_int_equal(reel_sink_close(&s, &res, &err), REEL_OK);
  assert_string_equal(res.sha256, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  assert_int_equal(res.bytes, 0);
}

static void test_abort_leaves_nothing(void **state) {
  fixture *f = *state;
  char url[PATH_MAX + 16];
  snprintf(url, sizeof url, "file://%s/gone.mp4", f->dir);
  reel_sink *s = NULL;
  reel_error err = {0};
  assert_int_equal(reel_sink_open(url, NULL, &s, &err), REEL_OK);
  assert_int_equal(reel_sink_write(s, "partial", 7, &err), REEL_OK);
  assert_int_equal(count_entries(f->dir, NULL, 0), 1);
  reel_sink_abort(&s);
  assert_null(s);
  assert_int_equal(count_entries(f->dir, NULL, 0), 0);
  reel_sink_abort(&s); /* NULL is fine */
  reel_sink_abort(NULL);
}

static void test_no_partial_file_before_close(void **state) {
  fixture *f = *state;
  char path[PATH_MAX + 16], tmpname[NAME_MAX + 1];
  snprintf(path, sizeof path, "%s/out.mp4", f->dir);
  /* An older version of the object stays readable, whole, until the new one commits. */
  tu_write_file(path, "old version", 11);
  reel_sink *s = NULL;
  reel_error err = {0};
  assert_int_equal(reel_sink_open(path, NULL, &s, &err), REEL_OK);
  char big[65536];
  memset(big, 'n', sizeof big);
  for (int i = 0; i < 8; i++) assert_int_equal(reel_sink_write(s, big, sizeof big, &err), REEL_OK);
  size_t len = 0;
  char *now = tu_read_file(path, &len);
  assert_int_equal(len, 11);
  assert_memory_equal(now, "old version", 11);
  free(now);
  /* The bytes live in one hidden temporary file in the same directory (same file system: rename is atomic). */
  assert_int_equal(count_entries(f->dir, NULL, 0), 2);
  DIR *d = opendir(f->dir);
  struct dirent *e;
  tmpname[0] = '\0';
  while ((e = readdir(d)))
    if (e->d_name[0] == '.' && strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
      snprintf(tmpname, sizeof tmpname, "%s", e->d_name);
  closedir(d);
  assert_true(strncmp(tmpname, ".out.mp4.reel-", 14) == 0);
  assert_int_equal(reel_sink_close(&s, NULL, &err), REEL_OK);
  now = tu_read_file(path, &len);
  assert_int_equal(len, 8 * sizeof big);
  free(now);
  char tmppath[PATH_MAX + NAME_MAX + 2];
  snprintf(tmppath, sizeof tmppath, "%s/%s", f->dir, tmpname);
  assert_false(exists(tmppath));
  assert_int_equal(count_entries(f->dir, NULL, 0), 1);
}

static void test_seek_read(void **state) {
  fixture *f = *state;
  char path[PATH_MAX + 16];
  snprintf(path, sizeof path, "%s/rw.bin", f->dir);
  reel_sink *s = NULL;
  reel_error err = {0};
  int64_t pos = -1;
  size_t got = 0;
  char buf[32];
  assert_int_equal(reel_sink_open(path, NULL, &s, &err), REEL_OK);
  assert_int_equal(reel_sink_write(s, "hello world", 11, &err), REEL_OK);
  assert_int_equal(reel_sink_seek(s, 0, SEEK_CUR, &pos, &err), REEL_OK);
  assert_int_equal(pos, 11);
  assert_int_equal(reel_sink_seek(s, 0, SEEK_SET, &pos, &err), REEL_OK);
  assert_int_equal(reel_sink_read(s, buf, 5, &got, &err), REEL_OK);
  assert_int_equal(got, 5);
  assert_memory_equal(buf, "hello", 5);
  assert_int_equal(reel_sink_seek(s, 1, SEEK_CUR, &pos, &err), REEL_OK);
  assert_int_equal(pos, 6);
  assert_int_equal(reel_sink_write(s, "WORLD", 5, &err), REEL_OK);
  assert_int_equal(reel_sink_seek(s, -3, SEEK_END, &pos, &err), REEL_OK);
  assert_int_equal(pos, 8);
  assert_int_equal(reel_sink_read(s, buf, sizeof buf, &got, &err), REEL_OK);
  assert_int_equal(got, 3); /* short read at the end */
  assert_memory_equal(buf, "RLD", 3);
  assert_int_equal(reel_sink_read(s, buf, sizeof buf, &got, &err), REEL_OK);
  assert_int_equal(got, 0); /* end of object */
  /* A write past the end leaves a hole of zeros, as a file does. */
  assert_int_equal(reel_sink_seek(s, 2, SEEK_END, &pos, &err), REEL_OK);
  assert_int_equal(reel_sink_write(s, "!", 1, &err), REEL_OK);
  /* Bad seeks are refused without breaking the sink. */
  assert_int_equal(reel_sink_seek(s, -100, SEEK_SET, &pos, &err), REEL_EINVAL);
  reel_error_clear(&err);
  assert_int_equal(reel_sink_seek(s, 0, 42, &pos, &err), REEL_EINVAL);
  assert_string_equal(err.field, "whence");
  reel_error_clear(&err);
  reel_sink_result res;
  assert_int_equal(reel_sink_close(&s, &res, &err), REEL_OK);
  const char expect[] = "hello WORLD\0\0!";
  size_t len = 0;
  char *back = tu_read_file(path, &len);
  assert_int_equal(len, sizeof expect - 1);
  assert_memory_equal(back, expect, sizeof expect - 1);
  free(back);
  /* The digest is of the committed bytes, not of the write history. */
  char hex[REEL_SHA256_HEX];
  hex_digest(expect, sizeof expect - 1, hex);
  assert_string_equal(res.sha256, hex);
  assert_int_equal(res.bytes, sizeof expect - 1);
}

static void expect_bad(const char *url, reel_status code, const char *needle) {
  reel_sink *s = (reel_sink *)(uintptr_t)1;
  reel_error err = {0};
  reel_status st = reel_sink_open(url, NULL, &s, &err);
  if (st != code)
    fail_msg("url '%s': got %s (%s), want %s", url ? url : "(null)", reel_status_name(st), err.msg,
             reel_status_name(code));
  assert_null(s);
  assert_string_equal(err.field, "url");
  if (needle && !strstr(err.msg, needle)) fail_msg("url '%s': message '%s' lacks '%s'", url, err.msg, needle);
}

static void test_bad_urls(void **state) {
  fixture *f = *state;
  char u[2 * PATH_MAX];
  expect_bad(NULL, REEL_EINVAL, "missing");
  expect_bad("", REEL_EINVAL, "empty");
  expect_bad("file://", REEL_EINVAL, "empty path");
  expect_bad("file://relative/out.mp4", REEL_EINVAL, "file://relative/out.mp4");
  expect_bad("file://otherhost/tmp/out.mp4", REEL_EINVAL, "host");
  expect_bad("file:///no-such-dir-for-reel/x/out.mp4", REEL_ENOTFOUND, "'file:///no-such-dir-for-reel/x/out.mp4'");
  expect_bad("/no-such-dir-for-reel/out.mp4", REEL_ENOTFOUND, "directory '/no-such-dir-for-reel' does not exist");
  expect_bad("ftp://host/out.mp4", REEL_EUNSUPPORTED, "unknown scheme 'ftp'");
  snprintf(u, sizeof u, "file://%s/", f->dir);
  expect_bad(u, REEL_EINVAL, "directory");
  snprintf(u, sizeof u, "%s/..", f->dir);
  expect_bad(u, REEL_EINVAL, "directory");
  snprintf(u, sizeof u, "file://%s/bad%%zz.mp4", f->dir);
  expect_bad(u, REEL_EINVAL, "percent-escape");
  snprintf(u, sizeof u, "file://%s/nul%%00.mp4", f->dir);
  expect_bad(u, REEL_EINVAL, "percent-escape");
  snprintf(u, sizeof u, "file://%s/trunc%%4", f->dir);
  expect_bad(u, REEL_EINVAL, "percent-escape");
  snprintf(u, sizeof u, "file://%s/q.mp4?x=1", f->dir);
  expect_bad(u, REEL_EINVAL, "query");
  /* The target is an existing directory. */
  snprintf(u, sizeof u, "%s/sub", f->dir);
  assert_int_equal(mkdir(u, 0755), 0);
  expect_bad(u, REEL_EINVAL, "is a directory");
  /* A parent that is a file. */
  snprintf(u, sizeof u, "%s/plain", f->dir);
  tu_write_file(u, "x", 1);
  snprintf(u, sizeof u, "%s/plain/out.mp4", f->dir);
  expect_bad(u, REEL_ENOTFOUND, "not a directory");
  /* A file name over NAME_MAX. */
  char longname[NAME_MAX + 10];
  memset(longname, 'a', sizeof longname - 1);
  longname[sizeof longname - 1] = '\0';
  snprintf(u, sizeof u, "%s/%s", f->dir, longname);
  expect_bad(u, REEL_ELIMIT, "limit 255");
  /* Nothing was created by any of these. */
  assert_int_equal(count_entries(f->dir, NULL, 0), 2);
}

static void test_url_forms(void **state) {
  fixture *f = *state;
  char u[PATH_MAX + 64], expect[PATH_MAX + 64], first[NAME_MAX + 1];
  reel_sink *s = NULL;
  reel_error err = {0};
  reel_sink_result res;
  /* Percent-escapes are decoded in URLs and re-encoded in the canonical URL. */
  snprintf(u, sizeof u, "file://%s/a%%20b%%23.mp4", f->dir);
  assert_int_equal(reel_sink_open(u, NULL, &s, &err), REEL_OK);
  assert_int_equal(reel_sink_close(&s, &res, &err), REEL_OK);
  snprintf(expect, sizeof expect, "file://%s/a%%20b%%23.mp4", f->real);
  assert_string_equal(res.url, expect);
  snprintf(u, sizeof u, "%s/a b#.mp4", f->dir);
  assert_true(exists(u));
  assert_int_equal(unlink(u), 0);
  /* Plain paths are literal: '%' is a character. */
  snprintf(u, sizeof u, "%s/100%%20.mp4", f->dir);
  assert_int_equal(reel_sink_open(u, NULL, &s, &err), REEL_OK);
  assert_int_equal(reel_sink_close(&s, &res, &err), REEL_OK);
  assert_true(exists(u));
  assert_int_equal(unlink(u), 0);
  /* file://localhost/abs and the one-slash form file:/abs. */
  snprintf(u, sizeof u, "file://localhost%s/l.mp4", f->dir);
  assert_int_equal(reel_sink_open(u, NULL, &s, &err), REEL_OK);
  assert_int_equal(reel_sink_close(&s, &res, &err), REEL_OK);
  snprintf(u, sizeof u, "FILE:%s/one.mp4", f->dir);
  assert_int_equal(reel_sink_open(u, NULL, &s, &err), REEL_OK);
  assert_int_equal(reel_sink_close(&s, &res, &err), REEL_OK);
  snprintf(expect, sizeof expect, "file://%s/one.mp4", f->real);
  assert_string_equal(res.url, expect);
  assert_int_equal(count_entries(f->dir, NULL, 0), 2);
  /* A relative plain path resolves against the working directory. */
  char cwd[PATH_MAX];
  assert_non_null(getcwd(cwd, sizeof cwd));
  assert_int_equal(chdir(f->dir), 0);
  assert_int_equal(reel_sink_open("rel.mp4", NULL, &s, &err), REEL_OK);
  assert_int_equal(reel_sink_close(&s, &res, &err), REEL_OK);
  assert_int_equal(chdir(cwd), 0);
  snprintf(expect, sizeof expect, "file://%s/rel.mp4", f->real);
  assert_string_equal(res.url, expect);
  (void)first;
  char scheme[16];
  assert_string_equal(reel_sink_scheme("s3://b/k", scheme, sizeof scheme), "s3");
  assert_string_equal(reel_sink_scheme("out:1.mp4", scheme, sizeof scheme), "file");
  assert_string_equal(reel_sink_scheme("File:///x", scheme, sizeof scheme), "file");
}

static void test_alloc_failure_injection(void **state) {
  fixture *f = *state;
  char path[PATH_MAX + 16];
  snprintf(path, sizeof path, "%s/inj.bin", f->dir);
  int succeeded = 0;
  for (long k = 0; k < 200 && !succeeded; k++) {
    reel_error err = {0};
    reel_sink *s = NULL;
    reel_sink_result res;
    reel_alloc_fail_after(k, 0);
    reel_status st = reel_sink_open(path, NULL, &s, &err);
    if (st == REEL_OK) {
      /* Rewriting forces the hash-on-close path, which allocates too. */
      int64_t pos;
      if ((st = reel_sink_write(s, "0123456789", 10, &err)) == REEL_OK &&
          (st = reel_sink_seek(s, 2, SEEK_SET, &pos, &err)) == REEL_OK &&
          (st = reel_sink_write(s, "ab", 2, &err)) == REEL_OK)
        st = reel_sink_close(&s, &res, &err);
      else
        reel_sink_abort(&s);
    }
    long failures = reel_alloc_failures();
    reel_alloc_fail_after(-1, 0);
    if (st == REEL_OK) {
      assert_int_equal(failures, 0);
      char hex[REEL_SHA256_HEX];
      hex_digest("01ab456789", 10, hex);
      assert_string_equal(res.sha256, hex);
      succeeded = 1;
    } else {
      assert_int_equal(st, REEL_ENOMEM);
      assert_int_equal(failures, 1);
      assert_null(s);
      /* A failed attempt leaves no file, temporary or final. */
      assert_int_equal(count_entries(f->dir, NULL, 0), 0);
    }
  }
  assert_true(succeeded);
  assert_int_equal(count_entries(f->dir, NULL, 0), 1);
}

static void test_lifetime_rules(void **state) {
  fixture *f = *state;
  reel_error err = {0};
  assert_int_equal(reel_sink_close(NULL, NULL, &err), REEL_EINVAL);
  reel_sink *none = NULL;
  reel_error_clear(&err);
  assert_int_equal(reel_sink_close(&none, NULL, &err), REEL_EINVAL);
  char path[PATH_MAX + 16];
  snprintf(path, sizeof path, "%s/x", f->dir);
  reel_sink *s = NULL;
  reel_error_clear(&err);
  assert_int_equal(reel_sink_open(path, NULL, &s, &err), REEL_OK);
  /* A failed operation poisons the sink: further writes are refused and close does not commit. */
  s->failed = 1;
  assert_int_equal(reel_sink_write(s, "x", 1, &err), REEL_ESTATE);
  reel_error_clear(&err);
  assert_int_equal(reel_sink_close(&s, NULL, &err), REEL_ESTATE);
  assert_null(s);
  assert_int_equal(count_entries(f->dir, NULL, 0), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
      cmocka_unit_test_setup_teardown(test_sha256_known_value, setup, teardown),
      cmocka_unit_test_setup_teardown(test_abort_leaves_nothing, setup, teardown),
      cmocka_unit_test_setup_teardown(test_no_partial_file_before_close, setup, teardown),
      cmocka_unit_test_setup_teardown(test_seek_read, setup, teardown),
      cmocka_unit_test_setup_teardown(test_bad_urls, setup, teardown),
      cmocka_unit_test_setup_teardown(test_url_forms, setup, teardown),
      cmocka_unit_test_setup_teardown(test_alloc_failure_injection, setup, teardown),
      cmocka_unit_test_setup_teardown(test_lifetime_rules, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
