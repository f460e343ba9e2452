/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Append-only journal with per-record CRC-32C, group commit, torn-tail recovery
 * and compaction by snapshot + atomic rename. See reel/journal.h.
 */
#include "reel/journal.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/select.h>
#include <sys/mman.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "reel/alloc.h"

struct reel_journal {
  char *dir;
  char *path;     /* DIR/journal.log */
  char *tmp_path; /* DIR/journal.tmp */
  int fd;
  int lock_fd;
  uint64_t size;
  uint64_t commits;
  int nosync;
  /* Pending records. */
  unsigned char *buf;
  size_t len, cap;
  size_t pending;
  int compacting;
  /* Asynchronous commit: the background thread writes `fly` (the group in flight). */
  pthread_t thread;
  int thread_started;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int efd;        /* signalled when the group in flight is done */
  int busy;       /* a group is in flight (owned by the caller's thread) */
  int work, stop; /* guarded by mu */
  int done;       /* guarded by mu: the thread finished the group */
  int fly_errno;  /* guarded by mu: 0 or the errno of a failed write/sync */
  int fly_sync_failed;
  unsigned char *fly;
  size_t fly_len, fly_cap, fly_records;
};

static void put_u32le(unsigned char *p, uint32_t v) {
  p[0] = (unsigned char)v;
  p[1] = (unsigned char)(v >> 8);
  p[2] = (unsigned char)(v >> 16);
  p[3] = (unsigned char)(v >> 24);
}

static uint32_t get_u32le(const unsigned char *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static char *join_path(const char *dir, const char *name) {
  size_t n = strlen(dir) + strlen(name) + 2;
  char *s = reel_malloc(n);
  if (s) snprintf(s, n, "%s/%s", dir, name);
  return s;
}

static reel_status write_all(int fd, const void *data, size_t n, const char *what, reel_error *err) {
  const unsigned char *p = data;
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return reel_error_set(err, REEL_EIO, what, "write failed: %s", strerror(errno));
    }
    p += w;
    n -= (size_t)w;
  }
  return REEL_OK;
}

static reel_status fsync_dir(const char *dir, reel_error *err) {
  int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return reel_error_set(err, REEL_EIO, dir, "cannot open directory: %s", strerror(errno));
  int rc = fsync(fd);
  int e = errno;
  close(fd);
  if (rc != 0) return reel_error_set(err, REEL_EIO, dir, "fsync of directory failed: %s", strerror(e));
  return REEL_OK;
}

/* Nonzero when bytes [off, size) are all zero (a tail a file system may leave after a crash). */
static int all_zero(const unsigned char *p, uint64_t off, uint64_t size) {
  for (uint64_t i = off; i < size; i++)
    if (p[i]) return 0;
  return 1;
}

/*
 * Walks the records of a mapped file. Returns the offset where valid data ends in
 * *valid_end; EFORMAT for corruption in the middle.
 */
static reel_status replay_map(const unsigned char *m, uint64_t size, reel_journal_replay_fn replay, void *ud,
                              uint64_t *valid_end, uint64_t *records, reel_error *err) {
  uint64_t off = REEL_JOURNAL_MAGIC_LEN;
  char field[64];
  *records = 0;
  while (off < size) {
    if (size - off < REEL_JOURNAL_RECORD_HEADER) break; /* torn header */
    uint32_t len = get_u32le(m + off);
    uint32_t crc = get_u32le(m + off + 4);
    if (len == 0 || len > REEL_JOURNAL_MAX_RECORD) {
      if (all_zero(m, off, size)) break;
      snprintf(field, sizeof field, "journal.log@%llu", (unsigned long long)off);
      return reel_error_set(err, REEL_EFORMAT, field, "record length %u is outside 1..%u and data follows", len,
                            REEL_JOURNAL_MAX_RECORD);
    }
    uint64_t end = off + REEL_JOURNAL_RECORD_HEADER + len;
    if (end > size) break; /* torn payload */
    const unsigned char *payload = m + off + REEL_JOURNAL_RECORD_HEADER;
    if (reel_crc32c(0, payload, len) != crc) {
      if (end == size || all_zero(m, end, size)) break; /* torn last record */
      snprintf(field, sizeof field, "journal.log@%llu", (unsigned long long)off);
      return reel_error_set(err, REEL_EFORMAT, field, "checksum mismatch in a record followed by %llu more bytes",
                            (unsigned long long)(size - end));
    }
    if (replay) {
      reel_status st = replay(ud, (const char *)payload, len, err);
      if (st) {
        snprintf(field, sizeof field, "journal.log@%llu", (unsigned long long)off);
        reel_error_prefix_field(err, field, ':');
        return st;
      }
    }
    (*records)++;
    off = end;
  }
  *valid_end = off;
  return REEL_OK;
}

