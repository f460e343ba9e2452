/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The file:// sink. Bytes go to a hidden temporary file in the destination
 * directory (created O_EXCL with a random suffix); close fsyncs it, renames it
 * over the final name and fsyncs the directory, so a reader sees either the old
 * object or the whole new one, never a partial file, and a crash after close
 * returned cannot lose it. Abort unlinks the temporary file.
 *
 * The SHA-256 of the object is computed while writing as long as every write
 * appends; a muxer that seeks back and rewrites (MP4 faststart) makes close hash
 * the finished file instead, so the digest is always of the committed bytes.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "reel/alloc.h"
#include "reel/clock.h"
#include "reel/sha256.h"
#include "sink_impl.h"

typedef struct file_sink {
  reel_sink base;
  int fd;          /* the temporary file, read/write */
  int dirfd;       /* the destination directory */
  char *dir;       /* destination directory as resolved (for messages) */
  char *name;      /* final file name inside dir */
  char *tmp;       /* temporary file name inside dir */
  char *url;       /* canonical file:// URL */
  int64_t pos;     /* current position */
  int64_t size;    /* end of the object */
  reel_sha256 sha; /* digest of [0, size) while `linear` */
  int linear;      /* nonzero while every write appended at the end */
} file_sink;

/* Maps an errno from the file system to a status and a message naming the URL. */
static reel_status io_error(const file_sink *fs, const char *url, const char *what, int e, reel_error *err) {
  reel_status st = REEL_ESTORAGE;
  if (e == EACCES || e == EPERM) st = REEL_EAUTH;
  if (e == ENOMEM) st = REEL_ENOMEM;
  const char *u = fs && fs->url ? fs->url : url;
  return reel_error_set(err, st, "url", "'%s': %s failed: %s", u, what, strerror(e));
}

static void file_sink_free(file_sink *fs) {
  if (!fs) return;
  if (fs->fd >= 0) close(fs->fd);
  if (fs->dirfd >= 0) close(fs->dirfd);
  reel_free(fs->dir);
  reel_free(fs->name);
  reel_free(fs->tmp);
  reel_free(fs->url);
  reel_free(fs);
}

static reel_status file_write(reel_sink *s, const void *data, size_t len, reel_error *err) {
  file_sink *fs = (file_sink *)s;
  if (len > (size_t)(INT64_MAX - fs->pos))
    return reel_error_set(err, REEL_ELIMIT, "url", "'%s': write past the largest file offset", fs->url);
  if (fs->linear && fs->pos != fs->size) fs->linear = 0;
  const uint8_t *p = data;
  size_t left = len;
  int64_t off = fs->pos;
  while (left) {
    ssize_t n = pwrite(fs->fd, p, left, off);
    if (n < 0) {
      if (errno == EINTR) continue;
      return io_error(fs, NULL, "write", errno, err);
    }
    p += n;
    left -= (size_t)n;
    off += n;
  }
  if (fs->linear) reel_sha256_update(&fs->sha, data, len);
  fs->pos = off;
  if (off > fs->size) fs->size = off;
  return REEL_OK;
}

static reel_status file_seek(reel_sink *s, int64_t offset, int whence, int64_t *pos, reel_error *err) {
  file_sink *fs = (file_sink *)s;
  int64_t base;
  switch (whence) {
    case SEEK_SET:
      base = 0;
      break;
    case SEEK_CUR:
      base = fs->pos;
      break;
    case SEEK_END:
      base = fs->size;
      break;
    default:
      return reel_error_set(err, REEL_EINVAL, "whence", "must be SEEK_SET, SEEK_CUR or SEEK_END, got %d", whence);
  }
  if ((offset > 0 && base > INT64_MAX - offset) || base + offset < 0)
    return reel_error_set(err, REEL_EINVAL, "offset", "'%s': seek to %lld%+lld is outside 0..%lld", fs->url,
                          (long long)base, (long long)offset, (long long)INT64_MAX);
  fs->pos = base + offset;
  *pos = fs->pos;
  return REEL_OK;
}

