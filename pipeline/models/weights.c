/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Model weights over one safetensors file or a sharded checkpoint. See reel/weights.h.
 *
 * Opening an index reads the weight_map, opens each distinct shard once, then
 * merges the shards' tensor lists into one array sorted by name. The merge is also
 * how the index is checked against the shards: after sorting, a name seen twice is
 * in two shards, and every entry is looked up in the weight_map (and every
 * weight_map entry in its shard), so the map and the files agree both ways.
 */
#include "reel/weights.h"

#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "reel/alloc.h"
#include "reel/json.h"

typedef struct entry {
  const reel_st_tensor *t;
  size_t shard; /* index into shards[] */
} entry;

struct reel_weights {
  char *path;
  reel_safetensors **shards; /* [nshards], in shard-name order */
  size_t nshards;
  entry *all; /* [count], sorted by tensor name */
  size_t count;
};

/* Records an error: field = "<prefix>.<tensor>" (or prefix, or tensor), message "<file>: <detail>". */
static reel_status w_fail(reel_error *err, reel_status code, const char *file, const char *prefix, const char *tensor,
                          const char *fmt, ...) __attribute__((format(printf, 6, 7)));
static reel_status w_fail(reel_error *err, reel_status code, const char *file, const char *prefix, const char *tensor,
                          const char *fmt, ...) {
  if (!err || err->code != REEL_OK) return code;
  char detail[REEL_ERROR_MSG_MAX];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(detail, sizeof detail, fmt, ap);
  va_end(ap);
  /* Built by hand: truncation of long names is intended. */
  char field[REEL_ERROR_FIELD_MAX];
  size_t n = 0, cap = sizeof field - 1;
  if (prefix)
    for (const char *p = prefix; *p && n < cap; p++) field[n++] = *p;
  if (prefix && tensor && tensor[0] && n < cap) field[n++] = '.';
  if (tensor)
    for (const char *p = tensor; *p && n < cap; p++) field[n++] = *p;
  field[n] = '\0';
  return reel_error_set(err, code, field, "%s: %s", file, detail);
}

