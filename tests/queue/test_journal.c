/* SPDX-License-Identifier: Apache-2.0 */
/* Journal: CRC-32C, append/commit/replay, torn tails, mid-file corruption, compaction, locking. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "reel/alloc.h"
#include "reel/journal.h"
#include "testutil.h"

typedef struct {
  int n;
  char recs[64][64];
} seen;

static reel_status collect(void *ud, const char *data, size_t len, reel_error *err) {
  (void)err;
  seen *s = ud;
  if (s->n < 64 && len < 64) {
    memcpy(s->recs[s->n], data, len);
    s->recs[s->n][len] = 0;
  }
  s->n++;
  return REEL_OK;
}

static void journal_path(const char *dir, char *buf, size_t n) { snprintf(buf, n, "%s/journal.log", dir); }

static long file_size(const char *path) {
  struct stat sb;
  return stat(path, &sb) == 0 ? (long)sb.st_size : -1;
}

/* Writes records "rec-0".."rec-(n-1)", committing every `per_commit`. */
static void write_records(const char *dir, int n, int per_commit) {
  reel_journal *j = NULL;
  reel_error err;
  reel_error_clear(&err);
  assert_int_equal(reel_journal_open(dir, NULL, NULL, NULL, &j, &err), REEL_OK);
  for (int i = 0; i < n; i++) {
    char rec[32];
    int len = snprintf(rec, sizeof rec, "rec-%d", i);
    assert_int_equal(reel_journal_append(j, rec, (size_t)len, &err), REEL_OK);
    if ((i + 1) % per_commit == 0) assert_int_equal(reel_journal_commit(j, &err), REEL_OK);
  }
  assert_int_equal(reel_journal_commit(j, &err), REEL_OK);
  reel_journal_close(&j);
  assert_null(j);
}

static void test_crc32c(void **state) {
  (void)state;
  assert_int_equal(reel_crc32c(0, "123456789", 9), 0xe3069283u);
  assert_int_equal(reel_crc32c_portable(0, "123456789", 9), 0xe3069283u);
  unsigned char buf[1000];
  for (int i = 0; i < 1000; i++) buf[i] = (unsigned char)(i * 7 + 3);
  for (size_t n = 0; n < 1000; n += 37) assert_int_equal(reel_crc32c(0, buf, n), reel_crc32c_portable(0, buf, n));
  /* Incremental equals one-shot. */
  assert_int_equal(reel_crc32c(reel_crc32c(0, buf, 300), buf + 300, 700), reel_crc32c(0, buf, 1000));
}

static void test_roundtrip(void **state) {
  (void)state;
  char dir[256];
  tu_mkdtemp(dir, sizeof dir);
  write_records(dir, 10, 3);
  seen s = {0};
  reel_journal *j = NULL;
  reel_journal_info info;
  reel_error err;
  reel_error_clear(&err);
  assert_int_equal(reel_journal_open(dir, collect, &s, &info, &j, &err), REEL_OK);
  assert_int_equal(s.n, 10);
  assert_string_equal(s.recs[0], "rec-0");
  assert_string_equal(s.recs[9], "rec-9");
  assert_int_equal(info.records_replayed, 10);
  assert_int_equal(info.truncated_bytes, 0);
  assert_int_equal(info.created, 0);
  /* Appending after replay continues the file. */
  assert_int_equal(reel_journal_append(j, "more", 4, &err), REEL_OK);
  assert_int_equal(reel_journal_pending(j), 1);
  assert_int_equal(reel_journal_commit(j, &err), REEL_OK);
  assert_int_equal(reel_journal_pending(j), 0);
  reel_journal_close(&j);
  memset(&s, 0, sizeof s);
  assert_int_equal(reel_journal_open(dir, collect, &s, NULL, &j, &err), REEL_OK);
  assert_int_equal(s.n, 11);
  assert_string_equal(s.recs[10], "more");
  reel_journal_close(&j);
  tu_rmtree(dir);
}

static void test_group_commit_counts(void **state) {
  (void)state;
  char dir[256];
  tu_mkdtemp(dir, sizeof dir);
  reel_journal *j = NULL;
  reel_error err;
  reel_error_clear(&err);
  assert_int_equal(reel_journal_open(dir, NULL, NULL, NULL, &j, &err), REEL_OK);
  for (int i = 0; i < 100; i++) assert_int_equal(reel_journal_append(j, "x", 1, &err), REEL_OK);
  assert_int_equal(reel_journal_commit(j, &err), REEL_OK);
  assert_int_equal(reel_journal_commit(j, &err), REEL_OK); /* nothing pending: no second sync */
  assert_int_equal(reel_journal_commits(j), 1);
  assert_int_equal(reel_journal_size(j), 8 + 100 * 9);
  reel_journal_close(&j);
  tu_rmtree(dir);
}