static reel_status file_read(reel_sink *s, void *buf, size_t len, size_t *got, reel_error *err) {
  file_sink *fs = (file_sink *)s;
  uint8_t *p = buf;
  size_t done = 0;
  while (done < len && fs->pos < fs->size) {
    size_t want = len - done;
    if ((int64_t)want > fs->size - fs->pos) want = (size_t)(fs->size - fs->pos);
    ssize_t n = pread(fs->fd, p + done, want, fs->pos);
    if (n < 0) {
      if (errno == EINTR) continue;
      return io_error(fs, NULL, "read", errno, err);
    }
    if (n == 0) break;
    done += (size_t)n;
    fs->pos += n;
  }
  *got = done;
  return REEL_OK;
}

/* Hashes the finished temporary file (after writes that were not pure appends). */
static reel_status rehash(file_sink *fs, uint8_t digest[REEL_SHA256_BYTES], reel_error *err) {
  enum { CHUNK = 1 << 18 };
  uint8_t *buf = reel_malloc(CHUNK);
  if (!buf) return reel_error_set(err, REEL_ENOMEM, "url", "'%s': no memory to hash the object", fs->url);
  reel_sha256_init(&fs->sha);
  int64_t off = 0;
  reel_status st = REEL_OK;
  while (off < fs->size) {
    size_t want = fs->size - off < CHUNK ? (size_t)(fs->size - off) : CHUNK;
    ssize_t n = pread(fs->fd, buf, want, off);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      st = io_error(fs, NULL, "read back", errno, err);
      break;
    }
    if (n == 0) {
      st = reel_error_set(err, REEL_ESTORAGE, "url", "'%s': file shrank to %lld bytes while being written", fs->url,
                          (long long)off);
      break;
    }
    reel_sha256_update(&fs->sha, buf, (size_t)n);
    off += n;
  }
  reel_free(buf);
  if (st == REEL_OK) reel_sha256_final(&fs->sha, digest);
  return st;
}

static reel_status file_close(reel_sink *s, reel_sink_result *res, reel_error *err) {
  file_sink *fs = (file_sink *)s;
  uint8_t digest[REEL_SHA256_BYTES];
  int renamed = 0;
  reel_status st = REEL_OK;
  if (fs->linear)
    reel_sha256_final(&fs->sha, digest);
  else
    st = rehash(fs, digest, err);
  if (st == REEL_OK && fsync(fs->fd) != 0) st = io_error(fs, NULL, "fsync", errno, err);
  int fd = fs->fd;
  fs->fd = -1;
  if (close(fd) != 0 && st == REEL_OK) st = io_error(fs, NULL, "close", errno, err);
  if (st == REEL_OK) {
    if (renameat(fs->dirfd, fs->tmp, fs->dirfd, fs->name) != 0)
      st = io_error(fs, NULL, "rename", errno, err);
    else
      renamed = 1;
  }
  if (st == REEL_OK && fsync(fs->dirfd) != 0) {
    /* The rename may not survive a crash: take the object back rather than report success. */
    st = io_error(fs, NULL, "fsync of the directory", errno, err);
    unlinkat(fs->dirfd, fs->name, 0);
  }
  if (!renamed) unlinkat(fs->dirfd, fs->tmp, 0);
  if (st == REEL_OK) {
    snprintf(res->url, sizeof res->url, "%s", fs->url);
    res->bytes = (uint64_t)fs->size;
    reel_sha256_hex(digest, res->sha256);
    reel_log(fs->base.log, REEL_LOG_DEBUG, "storage", NULL, "object committed", "url=%s bytes=%lld sha256=%s", fs->url,
             (long long)fs->size, res->sha256);
  } else {
    reel_log(fs->base.log, REEL_LOG_WARN, "storage", NULL, "object not committed", "url=%s", fs->url);
  }
  file_sink_free(fs);
  return st;
}

static void file_abort(reel_sink *s) {
  file_sink *fs = (file_sink *)s;
  unlinkat(fs->dirfd, fs->tmp, 0);
  reel_log(fs->base.log, REEL_LOG_DEBUG, "storage", NULL, "object aborted", "url=%s", fs->url);
  file_sink_free(fs);
}

static const reel_sink_ops file_ops = {.scheme = "file",
                                       .write = file_write,
                                       .seek = file_seek,
                                       .read = file_read,
                                       .close = file_close,
                                       .abort = file_abort};

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/*
 * The path of a file URL or a plain path, as a new string. URLs must name an
 * absolute path on this host; their percent-escapes are decoded.
 */