reel_status reel_journal_open(const char *dir, reel_journal_replay_fn replay, void *ud, reel_journal_info *info,
                              reel_journal **out, reel_error *err) {
  reel_status st = REEL_OK;
  void *map = MAP_FAILED;
  struct stat sb;
  *out = NULL;
  reel_journal_info inf;
  memset(&inf, 0, sizeof inf);
  reel_journal *j = reel_calloc(1, sizeof *j);
  if (!j) return reel_error_set(err, REEL_ENOMEM, "journal", "out of memory");
  j->fd = j->lock_fd = j->efd = -1;
  pthread_mutex_init(&j->mu, NULL);
  pthread_cond_init(&j->cv, NULL);
  j->dir = reel_strdup(dir);
  j->path = join_path(dir, "journal.log");
  j->tmp_path = join_path(dir, "journal.tmp");
  char *lock_path = join_path(dir, "lock");
  if (!j->dir || !j->path || !j->tmp_path || !lock_path) {
    st = reel_error_set(err, REEL_ENOMEM, "journal", "out of memory");
    goto fail;
  }
  j->lock_fd = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (j->lock_fd < 0) {
    st = reel_error_set(err, errno == ENOENT ? REEL_ENOTFOUND : REEL_EIO, dir, "cannot open %s: %s", lock_path,
                        strerror(errno));
    goto fail;
  }
  if (flock(j->lock_fd, LOCK_EX | LOCK_NB) != 0) {
    st = reel_error_set(err, REEL_ESTATE, dir, "journal is in use by another broker (lock %s held)", lock_path);
    goto fail;
  }
  j->fd = open(j->path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (j->fd < 0) {
    st = reel_error_set(err, REEL_EIO, j->path, "cannot open: %s", strerror(errno));
    goto fail;
  }
  if (fstat(j->fd, &sb) != 0) {
    st = reel_error_set(err, REEL_EIO, j->path, "cannot stat: %s", strerror(errno));
    goto fail;
  }
  uint64_t size = (uint64_t)sb.st_size;
  uint64_t valid_end = REEL_JOURNAL_MAGIC_LEN;
  if (size < REEL_JOURNAL_MAGIC_LEN) {
    /* New, or torn while the magic was written: start over only if what is there is a prefix of it. */
    char head[REEL_JOURNAL_MAGIC_LEN];
    ssize_t r = size ? pread(j->fd, head, (size_t)size, 0) : 0;
    if (r != (ssize_t)size || memcmp(head, REEL_JOURNAL_MAGIC, (size_t)size) != 0) {
      st = reel_error_set(err, REEL_EFORMAT, j->path, "not a reel journal (%llu bytes, bad magic)",
                          (unsigned long long)size);
      goto fail;
    }
    if (ftruncate(j->fd, 0) != 0 ||
        pwrite(j->fd, REEL_JOURNAL_MAGIC, REEL_JOURNAL_MAGIC_LEN, 0) != REEL_JOURNAL_MAGIC_LEN ||
        fdatasync(j->fd) != 0) {
      st = reel_error_set(err, REEL_EIO, j->path, "cannot initialise: %s", strerror(errno));
      goto fail;
    }
    if ((st = fsync_dir(dir, err))) goto fail;
    inf.created = size == 0;
    inf.truncated_bytes = size;
  } else {
    map = mmap(NULL, (size_t)size, PROT_READ, MAP_PRIVATE, j->fd, 0);
    if (map == MAP_FAILED) {
      st = reel_error_set(err, REEL_EIO, j->path, "cannot map: %s", strerror(errno));
      goto fail;
    }
    if (memcmp(map, REEL_JOURNAL_MAGIC, REEL_JOURNAL_MAGIC_LEN) != 0) {
      st = reel_error_set(err, REEL_EFORMAT, j->path, "not a reel journal (bad magic)");
      goto fail;
    }
    if ((st = replay_map(map, size, replay, ud, &valid_end, &inf.records_replayed, err))) goto fail;
    munmap(map, (size_t)size);
    map = MAP_FAILED;
    if (valid_end < size) {
      inf.truncated_bytes = size - valid_end;
      if (ftruncate(j->fd, (off_t)valid_end) != 0 || fdatasync(j->fd) != 0) {
        st = reel_error_set(err, REEL_EIO, j->path, "cannot truncate torn record: %s", strerror(errno));
        goto fail;
      }
    }
  }
  if (lseek(j->fd, (off_t)valid_end, SEEK_SET) < 0) {
    st = reel_error_set(err, REEL_EIO, j->path, "cannot seek: %s", strerror(errno));
    goto fail;
  }
  j->size = valid_end;
  inf.bytes_replayed = valid_end;
  if (info) *info = inf;
  reel_free(lock_path);
  *out = j;
  return REEL_OK;
fail:
  if (map != MAP_FAILED) munmap(map, (size_t)sb.st_size);
  reel_free(lock_path);
  reel_journal_close(&j);
  return st;
}

void reel_journal_close(reel_journal **jp) {
  if (!jp || !*jp) return;
  reel_journal *j = *jp;
  if (j->busy) reel_journal_commit_finish(j, 1, NULL);
  if (j->thread_started) {
    pthread_mutex_lock(&j->mu);
    j->stop = 1;
    pthread_cond_signal(&j->cv);
    pthread_mutex_unlock(&j->mu);
    pthread_join(j->thread, NULL);
  }
  if (j->efd >= 0) close(j->efd);
  reel_free(j->fly);
  pthread_cond_destroy(&j->cv);
  pthread_mutex_destroy(&j->mu);
  if (j->fd >= 0) close(j->fd);
  if (j->lock_fd >= 0) close(j->lock_fd); /* releases the flock */
  reel_free(j->buf);
  reel_free(j->dir);
  reel_free(j->path);
  reel_free(j->tmp_path);
  reel_free(j);
  *jp = NULL;
}

reel_status reel_journal_append(reel_journal *j, const void *data, size_t len, reel_error *err) {
  if (len == 0 || len > REEL_JOURNAL_MAX_RECORD)
    return reel_error_set(err, REEL_ELIMIT, "journal.record", "is %zu bytes, must be 1..%u", len,
                          REEL_JOURNAL_MAX_RECORD);
  size_t need = j->len + REEL_JOURNAL_RECORD_HEADER + len;
  if (need > j->cap) {
    size_t cap = j->cap ? j->cap : 65536;
    while (cap < need) cap *= 2;
    unsigned char *nb = reel_realloc(j->buf, cap);
    if (!nb) return reel_error_set(err, REEL_ENOMEM, "journal", "cannot buffer %zu bytes", need);
    j->buf = nb;
    j->cap = cap;
  }
  put_u32le(j->buf + j->len, (uint32_t)len);
  put_u32le(j->buf + j->len + 4, reel_crc32c(0, data, len));
  memcpy(j->buf + j->len + REEL_JOURNAL_RECORD_HEADER, data, len);
  j->len = need;
  j->pending++;
  return REEL_OK;
}

size_t reel_journal_pending(const reel_journal *j) { return j->pending; }
uint64_t reel_journal_size(const reel_journal *j) { return j->size; }
uint64_t reel_journal_commits(const reel_journal *j) { return j->commits; }
void reel_journal_set_nosync(reel_journal *j, int nosync) { j->nosync = nosync; }

static void *commit_thread(void *arg) {
  reel_journal *j = arg;
  pthread_mutex_lock(&j->mu);
  for (;;) {
    while (!j->work && !j->stop) pthread_cond_wait(&j->cv, &j->mu);
    if (j->stop) break;
    j->work = 0;
    pthread_mutex_unlock(&j->mu);
    /* fly/fly_len belong to this thread until `done` is set. */
    int e = 0, sync_failed = 0;
    const unsigned char *p = j->fly;
    size_t n = j->fly_len;
    while (n > 0) {
      ssize_t w = write(j->fd, p, n);
      if (w < 0) {
        if (errno == EINTR) continue;
        e = errno;
        break;
      }
      p += w;
      n -= (size_t)w;
    }
    if (!e && !j->nosync && fdatasync(j->fd) != 0) {
      e = errno;
      sync_failed = 1;
    }
    pthread_mutex_lock(&j->mu);
    j->fly_errno = e;
    j->fly_sync_failed = sync_failed;
    j->done = 1;
    uint64_t one = 1;
    ssize_t r = write(j->efd, &one, sizeof one);
    (void)r;
  }
  pthread_mutex_unlock(&j->mu);
  return NULL;
}

int reel_journal_commit_busy(const reel_journal *j) { return j->busy; }
int reel_journal_commit_fd(const reel_journal *j) { return j->efd; }

reel_status reel_journal_commit_start(reel_journal *j, reel_error *err) {
  if (j->busy) return reel_error_set(err, REEL_ESTATE, "journal", "a commit is already in flight");
  if (j->pending == 0) return REEL_OK;
  if (!j->thread_started) {
    j->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (j->efd < 0) return reel_error_set(err, REEL_EIO, "journal", "eventfd: %s", strerror(errno));
    if (pthread_create(&j->thread, NULL, commit_thread, j) != 0) {
      close(j->efd);
      j->efd = -1;
      return reel_error_set(err, REEL_EINTERNAL, "journal", "cannot start the commit thread");
    }
    j->thread_started = 1;
  }
  /* Swap buffers: the pending group flies, a new group starts in the old fly buffer. */
  unsigned char *b = j->buf;
  size_t cap = j->cap;
  j->buf = j->fly;
  j->cap = j->fly_cap;
  j->fly = b;
  j->fly_cap = cap;
  j->fly_len = j->len;
  j->fly_records = j->pending;
  j->len = 0;
  j->pending = 0;
  j->busy = 1;
  pthread_mutex_lock(&j->mu);
  j->done = 0;
  j->work = 1;
  pthread_cond_signal(&j->cv);
  pthread_mutex_unlock(&j->mu);
  return REEL_OK;
}

reel_status reel_journal_commit_finish(reel_journal *j, int wait, reel_error *err) {
  if (!j->busy) return REEL_OK;
  uint64_t v;
  for (;;) {
    pthread_mutex_lock(&j->mu);
    int done = j->done, e = j->fly_errno, sync_failed = j->fly_sync_failed;
    pthread_mutex_unlock(&j->mu);
    if (done) {
      ssize_t r = read(j->efd, &v, sizeof v);
      (void)r;
      j->busy = 0;
      if (e)
        return reel_error_set(err, REEL_EIO, j->path, "%s failed: %s", sync_failed ? "fdatasync" : "write",
                              strerror(e));
      j->size += j->fly_len;
      j->commits++;
      j->fly_len = 0;
      if (j->fly_cap > (8u << 20)) {
        reel_free(j->fly);
        j->fly = NULL;
        j->fly_cap = 0;
      }
      return REEL_OK;
    }
    if (!wait) return REEL_EAGAIN;
    fd_set rs;
    FD_ZERO(&rs);
    FD_SET(j->efd, &rs);
    select(j->efd + 1, &rs, NULL, NULL, NULL);
  }
}

reel_status reel_journal_commit(reel_journal *j, reel_error *err) {
  reel_status st = reel_journal_commit_finish(j, 1, err);
  if (st) return st;
  if (j->pending == 0) return REEL_OK;
  st = write_all(j->fd, j->buf, j->len, j->path, err);
  if (st) return st;
  if (!j->nosync && fdatasync(j->fd) != 0)
    return reel_error_set(err, REEL_EIO, j->path, "fdatasync failed: %s", strerror(errno));
  j->size += j->len;
  j->len = 0;
  j->pending = 0;
  j->commits++;
  /* Do not let one burst pin a huge buffer. */
  if (j->cap > (8u << 20)) {
    reel_free(j->buf);
    j->buf = NULL;
    j->cap = 0;
  }
  return REEL_OK;
}

reel_status reel_journal_compact(reel_journal *j, reel_journal_snapshot_fn snapshot, void *ud, reel_error *err) {
  reel_status fst = reel_journal_commit_finish(j, 1, err);
  if (fst) return fst;
  if (j->pending || j->compacting)
    return reel_error_set(err, REEL_ESTATE, "journal", "compaction needs an empty commit buffer");
  reel_status st = REEL_OK;
  int fd = open(j->tmp_path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return reel_error_set(err, REEL_EIO, j->tmp_path, "cannot create: %s", strerror(errno));
  j->compacting = 1;
  if ((st = write_all(fd, REEL_JOURNAL_MAGIC, REEL_JOURNAL_MAGIC_LEN, j->tmp_path, err))) goto fail;
  if ((st = snapshot(ud, j, err))) goto fail;
  if ((st = write_all(fd, j->buf, j->len, j->tmp_path, err))) goto fail;
  if (fdatasync(fd) != 0) {
    st = reel_error_set(err, REEL_EIO, j->tmp_path, "fdatasync failed: %s", strerror(errno));
    goto fail;
  }
  if (rename(j->tmp_path, j->path) != 0) {
    st = reel_error_set(err, REEL_EIO, j->path, "cannot rename %s over it: %s", j->tmp_path, strerror(errno));
    goto fail;
  }
  /* From here the new file is the journal: a failed directory fsync is reported but the swap stands. */
  close(j->fd);
  j->fd = fd;
  j->size = REEL_JOURNAL_MAGIC_LEN + j->len;
  j->len = 0;
  j->pending = 0;
  j->compacting = 0;
  j->commits++;
  return fsync_dir(j->dir, err);
fail:
  close(fd);
  unlink(j->tmp_path);
  j->len = 0;
  j->pending = 0;
  j->compacting = 0;
  return st;
}