static void test_torn_tail(void **state) {
  (void)state;
  char dir[256], path[300];
  tu_mkdtemp(dir, sizeof dir);
  journal_path(dir, path, sizeof path);
  write_records(dir, 5, 5);
  long full = file_size(path);
  /* Cut the last record in the middle of its payload ("rec-4" is 5 bytes). */
  assert_int_equal(truncate(path, full - 2), 0);
  seen s = {0};
  reel_journal *j = NULL;
  reel_journal_info info;
  reel_error err;
  reel_error_clear(&err);
  assert_int_equal(reel_journal_open(dir, collect, &s, &info, &j, &err), REEL_OK);
  assert_int_equal(s.n, 4);
  assert_int_equal(info.truncated_bytes, 8 + 5 - 2);
  reel_journal_close(&j);
  assert_int_equal(file_size(path), full - 13);
  /* Cut inside the header of the fourth record: 1 of its 8 header bytes remains. */
  assert_int_equal(truncate(path, full - 13 - 12), 0);
  memset(&s, 0, sizeof s);
  assert_int_equal(reel_journal_open(dir, collect, &s, &info, &j, &err), REEL_OK);
  assert_int_equal(s.n, 3);
  assert_int_equal(info.truncated_bytes, 1);
  reel_journal_close(&j);
  tu_rmtree(dir);
}

static void flip_byte(const char *path, long off) {
  FILE *f = fopen(path, "r+b");
  assert_non_null(f);
  assert_int_equal(fseek(f, off, SEEK_SET), 0);
  int c = fgetc(f);
  assert_int_equal(fseek(f, off, SEEK_SET), 0);
  fputc(c ^ 0x40, f);
  fclose(f);
}

static void test_crc_mismatch(void **state) {
  (void)state;
  char dir[256], path[300];
  tu_mkdtemp(dir, sizeof dir);
  journal_path(dir, path, sizeof path);
  write_records(dir, 5, 1);
  long full = file_size(path);
  /* A bad checksum in the last record: a torn write, dropped. */
  flip_byte(path, full - 1);
  seen s = {0};
  reel_journal *j = NULL;
  reel_journal_info info;
  reel_error err;
  reel_error_clear(&err);
  assert_int_equal(reel_journal_open(dir, collect, &s, &info, &j, &err), REEL_OK);
  assert_int_equal(s.n, 4);
  assert_int_equal(info.truncated_bytes, 13);
  reel_journal_close(&j);
  /* A bad checksum in the middle: corruption, open fails naming the offset, file untouched. */
  write_records(dir, 0, 1);
  long size = file_size(path);
  flip_byte(path, 8 + 13 + 8 + 2); /* payload of the second record */
  memset(&s, 0, sizeof s);
  reel_error_clear(&err);
  assert_int_equal(reel_journal_open(dir, collect, &s, NULL, &j, &err), REEL_EFORMAT);
  assert_null(j);
  assert_string_equal(err.field, "journal.log@21");
  assert_non_null(strstr(err.msg, "checksum"));
  assert_int_equal(file_size(path), size);
  tu_rmtree(dir);
}

static void test_zero_tail_and_bad_magic(void **state) {
  (void)state;
  char dir[256], path[300];
  tu_mkdtemp(dir, sizeof dir);
  journal_path(dir, path, sizeof path);
  write_records(dir, 3, 3);
  long full = file_size(path);
  /* Zeros after the last record (a crash after the size grew): dropped. */
  FILE *f = fopen(path, "ab");
  char zeros[100] = {0};
  fwrite(zeros, 1, sizeof zeros, f);
  fclose(f);
  seen s = {0};
  reel_journal *j = NULL;
  reel_error err;
  reel_error_clear(&err);
  assert_int_equal(reel_journal_open(dir, collect, &s, NULL, &j, &err), REEL_OK);
  assert_int_equal(s.n, 3);
  reel_journal_close(&j);
  assert_int_equal(file_size(path), full);
  /* Not a journal. */
  tu_write_file(path, "hello world, not a journal", 26);
  reel_error_clear(&err);
  assert_int_equal(reel_journal_open(dir, collect, &s, NULL, &j, &err), REEL_EFORMAT);
  assert_non_null(strstr(err.msg, "magic"));
  /* A prefix of the magic (torn at creation) starts a new journal. */
  tu_write_file(path, "REEL", 4);
  reel_error_clear(&err);
  memset(&s, 0, sizeof s);
  assert_int_equal(reel_journal_open(dir, collect, &s, NULL, &j, &err), REEL_OK);
  assert_int_equal(s.n, 0);
  reel_journal_close(&j);
  tu_rmtree(dir);
}