static reel_status url_to_path(const char *url, char **out, reel_error *err) {
  *out = NULL;
  if (strncasecmp(url, "file:", 5) != 0 || (url[5] != '/')) {
    /* A plain path, taken literally. */
    *out = reel_strdup(url);
    return *out ? REEL_OK : reel_error_set(err, REEL_ENOMEM, "url", "out of memory");
  }
  const char *p = url + 5;
  if (p[0] == '/' && p[1] == '/') {
    const char *host = p + 2;
    const char *slash = strchr(host, '/');
    size_t hlen = slash ? (size_t)(slash - host) : strlen(host);
    if (hlen && !(hlen == 9 && strncasecmp(host, "localhost", 9) == 0))
      return reel_error_set(err, REEL_EINVAL, "url",
                            "'%s': a file URL needs an absolute path (file:///abs/path); '%.*s' would be a host name",
                            url, (int)(hlen > 64 ? 64 : hlen), host);
    if (!slash) return reel_error_set(err, REEL_EINVAL, "url", "'%s': the file URL has an empty path", url);
    p = slash;
  }
  if (strpbrk(p, "?#"))
    return reel_error_set(err, REEL_EINVAL, "url", "'%s': a file URL may not have a query or fragment ('?', '#')", url);
  size_t n = strlen(p);
  char *path = reel_malloc(n + 1);
  if (!path) return reel_error_set(err, REEL_ENOMEM, "url", "out of memory");
  size_t j = 0;
  for (size_t i = 0; i < n; i++) {
    if (p[i] != '%') {
      path[j++] = p[i];
      continue;
    }
    int hi = i + 2 < n ? hexval(p[i + 1]) : -1, lo = hi >= 0 ? hexval(p[i + 2]) : -1;
    if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
      reel_free(path);
      return reel_error_set(err, REEL_EINVAL, "url", "'%s': bad percent-escape at byte %zu", url,
                            (size_t)(p - url) + i);
    }
    path[j++] = (char)(hi * 16 + lo);
    i += 2;
  }
  path[j] = '\0';
  *out = path;
  return REEL_OK;
}

/* Appends s to the URL being built, percent-encoding what a file URL path may not hold literally. */
static size_t url_encode(char *dst, size_t cap, size_t at, const char *s) {
  static const char hex[] = "0123456789ABCDEF";
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    int plain = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
                strchr("-._~/!$&'()*+,;=:@", *p) != NULL;
    if (plain) {
      if (at + 1 < cap) dst[at] = (char)*p;
      at++;
    } else {
      if (at + 3 < cap) {
        dst[at] = '%';
        dst[at + 1] = hex[*p >> 4];
        dst[at + 2] = hex[*p & 15];
      }
      at += 3;
    }
  }
  if (at < cap) dst[at] = '\0';
  return at;
}

/* Random suffix for the temporary name; unpredictable is nice, unique is what matters (O_EXCL retries). */
static uint64_t tmp_nonce(const void *salt) {
  uint64_t v;
  if (getrandom(&v, sizeof v, GRND_NONBLOCK) == (ssize_t)sizeof v) return v;
  v = (uint64_t)reel_now_ns() ^ ((uint64_t)getpid() << 32) ^ (uint64_t)(uintptr_t)salt;
  v ^= v >> 33;
  v *= 0xff51afd7ed558ccdULL;
  v ^= v >> 33;
  return v;
}

