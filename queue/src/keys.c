/* SPDX-License-Identifier: Apache-2.0 */
/*
 * CURVE key generation and key files. See reel/keys.h.
 */
#include "reel/keys.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

static const char z85_chars[] = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#";

int reel_keys_valid_z85(const char *s) {
  if (!s || strlen(s) != REEL_KEY_Z85_LEN) return 0;
  for (const char *p = s; *p; p++)
    if (!strchr(z85_chars, *p)) return 0;
  unsigned char raw[32];
  return zmq_z85_decode(raw, s) != NULL;
}

reel_status reel_keys_decode(const char *z85, unsigned char out[32]) {
  if (!reel_keys_valid_z85(z85)) return REEL_EFORMAT;
  return zmq_z85_decode(out, z85) ? REEL_OK : REEL_EFORMAT;
}

reel_status reel_keys_generate(reel_keypair *kp, reel_error *err) {
  memset(kp, 0, sizeof *kp);
  if (!zmq_has("curve")) return reel_error_set(err, REEL_EUNSUPPORTED, "curve", "libzmq was built without CURVE");
  if (zmq_curve_keypair(kp->public_key, kp->secret_key) != 0)
    return reel_error_set(err, REEL_EINTERNAL, "curve", "zmq_curve_keypair failed: %s", zmq_strerror(errno));
  return REEL_OK;
}

static reel_status write_file(const char *path, const char *text, mode_t mode, int force, reel_error *err) {
  int flags = O_WRONLY | O_CREAT | O_CLOEXEC | (force ? O_TRUNC : O_EXCL);
  int fd = open(path, flags, mode);
  if (fd < 0)
    return reel_error_set(err, errno == EEXIST ? REEL_EEXIST : REEL_EIO, path, "cannot create: %s%s", strerror(errno),
                          errno == EEXIST ? " (use --force to overwrite)" : "");
  size_t n = strlen(text);
  ssize_t w = write(fd, text, n);
  int rc = close(fd);
  if (w != (ssize_t)n || rc != 0) return reel_error_set(err, REEL_EIO, path, "write failed");
  if (force && chmod(path, mode) != 0) return reel_error_set(err, REEL_EIO, path, "chmod failed");
  return REEL_OK;
}

reel_status reel_keys_write(const char *base, const reel_keypair *kp, int force, reel_error *err) {
  char path[4096], text[512];
  if (!reel_keys_valid_z85(kp->public_key) || !reel_keys_valid_z85(kp->secret_key))
    return reel_error_set(err, REEL_EINVAL, "key", "not a valid key pair");
  if (snprintf(path, sizeof path, "%s.key", base) >= (int)sizeof path)
    return reel_error_set(err, REEL_ELIMIT, "path", "longer than %zu bytes", sizeof path - 5);
  snprintf(text, sizeof text,
           "# reel CURVE key pair: keep secret. The matching public key is in the .pub file.\n"
           "public = \"%s\"\nsecret = \"%s\"\n",
           kp->public_key, kp->secret_key);
  reel_status st = write_file(path, text, 0600, force, err);
  if (st) return st;
  snprintf(path, sizeof path, "%s.pub", base);
  snprintf(text, sizeof text, "# reel CURVE public key\npublic = \"%s\"\n", kp->public_key);
  return write_file(path, text, 0644, force, err);
}

/* Parses `name = "value"` (spaces optional); returns 1 and copies value when the line matches name. */
static int parse_line(const char *line, const char *name, char *value, size_t size) {
  while (*line == ' ' || *line == '\t') line++;
  size_t n = strlen(name);
  if (strncmp(line, name, n) != 0) return 0;
  line += n;
  while (*line == ' ' || *line == '\t') line++;
  if (*line++ != '=') return 0;
  while (*line == ' ' || *line == '\t') line++;
  if (*line++ != '"') return -1;
  const char *end = strchr(line, '"');
  if (!end || (size_t)(end - line) >= size) return -1;
  memcpy(value, line, (size_t)(end - line));
  value[end - line] = '\0';
  return 1;
}

reel_status reel_keys_load(const char *path, int need_secret, reel_keypair *kp, reel_error *err) {
  memset(kp, 0, sizeof *kp);
  FILE *f = fopen(path, "r");
  if (!f)
    return reel_error_set(err, errno == ENOENT ? REEL_ENOTFOUND : REEL_EIO, path, "cannot open: %s", strerror(errno));
  char line[512], field[REEL_ERROR_FIELD_MAX];
  int lineno = 0;
  reel_status st = REEL_OK;
  while (fgets(line, sizeof line, f)) {
    lineno++;
    char *nl = strchr(line, '\n');
    if (nl) *nl = '\0';
    const char *p = line;
    while (*p == ' ' || *p == '\t') p++;
    if (*p == '\0' || *p == '#') continue;
    char value[64];
    int r = parse_line(p, "public", value, sizeof value);
    char *dst = kp->public_key;
    if (r == 0) {
      r = parse_line(p, "secret", value, sizeof value);
      dst = kp->secret_key;
    }
    snprintf(field, sizeof field, "%s:%d", path, lineno);
    if (r <= 0) {
      st = reel_error_set(err, REEL_EFORMAT, field, "expected public = \"...\" or secret = \"...\"");
      break;
    }
    if (!reel_keys_valid_z85(value)) {
      st = reel_error_set(err, REEL_EFORMAT, field, "key must be %d Z85 characters", REEL_KEY_Z85_LEN);
      break;
    }
    memcpy(dst, value, REEL_KEY_Z85_LEN + 1);
  }
  fclose(f);
  if (st) {
    memset(kp, 0, sizeof *kp);
    return st;
  }
  if (!kp->public_key[0]) return reel_error_set(err, REEL_EFORMAT, path, "no public key");
  if (need_secret && !kp->secret_key[0])
    return reel_error_set(err, REEL_EFORMAT, path, "no secret key (a .key file from reel keygen is needed)");
  return REEL_OK;
}