typedef struct {
  int keep_from;
} snap_ctx;

static reel_status snapshot(void *ud, reel_journal *j, reel_error *err) {
  snap_ctx *c = ud;
  for (int i = c->keep_from; i < 100; i++) {
    char rec[32];
    int len = snprintf(rec, sizeof rec, "live-%d", i);
    reel_status st = reel_journal_append(j, rec, (size_t)len, err);
    if (st) return st;
  }
  return REEL_OK;
}

static reel_status failing_snapshot(void *ud, reel_journal *j, reel_error *err) {
  (void)ud;
  reel_journal_append(j, "partial", 7, err);
  return reel_error_set(err, REEL_ENOMEM, "snapshot", "simulated");
}

static void test_compaction(void **state) {
  (void)state;
  char dir[256], path[300];
  tu_mkdtemp(dir, sizeof dir);
  journal_path(dir, path, sizeof path);
  write_records(dir, 1000, 100);
  long before = file_size(path);
  reel_journal *j = NULL;
  reel_error err;
  reel_error_clear(&err);
  assert_int_equal(reel_journal_open(dir, NULL, NULL, NULL, &j, &err), REEL_OK);
  /* Pending records block compaction. */
  assert_int_equal(reel_journal_append(j, "p", 1, &err), REEL_OK);
  assert_int_equal(reel_journal_compact(j, NULL, NULL, &err), REEL_ESTATE);
  assert_int_equal(reel_journal_commit(j, &err), REEL_OK);
  /* A failing snapshot leaves the old journal in place. */
  reel_error_clear(&err);
  assert_int_equal(reel_journal_compact(j, failing_snapshot, NULL, &err), REEL_ENOMEM);
  assert_int_equal(file_size(path), before + 9);
  char tmp[320];
  snprintf(tmp, sizeof tmp, "%s/journal.tmp", dir);
  assert_int_equal(access(tmp, F_OK), -1);
  snap_ctx c = {90};
  reel_error_clear(&err);
  assert_int_equal(reel_journal_compact(j, snapshot, &c, &err), REEL_OK);
  assert_true(file_size(path) < before / 10);
  assert_int_equal((long)reel_journal_size(j), file_size(path));
  /* Appends after compaction land in the new file. */
  assert_int_equal(reel_journal_append(j, "after", 5, &err), REEL_OK);
  assert_int_equal(reel_journal_commit(j, &err), REEL_OK);
  reel_journal_close(&j);
  seen s = {0};
  assert_int_equal(reel_journal_open(dir, collect, &s, NULL, &j, &err), REEL_OK);
  assert_int_equal(s.n, 11);
  assert_string_equal(s.recs[0], "live-90");
  assert_string_equal(s.recs[9], "live-99");
  assert_string_equal(s.recs[10], "after");
  reel_journal_close(&j);
  tu_rmtree(dir);
}

static void test_lock_and_limits(void **state) {
  (void)state;
  char dir[256];
  tu_mkdtemp(dir, sizeof dir);
  reel_journal *a = NULL, *b = NULL;
  reel_error err;
  reel_error_clear(&err);
  assert_int_equal(reel_journal_open(dir, NULL, NULL, NULL, &a, &err), REEL_OK);
  assert_int_equal(reel_journal_open(dir, NULL, NULL, NULL, &b, &err), REEL_ESTATE);
  assert_null(b);
  assert_non_null(strstr(err.msg, "in use"));
  reel_error_clear(&err);
  assert_int_equal(reel_journal_append(a, "", 0, &err), REEL_ELIMIT);
  assert_string_equal(err.field, "journal.record");
  reel_journal_close(&a);
  reel_error_clear(&err);
  assert_int_equal(reel_journal_open(dir, NULL, NULL, NULL, &b, &err), REEL_OK);
  reel_journal_close(&b);
  reel_error_clear(&err);
  assert_int_equal(reel_journal_open("/nonexistent/dir/x", NULL, NULL, NULL, &b, &err), REEL_ENOTFOUND);
  tu_rmtree(dir);
}