reel_status reel__file_sink_open(const char *url, const reel_sink_options *opts, reel_sink **out, reel_error *err) {
  reel_status st;
  char *path = NULL;
  file_sink *fs = NULL;
  char resolved[PATH_MAX];
  if ((st = url_to_path(url, &path, err))) goto fail;
  if (!path[0]) {
    st = reel_error_set(err, REEL_EINVAL, "url", "'%s': the path is empty", url);
    goto fail;
  }
  size_t plen = strlen(path);
  if (plen >= PATH_MAX) {
    st = reel_error_set(err, REEL_ELIMIT, "url", "'%s': the path is %zu bytes, limit %d", url, plen, PATH_MAX - 1);
    goto fail;
  }
  char *slash = strrchr(path, '/');
  const char *name = slash ? slash + 1 : path;
  if (!name[0] || !strcmp(name, ".") || !strcmp(name, "..")) {
    st = reel_error_set(err, REEL_EINVAL, "url", "'%s': names a directory, not a file", url);
    goto fail;
  }
  if (strlen(name) > NAME_MAX) {
    st = reel_error_set(err, REEL_ELIMIT, "url", "'%s': the file name is %zu bytes, limit %d", url, strlen(name),
                        NAME_MAX);
    goto fail;
  }
  const char *dir = ".";
  if (slash == path) {
    dir = "/";
  } else if (slash) {
    *slash = '\0';
    dir = path;
  }

  fs = reel_calloc(1, sizeof *fs);
  if (!fs) {
    st = reel_error_set(err, REEL_ENOMEM, "url", "out of memory");
    goto fail;
  }
  fs->fd = -1;
  fs->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fs->dirfd < 0) {
    int e = errno;
    if (e == ENOENT)
      st = reel_error_set(err, REEL_ENOTFOUND, "url", "'%s': directory '%s' does not exist", url, dir);
    else if (e == ENOTDIR)
      st = reel_error_set(err, REEL_ENOTFOUND, "url", "'%s': '%s' is not a directory", url, dir);
    else
      st = io_error(NULL, url, "opening the directory", e, err);
    goto fail;
  }
  if (!realpath(dir, resolved)) {
    st = io_error(NULL, url, "resolving the directory", errno, err);
    goto fail;
  }
  struct stat sb;
  if (fstatat(fs->dirfd, name, &sb, 0) == 0 && S_ISDIR(sb.st_mode)) {
    st = reel_error_set(err, REEL_EINVAL, "url", "'%s': '%s' is a directory", url, name);
    goto fail;
  }
  fs->dir = reel_strdup(resolved);
  fs->name = reel_strdup(name);
  if (!fs->dir || !fs->name) {
    st = reel_error_set(err, REEL_ENOMEM, "url", "out of memory");
    goto fail;
  }

  /* Canonical URL: file:// + the resolved absolute path, percent-encoded. */
  char ubuf[sizeof(((reel_sink_result *)0)->url)];
  size_t ulen = url_encode(ubuf, sizeof ubuf, 0, "file://");
  ulen = url_encode(ubuf, sizeof ubuf, ulen, fs->dir);
  if (strcmp(fs->dir, "/") != 0) ulen = url_encode(ubuf, sizeof ubuf, ulen, "/");
  ulen = url_encode(ubuf, sizeof ubuf, ulen, fs->name);
  if (ulen >= sizeof ubuf) {
    st = reel_error_set(err, REEL_ELIMIT, "url", "'%s': the canonical URL is %zu bytes, limit %zu", url, ulen,
                        sizeof ubuf - 1);
    goto fail;
  }
  fs->url = reel_strdup(ubuf);
  /* ".<name>.reel-<16 hex>.tmp", the name cut so that the whole fits NAME_MAX. */
  fs->tmp = reel_malloc(NAME_MAX + 1);
  if (!fs->url || !fs->tmp) {
    st = reel_error_set(err, REEL_ENOMEM, "url", "out of memory");
    goto fail;
  }
  int keep = (int)strlen(name);
  if (keep > NAME_MAX - 27) keep = NAME_MAX - 27;
  for (int attempt = 0; attempt < 16 && fs->fd < 0; attempt++) {
    snprintf(fs->tmp, NAME_MAX + 1, ".%.*s.reel-%016llx.tmp", keep, name, (unsigned long long)tmp_nonce(fs));
    fs->fd = openat(fs->dirfd, fs->tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fs->fd < 0 && errno != EEXIST && errno != EINTR) break;
  }
  if (fs->fd < 0) {
    st = io_error(fs, url, "creating the temporary file", errno, err);
    goto fail;
  }
  fs->linear = 1;
  reel_sha256_init(&fs->sha);
  fs->base.ops = &file_ops;
  fs->base.log = opts->log;
  fs->base.url = fs->url;
  reel_free(path);
  reel_log(opts->log, REEL_LOG_DEBUG, "storage", NULL, "object opened", "url=%s tmp=\"%s\"", fs->url, fs->tmp);
  *out = &fs->base;
  return REEL_OK;
fail:
  file_sink_free(fs);
  reel_free(path);
  return st;
}