static int ends_with(const char *s, const char *suffix) {
  size_t n = strlen(s), m = strlen(suffix);
  return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* dir + "/" + name in a new string, or NULL. dir may be "" (current folder). */
static char *join_path(const char *dir, size_t dir_len, const char *name) {
  size_t n = strlen(name);
  char *p = reel_malloc(dir_len + 1 + n + 1);
  if (!p) return NULL;
  size_t pos = 0;
  if (dir_len) {
    memcpy(p, dir, dir_len);
    pos = dir_len;
    if (p[pos - 1] != '/') p[pos++] = '/';
  }
  memcpy(p + pos, name, n + 1);
  return p;
}

/* Length of the folder part of path, without the last '/' (1 for "/x", 0 for "x"). */
static size_t dir_length(const char *path) {
  const char *slash = strrchr(path, '/');
  if (!slash) return 0;
  return slash == path ? 1 : (size_t)(slash - path);
}

static int cmp_str_ptr(const void *a, const void *b) {
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int cmp_entry(const void *a, const void *b) {
  const entry *x = a, *y = b;
  int c = strcmp(x->t->name, y->t->name);
  if (c) return c;
  return x->shard < y->shard ? -1 : x->shard > y->shard;
}

static const entry *find_entry(const reel_weights *w, const char *name) {
  size_t lo = 0, hi = w->count;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    int c = strcmp(name, w->all[mid].t->name);
    if (c == 0) return &w->all[mid];
    if (c < 0)
      hi = mid;
    else
      lo = mid + 1;
  }
  return NULL;
}

/* Fills w->all from the open shards, sorted by name. */
static reel_status merge(reel_weights *w, reel_error *err) {
  size_t total = 0;
  for (size_t i = 0; i < w->nshards; i++) total += reel_safetensors_count(w->shards[i]);
  w->all = reel_calloc(total, sizeof *w->all);
  if (!w->all) return w_fail(err, REEL_ENOMEM, w->path, NULL, NULL, "cannot allocate the index of %zu tensors", total);
  for (size_t i = 0; i < w->nshards; i++) {
    size_t n = reel_safetensors_count(w->shards[i]);
    for (size_t j = 0; j < n; j++) w->all[w->count++] = (entry){reel_safetensors_at(w->shards[i], j), i};
  }
  if (w->nshards > 1) qsort(w->all, w->count, sizeof *w->all, cmp_entry);
  return REEL_OK;
}

/* Checks the weight_map member of an index and returns it (borrowed from root). */
static reel_status check_weight_map(const char *path, const json_t *root, const json_t **map, reel_error *err) {
  if (!json_is_object(root)) return w_fail(err, REEL_EFORMAT, path, NULL, NULL, "index must be a JSON object");
  const json_t *meta = json_object_get(root, "metadata");
  if (meta && !json_is_object(meta) && !json_is_null(meta))
    return w_fail(err, REEL_EFORMAT, path, "metadata", NULL, "metadata must be an object");
  const json_t *m = json_object_get(root, "weight_map");
  if (!m) return w_fail(err, REEL_EFORMAT, path, "weight_map", NULL, "weight_map is missing");
  if (!json_is_object(m)) return w_fail(err, REEL_EFORMAT, path, "weight_map", NULL, "weight_map must be an object");
  if (json_object_size(m) == 0) return w_fail(err, REEL_EFORMAT, path, "weight_map", NULL, "weight_map is empty");
  const char *name;
  json_t *v;
  json_object_foreach((json_t *)m, name, v) {
    size_t nlen = strlen(name);
    if (nlen == 0 || nlen > REEL_ST_MAX_NAME)
      return w_fail(err, REEL_EFORMAT, path, "weight_map", name, "tensor name must be 1..%d bytes, got %zu",
                    REEL_ST_MAX_NAME, nlen);
    if (!json_is_string(v))
      return w_fail(err, REEL_EFORMAT, path, "weight_map", name, "tensor \"%.200s\": shard must be a file name string",
                    name);
    const char *s = json_string_value(v);
    size_t slen = json_string_length(v);
    if (slen == 0 || slen > REEL_WEIGHTS_MAX_SHARD_NAME || strlen(s) != slen || strchr(s, '/') || strchr(s, '\\') ||
        strcmp(s, ".") == 0 || strcmp(s, "..") == 0)
      return w_fail(err, REEL_EFORMAT, path, "weight_map", name,
                    "tensor \"%.200s\": shard \"%.255s\" must be a plain file name of 1..%d bytes in the index's "
                    "folder",
                    name, s, REEL_WEIGHTS_MAX_SHARD_NAME);
  }
  *map = m;
  return REEL_OK;
}

/* Checks that the weight_map and the opened shards agree (see the file comment). */
static reel_status check_agreement(const reel_weights *w, const json_t *map, const char *const *shard_names,
                                   reel_error *err) {
  for (size_t i = 0; i < w->count; i++) {
    const entry *e = &w->all[i];
    const char *name = e->t->name;
    if (i > 0 && strcmp(w->all[i - 1].t->name, name) == 0)
      return w_fail(err, REEL_EFORMAT, w->path, "weight_map", name, "tensor \"%.200s\" is in two shards: %s and %s",
                    name, shard_names[w->all[i - 1].shard], shard_names[e->shard]);
    const json_t *v = json_object_get(map, name);
    if (!v)
      return w_fail(err, REEL_EFORMAT, w->path, "weight_map", name,
                    "tensor \"%.200s\" is in shard %s but not in the weight_map", name, shard_names[e->shard]);
    if (strcmp(json_string_value(v), shard_names[e->shard]) != 0)
      return w_fail(err, REEL_EFORMAT, w->path, "weight_map", name,
                    "tensor \"%.200s\" is in shard %s but the weight_map says %s", name, shard_names[e->shard],
                    json_string_value(v));
  }
  /* Every mapped tensor is in some shard; the loop above showed it is then in its own. */
  const char *name;
  json_t *v;
  json_object_foreach((json_t *)map, name, v) {
    if (!find_entry(w, name))
      return w_fail(err, REEL_EFORMAT, w->path, "weight_map", name,
                    "tensor \"%.200s\" is mapped to shard %s, which does not contain it", name, json_string_value(v));
  }
  return REEL_OK;
}

static reel_status open_index(reel_weights *w, reel_error *err) {
  json_t *root = NULL;
  const char **names = NULL;
  char *shard_path = NULL;
  reel_error jerr;
  reel_error_clear(&jerr);
  reel_status rc = reel_json_load_file(w->path, REEL_WEIGHTS_MAX_INDEX, &root, &jerr);
  if (rc != REEL_OK) return w_fail(err, rc, w->path, NULL, NULL, "%s", jerr.msg);
  const json_t *map = NULL;
  rc = check_weight_map(w->path, root, &map, err);
  if (rc != REEL_OK) goto done;

  /* Distinct shard names, sorted. */
  size_t n = json_object_size(map), nshards = 0;
  names = reel_calloc(n, sizeof *names);
  if (!names) {
    rc = w_fail(err, REEL_ENOMEM, w->path, NULL, NULL, "cannot allocate the list of %zu shards", n);
    goto done;
  }
  const char *key;
  json_t *v;
  json_object_foreach((json_t *)map, key, v) names[nshards++] = json_string_value(v);
  qsort(names, nshards, sizeof *names, cmp_str_ptr);
  size_t uniq = 0;
  for (size_t i = 0; i < nshards; i++)
    if (uniq == 0 || strcmp(names[uniq - 1], names[i]) != 0) names[uniq++] = names[i];
  nshards = uniq;

  w->shards = reel_calloc(nshards, sizeof *w->shards);
  if (!w->shards) {
    rc = w_fail(err, REEL_ENOMEM, w->path, NULL, NULL, "cannot allocate the list of %zu shards", nshards);
    goto done;
  }
  size_t dlen = dir_length(w->path);
  for (size_t i = 0; i < nshards; i++) {
    shard_path = join_path(w->path, dlen, names[i]);
    if (!shard_path) {
      rc = w_fail(err, REEL_ENOMEM, w->path, NULL, NULL, "cannot allocate a shard path");
      goto done;
    }
    reel_error serr;
    reel_error_clear(&serr);
    rc = reel_safetensors_open(shard_path, &w->shards[i], &serr);
    if (rc == REEL_ENOTFOUND) {
      /* Name a tensor that needs the missing shard. */
      const char *who = "?";
      json_object_foreach((json_t *)map, key, v) {
        if (strcmp(json_string_value(v), names[i]) == 0) {
          who = key;
          break;
        }
      }
      rc = w_fail(err, REEL_ENOTFOUND, w->path, "weight_map", who,
                  "shard %s (for tensor \"%.200s\") does not exist: %s", names[i], who, shard_path);
      goto done;
    }
    if (rc != REEL_OK) {
      if (err && err->code == REEL_OK) *err = serr; /* the shard's own error names the shard and tensor */
      goto done;
    }
    w->nshards++;
    reel_free(shard_path);
    shard_path = NULL;
  }
  rc = merge(w, err);
  if (rc != REEL_OK) goto done;
  rc = check_agreement(w, map, names, err);
done:
  reel_free(shard_path);
  reel_free(names);
  json_decref(root);
  return rc;
}

static void weights_free(reel_weights *w) {
  if (!w) return;
  for (size_t i = 0; i < w->nshards; i++) reel_safetensors_close(&w->shards[i]);
  reel_free(w->shards);
  reel_free(w->all);
  reel_free(w->path);
  reel_free(w);
}

reel_status reel_weights_open(const char *path, reel_weights **out, reel_error *err) {
  if (!out) return reel_error_set(err, REEL_EINVAL, "out", "no output handle given");
  *out = NULL;
  if (!path || !path[0]) return reel_error_set(err, REEL_EINVAL, "path", "no path given");
  reel_status rc;
  reel_weights *w = reel_calloc(1, sizeof *w);
  if (!w || !(w->path = reel_strdup(path))) {
    rc = reel_error_set(err, REEL_ENOMEM, "path", "%s: cannot allocate a weights handle", path);
    goto fail;
  }
  if (ends_with(path, ".json")) {
    rc = open_index(w, err);
  } else {
    w->shards = reel_calloc(1, sizeof *w->shards);
    if (!w->shards) {
      rc = reel_error_set(err, REEL_ENOMEM, "path", "%s: cannot allocate a weights handle", path);
      goto fail;
    }
    rc = reel_safetensors_open(path, &w->shards[0], err);
    if (rc == REEL_OK) {
      w->nshards = 1;
      rc = merge(w, err);
    }
  }
  if (rc != REEL_OK) goto fail;
  *out = w;
  return REEL_OK;
fail:
  weights_free(w);
  return rc;
}

static const char *const weight_file_names[] = {
    "diffusion_pytorch_model.safetensors.index.json",
    "diffusion_pytorch_model.safetensors",
    "model.safetensors.index.json",
    "model.safetensors",
};

reel_status reel_weights_locate(const char *dir, char **path, reel_error *err) {
  if (!path) return reel_error_set(err, REEL_EINVAL, "path", "no output given");
  *path = NULL;
  if (!dir || !dir[0]) return reel_error_set(err, REEL_EINVAL, "dir", "no folder given");
  struct stat sb;
  if (stat(dir, &sb) != 0) {
    int e = errno;
    return reel_error_set(err, e == ENOENT || e == ENOTDIR ? REEL_ENOTFOUND : REEL_EIO, "dir", "%s: %s", dir,
                          strerror(e));
  }
  if (!S_ISDIR(sb.st_mode)) return reel_error_set(err, REEL_EINVAL, "dir", "%s: not a folder", dir);
  for (size_t i = 0; i < sizeof weight_file_names / sizeof weight_file_names[0]; i++) {
    char *p = join_path(dir, strlen(dir), weight_file_names[i]);
    if (!p) return reel_error_set(err, REEL_ENOMEM, "dir", "%s: cannot allocate a path", dir);
    if (stat(p, &sb) == 0 && S_ISREG(sb.st_mode)) {
      *path = p;
      return REEL_OK;
    }
    reel_free(p);
  }
  return reel_error_set(err, REEL_ENOTFOUND, "dir",
                        "%s: no weights found (looked for diffusion_pytorch_model.safetensors[.index.json] and "
                        "model.safetensors[.index.json])",
                        dir);
}

reel_status reel_weights_open_dir(const char *dir, reel_weights **out, reel_error *err) {
  if (!out) return reel_error_set(err, REEL_EINVAL, "out", "no output handle given");
  *out = NULL;
  char *path = NULL;
  reel_status rc = reel_weights_locate(dir, &path, err);
  if (rc != REEL_OK) return rc;
  rc = reel_weights_open(path, out, err);
  reel_free(path);
  return rc;
}

void reel_weights_close(reel_weights **w) {
  if (!w || !*w) return;
  weights_free(*w);
  *w = NULL;
}

const char *reel_weights_path(const reel_weights *w) { return w->path; }
size_t reel_weights_count(const reel_weights *w) { return w->count; }

const reel_st_tensor *reel_weights_at(const reel_weights *w, size_t i) { return i < w->count ? w->all[i].t : NULL; }

const reel_st_tensor *reel_weights_find(const reel_weights *w, const char *name) {
  if (!name) return NULL;
  const entry *e = find_entry(w, name);
  return e ? e->t : NULL;
}

size_t reel_weights_shard_count(const reel_weights *w) { return w->nshards; }

const reel_safetensors *reel_weights_shard(const reel_weights *w, size_t i) {
  return i < w->nshards ? w->shards[i] : NULL;
}

static void format_dims(char *buf, size_t size, const int64_t *shape, int rank) {
  size_t off = (size_t)snprintf(buf, size, "[");
  for (int i = 0; i < rank && off < size; i++) {
    if (shape[i] < 0)
      off += (size_t)snprintf(buf + off, size - off, "%s*", i ? ", " : "");
    else
      off += (size_t)snprintf(buf + off, size - off, "%s%lld", i ? ", " : "", (long long)shape[i]);
  }
  if (off < size) snprintf(buf + off, size - off, "]");
}

reel_status reel_weights_expect(const reel_weights *w, const char *name, unsigned dtype_mask, int rank,
                                const int64_t *shape, const reel_st_tensor **out, reel_error *err) {
  if (out) *out = NULL;
  if (!w || !name) return reel_error_set(err, REEL_EINVAL, "name", "no weights or tensor name given");
  const reel_st_tensor *t = reel_weights_find(w, name);
  if (!t)
    return w_fail(err, REEL_ENOTFOUND, w->path, NULL, name, "tensor \"%.200s\" not found (%zu tensors in %zu file%s)",
                  name, w->count, w->nshards, w->nshards == 1 ? "" : "s");
  if (dtype_mask && !(dtype_mask & REEL_ST_MASK(t->dtype))) {
    char want[160];
    size_t off = 0;
    want[0] = '\0';
    for (int d = 0; d < REEL_ST_DTYPE_COUNT && off < sizeof want; d++)
      if (dtype_mask & REEL_ST_MASK(d))
        off += (size_t)snprintf(want + off, sizeof want - off, "%s%s", off ? " or " : "",
                                reel_st_dtype_name((reel_st_dtype)d));
    return w_fail(err, REEL_EMODEL, t->file, NULL, name, "tensor \"%.200s\" is %s, expected %s", name,
                  reel_st_dtype_name(t->dtype), want);
  }
  if (rank >= 0) {
    int ok = t->rank == rank && (rank == 0 || shape);
    for (int i = 0; ok && i < rank; i++) ok = shape[i] < 0 || shape[i] == t->shape[i];
    if (!ok) {
      char want[200], got[200];
      if (shape || rank == 0)
        format_dims(want, sizeof want, shape, rank);
      else
        snprintf(want, sizeof want, "rank %d", rank);
      format_dims(got, sizeof got, t->shape, t->rank);
      return w_fail(err, REEL_EMODEL, t->file, NULL, name, "tensor \"%.200s\" has shape %s, expected %s", name, got,
                    want);
    }
  }
  if (out) *out = t;
  return REEL_OK;
}