static reel_status reject_third(void *ud, const char *data, size_t len, reel_error *err) {
  int *n = ud;
  (void)data;
  (void)len;
  if (++*n == 3) return reel_error_set(err, REEL_EFORMAT, "op", "bad record");
  return REEL_OK;
}

static void test_replay_error_and_alloc_failures(void **state) {
  (void)state;
  char dir[256];
  tu_mkdtemp(dir, sizeof dir);
  write_records(dir, 5, 5);
  int n = 0;
  reel_journal *j = NULL;
  reel_error err;
  reel_error_clear(&err);
  assert_int_equal(reel_journal_open(dir, reject_third, &n, NULL, &j, &err), REEL_EFORMAT);
  assert_string_equal(err.field, "journal.log@34:op");
  /* Every allocation of open + append fails cleanly. */
  for (long k = 0; k < 8; k++) {
    reel_alloc_fail_after(k, 0);
    reel_error_clear(&err);
    reel_status st = reel_journal_open(dir, NULL, NULL, NULL, &j, &err);
    if (st == REEL_OK) {
      st = reel_journal_append(j, "x", 1, &err);
      reel_journal_close(&j);
    }
    reel_alloc_fail_after(-1, 0);
    assert_true(st == REEL_OK || st == REEL_ENOMEM);
  }
  tu_rmtree(dir);
}

static void test_async_commit(void **state) {
  (void)state;
  char dir[256];
  tu_mkdtemp(dir, sizeof dir);
  reel_journal *j = NULL;
  reel_error err;
  reel_error_clear(&err);
  assert_int_equal(reel_journal_open(dir, NULL, NULL, NULL, &j, &err), REEL_OK);
  assert_int_equal(reel_journal_commit_fd(j), -1);
  assert_int_equal(reel_journal_commit_start(j, &err), REEL_OK); /* nothing pending: no-op */
  assert_false(reel_journal_commit_busy(j));
  for (int round = 0; round < 50; round++) {
    char rec[32];
    int len = snprintf(rec, sizeof rec, "group-%d", round);
    assert_int_equal(reel_journal_append(j, rec, (size_t)len, &err), REEL_OK);
    assert_int_equal(reel_journal_commit_start(j, &err), REEL_OK);
    assert_true(reel_journal_commit_busy(j));
    assert_true(reel_journal_commit_fd(j) >= 0);
    /* Records appended while the group flies form the next group. */
    len = snprintf(rec, sizeof rec, "next-%d", round);
    assert_int_equal(reel_journal_append(j, rec, (size_t)len, &err), REEL_OK);
    reel_error_clear(&err);
    assert_int_equal(reel_journal_commit_start(j, &err), REEL_ESTATE);
    reel_error_clear(&err);
    reel_status st;
    while ((st = reel_journal_commit_finish(j, round % 2, &err)) == REEL_EAGAIN) {
    }
    assert_int_equal(st, REEL_OK);
    assert_false(reel_journal_commit_busy(j));
    assert_int_equal(reel_journal_pending(j), 1);
    assert_int_equal(reel_journal_commit(j, &err), REEL_OK); /* synchronous commit of the next group */
  }
  assert_int_equal(reel_journal_commits(j), 100);
  reel_journal_close(&j);
  seen s = {0};
  assert_int_equal(reel_journal_open(dir, collect, &s, NULL, &j, &err), REEL_OK);
  assert_int_equal(s.n, 100);
  assert_string_equal(s.recs[0], "group-0");
  assert_string_equal(s.recs[1], "next-0");
  assert_string_equal(s.recs[63], "next-31");
  /* A commit still in flight is completed by close. */
  assert_int_equal(reel_journal_append(j, "last", 4, &err), REEL_OK);
  assert_int_equal(reel_journal_commit_start(j, &err), REEL_OK);
  reel_journal_close(&j);
  memset(&s, 0, sizeof s);
  assert_int_equal(reel_journal_open(dir, collect, &s, NULL, &j, &err), REEL_OK);
  assert_int_equal(s.n, 101);
  reel_journal_close(&j);
  tu_rmtree(dir);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_crc32c),
      cmocka_unit_test(test_roundtrip),
      cmocka_unit_test(test_group_commit_counts),
      cmocka_unit_test(test_torn_tail),
      cmocka_unit_test(test_crc_mismatch),
      cmocka_unit_test(test_zero_tail_and_bad_magic),
      cmocka_unit_test(test_compaction),
      cmocka_unit_test(test_lock_and_limits),
      cmocka_unit_test(test_replay_error_and_alloc_failures),
      cmocka_unit_test(test_async_commit),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
