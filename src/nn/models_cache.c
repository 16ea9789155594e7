/* models_cache.c - the model cache: its folder and index.json (cJSON),
 * listing, importing local files, fetching with libcurl, and file hashes
 * (SHA-256 / MD5 with OpenSSL's EVP). */
#define _DEFAULT_SOURCE /* mkstemp, flock */
#include "models.h"

#include "keras.h"
#include "onnx.h"
#include "zoo.h"

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define INDEX_FILE "index.json"
#define PATH_MAX_LEN 4096
#define COPY_CHUNK (1 << 20)
/* A name identifies a model on the command line and in file names. */
#define NAME_MAX_LEN 64

void nn_cache_item_clear(nn_cache_item *it) {
  if (!it) return;
  free(it->name);
  free(it->kind);
  free(it->file);
  free(it->sha256);
  free(it->preprocessing);
  free(it->source);
  memset(it, 0, sizeof *it);
}

const char *nn_norm_name(dlp_norm norm) {
  switch (norm) {
  case DLP_NORM_TF: return "tf";
  case DLP_NORM_CAFFE: return "caffe";
  case DLP_NORM_TORCH: return "torch";
  case DLP_NORM_CUSTOM: return "custom";
  default: return "none";
  }
}

const nn_zoo_entry *nn_zoo_find_ci(const char *name) {
  if (!name) return NULL;
  for (size_t i = 0; i < nn_zoo_count(); i++) {
    const nn_zoo_entry *z = nn_zoo_at(i);
    if (z && z->name && strcasecmp(z->name, name) == 0) return z;
  }
  return NULL;
}

int nn_cache_dir(dlp_err *e, const char *model_dir, char *buf, size_t n) {
  int len;
  const char *env = getenv("DLP_MODEL_DIR");
  const char *home = getenv("HOME");
  if (model_dir && *model_dir)
    len = snprintf(buf, n, "%s", model_dir);
  else if (env && *env)
    len = snprintf(buf, n, "%s", env);
  else if (home && *home)
    len = snprintf(buf, n, "%s/.cache/dlp/models", home);
  else
    return dlp_err_set(e, DLP_ERR_ARG,
                       "no model cache folder: set DLP_MODEL_DIR (or HOME)");
  if (len < 0 || (size_t)len >= n)
    return dlp_err_set(e, DLP_ERR_ARG, "model cache path too long");
  return DLP_OK;
}

int nn_cache_path(dlp_err *e, const char *dir, const char *file, char *buf,
                  size_t n) {
  int len = snprintf(buf, n, "%s/%s", dir, file);
  if (len < 0 || (size_t)len >= n)
    return dlp_err_set(e, DLP_ERR_ARG, "path too long: %s/%s", dir, file);
  return DLP_OK;
}

/* --- hashes ------------------------------------------------------------- */

static void to_hex(const unsigned char *d, unsigned n, char *hex) {
  static const char digits[] = "0123456789abcdef";
  for (unsigned i = 0; i < n; i++) {
    hex[2 * i] = digits[d[i] >> 4];
    hex[2 * i + 1] = digits[d[i] & 15];
  }
  hex[2 * n] = '\0';
}

/* Hashes path with md ("sha256" or "md5") into hex (2 * digest size + 1). */
static int hash_file(dlp_err *e, const char *path, const EVP_MD *md,
                     char *hex) {
  FILE *fp = fopen(path, "rb");
  if (!fp)
    return dlp_err_set(e, errno == ENOENT ? DLP_ERR_NOT_FOUND : DLP_ERR_IO,
                       "cannot open %s: %s", path, strerror(errno));
  EVP_MD_CTX *c = EVP_MD_CTX_new();
  unsigned char *buf = malloc(COPY_CHUNK);
  int rc = DLP_OK;
  if (!c || !buf || EVP_DigestInit_ex(c, md, NULL) != 1) {
    rc = dlp_err_set(e, DLP_ERR_NOMEM, "cannot start a hash of %s", path);
  } else {
    size_t got;
    while ((got = fread(buf, 1, COPY_CHUNK, fp)) > 0)
      EVP_DigestUpdate(c, buf, got);
    unsigned char d[EVP_MAX_MD_SIZE];
    unsigned dn = 0;
    if (ferror(fp))
      rc = dlp_err_set(e, DLP_ERR_IO, "cannot read %s", path);
    else if (EVP_DigestFinal_ex(c, d, &dn) != 1)
      rc = dlp_err_set(e, DLP_ERR_INTERNAL, "hash of %s failed", path);
    else
      to_hex(d, dn, hex);
  }
  free(buf);
  EVP_MD_CTX_free(c);
  fclose(fp);
  return rc;
}

int nn_sha256_file(dlp_err *e, const char *path, char hex[65]) {
  return hash_file(e, path, EVP_sha256(), hex);
}

/* --- model files -------------------------------------------------------- */

int nn_model_file_kind(dlp_err *e, const char *path, nn_file_kind *kind) {
  static const unsigned char hdf5_magic[8] = {0x89, 'H', 'D', 'F',
                                              '\r', '\n', 0x1a, '\n'};
  FILE *fp = fopen(path, "rb");
  if (!fp)
    return dlp_err_set(e, errno == ENOENT ? DLP_ERR_NOT_FOUND : DLP_ERR_IO,
                       "cannot open model file %s: %s", path,
                       strerror(errno));
  unsigned char head[8] = {0};
  size_t got = fread(head, 1, sizeof head, fp);
  fclose(fp);
  if (got == 0)
    return dlp_err_set(e, DLP_ERR_CORRUPT, "model file %s is empty", path);
  *kind = (got == 8 && memcmp(head, hdf5_magic, 8) == 0) ? NN_FILE_KERAS
                                                          : NN_FILE_ONNX;
  if (*kind == NN_FILE_ONNX && dlp_ends_with_ci(path, ".h5"))
    return dlp_err_set(e, DLP_ERR_FORMAT,
                       "%s: not an HDF5 file (no HDF5 signature), so not a "
                       "Keras model", path);
  return DLP_OK;
}

int nn_model_load_file(dlp_err *e, const char *path, uint64_t max_bytes,
                       int h, int w, nn_graph **out) {
  *out = NULL;
  nn_file_kind kind;
  int rc = nn_model_file_kind(e, path, &kind);
  if (rc != DLP_OK) return rc;
  nn_graph *g = NULL;
  if (kind == NN_FILE_KERAS) {
    rc = (h > 0 && w > 0)
             ? nn_keras_load_file_sized(e, path, max_bytes, h, w, &g)
             : nn_keras_load_file(e, path, max_bytes, &g);
  } else {
    rc = nn_onnx_load_file(e, path, max_bytes, &g);
  }
  if (rc == DLP_OK) rc = nn_graph_finalize(e, g);
  if (rc != DLP_OK) {
    nn_graph_free(g);
    return rc;
  }
  *out = g;
  return DLP_OK;
}

/* --- index.json --------------------------------------------------------- */

static char *json_str(const cJSON *o, const char *key) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
  return cJSON_IsString(v) ? dlp_strdup(v->valuestring) : NULL;
}

static double json_num(const cJSON *o, const char *key) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
  return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

/* Reads dir/index.json; a missing file is an empty index. */
static int index_read(dlp_err *e, const char *dir, cJSON **root) {
  char path[PATH_MAX_LEN];
  int rc = nn_cache_path(e, dir, INDEX_FILE, path, sizeof path);
  if (rc != DLP_OK) return rc;
  uint8_t *data = NULL;
  size_t len = 0;
  dlp_err re = {0};
  rc = dlp_read_file(&re, path, 64u << 20, &data, &len);
  if (rc == DLP_ERR_NOT_FOUND) {
    *root = cJSON_CreateObject();
    if (!*root || !cJSON_AddNumberToObject(*root, "version", 1) ||
        !cJSON_AddArrayToObject(*root, "models")) {
      cJSON_Delete(*root);
      return dlp_err_set(e, DLP_ERR_NOMEM, "no memory for the model index");
    }
    return DLP_OK;
  }
  if (rc != DLP_OK) {
    *e = re;
    return rc;
  }
  *root = cJSON_ParseWithLength((const char *)data, len);
  free(data);
  if (!*root || !cJSON_IsArray(cJSON_GetObjectItem(*root, "models"))) {
    cJSON_Delete(*root);
    *root = NULL;
    return dlp_err_set(e, DLP_ERR_CORRUPT,
                       "%s is not a dlp model index (JSON with a \"models\" "
                       "array); move it away to start a new cache", path);
  }
  return DLP_OK;
}

static int index_write(dlp_err *e, const char *dir, const cJSON *root) {
  char path[PATH_MAX_LEN];
  int rc = nn_cache_path(e, dir, INDEX_FILE, path, sizeof path);
  if (rc != DLP_OK) return rc;
  char *text = cJSON_Print(root);
  if (!text) return dlp_err_set(e, DLP_ERR_NOMEM, "no memory for the index");
  rc = dlp_write_file_atomic(e, path, text, strlen(text));
  cJSON_free(text);
  return rc;
}

static void item_from_json(const cJSON *o, nn_cache_item *it) {
  memset(it, 0, sizeof *it);
  it->name = json_str(o, "name");
  it->kind = json_str(o, "kind");
  it->file = json_str(o, "file");
  it->sha256 = json_str(o, "sha256");
  it->preprocessing = json_str(o, "preprocessing");
  it->source = json_str(o, "source");
  it->bytes = (uint64_t)json_num(o, "bytes");
  it->width = (int32_t)json_num(o, "width");
  it->height = (int32_t)json_num(o, "height");
}

/* A usable entry names a plain file name (no '/', so the index cannot point
 * outside the cache) and a kind. */
static bool item_valid(const nn_cache_item *it) {
  return it->name && it->kind && it->file && it->sha256 && *it->file &&
         !strchr(it->file, '/') && strcmp(it->file, "..") != 0;
}

int nn_cache_lookup(dlp_err *e, const char *dir, const char *name,
                    nn_cache_item *it) {
  memset(it, 0, sizeof *it);
  cJSON *root = NULL;
  int rc = index_read(e, dir, &root);
  if (rc != DLP_OK) return rc;
  rc = DLP_ERR_NOT_FOUND;
  const cJSON *o;
  cJSON_ArrayForEach(o, cJSON_GetObjectItem(root, "models")) {
    const cJSON *n = cJSON_GetObjectItemCaseSensitive(o, "name");
    if (!cJSON_IsString(n) || strcasecmp(n->valuestring, name) != 0) continue;
    item_from_json(o, it);
    if (!item_valid(it)) {
      nn_cache_item_clear(it);
      rc = dlp_err_set(e, DLP_ERR_CORRUPT,
                       "%s/%s: the entry for %s is malformed (it needs name, "
                       "kind, file and sha256); import the model again",
                       dir, INDEX_FILE, name);
    } else {
      rc = DLP_OK;
    }
    break;
  }
  cJSON_Delete(root);
  return rc;
}

/* --- listing ------------------------------------------------------------ */

struct dlp_model_list {
  dlp_model_entry *entries;
  nn_cache_item *items; /* owns the strings of cached entries */
  char **paths;
  size_t n;
};

size_t dlp_model_list_count(const dlp_model_list *l) { return l ? l->n : 0; }

const dlp_model_entry *dlp_model_list_at(const dlp_model_list *l, size_t i) {
  return (l && i < l->n) ? &l->entries[i] : NULL;
}

void dlp_model_list_free(dlp_model_list *l) {
  if (!l) return;
  for (size_t i = 0; i < l->n; i++) {
    nn_cache_item_clear(&l->items[i]);
    free(l->paths[i]);
  }
  free(l->entries);
  free(l->items);
  free(l->paths);
  free(l);
}

/* Fills entry i from the cache item (when the file is present). */
static int list_attach(dlp_err *e, dlp_model_list *l, size_t i,
                       const char *dir) {
  nn_cache_item *it = &l->items[i];
  dlp_model_entry *m = &l->entries[i];
  char path[PATH_MAX_LEN];
  int rc = nn_cache_path(e, dir, it->file, path, sizeof path);
  if (rc != DLP_OK) return rc;
  struct stat st;
  if (stat(path, &st) != 0 || !S_ISREG(st.st_mode) ||
      (it->bytes && (uint64_t)st.st_size != it->bytes))
    return DLP_OK; /* listed but gone or changed: not cached */
  l->paths[i] = dlp_strdup(path);
  if (!l->paths[i]) return dlp_err_set(e, DLP_ERR_NOMEM, "no memory");
  m->cached = 1;
  m->path = l->paths[i];
  m->sha256 = it->sha256;
  return DLP_OK;
}

static int list_fill(dlp_err *e, dlp_model_list *l, const char *dir,
                     const cJSON *models) {
  size_t nz = nn_zoo_count();
  for (size_t i = 0; i < nz; i++) {
    const nn_zoo_entry *z = nn_zoo_at(i);
    dlp_model_entry *m = &l->entries[l->n];
    m->name = z->name;
    m->file_name = z->weights_file;
    m->url = z->url;
    m->input_width = z->width;
    m->input_height = z->height;
    m->preprocessing = nn_norm_name(z->norm);
    const cJSON *o;
    cJSON_ArrayForEach(o, models) {
      nn_cache_item it;
      item_from_json(o, &it);
      if (item_valid(&it) && strcasecmp(it.name, z->name) == 0) {
        l->items[l->n] = it;
        if (strcmp(it.kind, NN_CACHE_KIND_WEIGHTS_NOTOP) == 0)
          m->file_name = z->weights_file_notop;
        int rc = list_attach(e, l, l->n, dir);
        if (rc != DLP_OK) return rc;
        break;
      }
      nn_cache_item_clear(&it);
    }
    l->n++;
  }
  const cJSON *o;
  cJSON_ArrayForEach(o, models) {
    nn_cache_item it;
    item_from_json(o, &it);
    if (!item_valid(&it) || nn_zoo_find_ci(it.name)) {
      nn_cache_item_clear(&it);
      continue;
    }
    l->items[l->n] = it;
    dlp_model_entry *m = &l->entries[l->n];
    m->name = it.name;
    m->file_name = it.file;
    m->input_width = it.width;
    m->input_height = it.height;
    m->preprocessing = it.preprocessing ? it.preprocessing : "none";
    int rc = list_attach(e, l, l->n, dir);
    l->n++;
    if (rc != DLP_OK) return rc;
  }
  return DLP_OK;
}

int dlp_model_list_get(dlp_ctx *ctx, const char *model_dir,
                       dlp_model_list **out) {
  if (!out) return dlp_fail(ctx, DLP_ERR_ARG, "model list: out is NULL");
  *out = NULL;
  dlp_err e = {0};
  char dir[PATH_MAX_LEN];
  cJSON *root = NULL;
  int rc = nn_cache_dir(&e, model_dir, dir, sizeof dir);
  if (rc == DLP_OK) rc = index_read(&e, dir, &root);
  if (rc != DLP_OK) return dlp_fail_from(ctx, &e);
  const cJSON *models = cJSON_GetObjectItem(root, "models");
  size_t cap = nn_zoo_count() + (size_t)cJSON_GetArraySize(models);
  dlp_model_list *l = calloc(1, sizeof *l);
  if (l) {
    l->entries = dlp_calloc_array(cap + 1, sizeof *l->entries);
    l->items = dlp_calloc_array(cap + 1, sizeof *l->items);
    l->paths = dlp_calloc_array(cap + 1, sizeof *l->paths);
  }
  if (!l || !l->entries || !l->items || !l->paths)
    rc = dlp_err_set(&e, DLP_ERR_NOMEM, "no memory for the model list");
  else
    rc = list_fill(&e, l, dir, models);
  cJSON_Delete(root);
  if (rc != DLP_OK) {
    dlp_model_list_free(l);
    return dlp_fail_from(ctx, &e);
  }
  *out = l;
  return dlp_ok(ctx);
}

/* --- import ------------------------------------------------------------- */

static int mkdir_p(dlp_err *e, const char *dir) {
  char buf[PATH_MAX_LEN];
  if (snprintf(buf, sizeof buf, "%s", dir) >= (int)sizeof buf)
    return dlp_err_set(e, DLP_ERR_ARG, "path too long: %s", dir);
  for (char *p = buf + 1;; p++) {
    if (*p == '/' || *p == '\0') {
      char c = *p;
      *p = '\0';
      if (mkdir(buf, 0755) != 0 && errno != EEXIST)
        return dlp_err_set(e, DLP_ERR_IO, "cannot create folder %s: %s", buf,
                           strerror(errno));
      *p = c;
      if (c == '\0') break;
    }
  }
  return DLP_OK;
}

static const char *base_name(const char *path) {
  const char *s = strrchr(path, '/');
  return s ? s + 1 : path;
}

/* Copies src to dst (through dst.tmp.<pid>, then rename) and hashes it. */
static int copy_hash(dlp_err *e, const char *src, const char *dst,
                     char sha[65], uint64_t *bytes) {
  char tmp[PATH_MAX_LEN];
  if (snprintf(tmp, sizeof tmp, "%s.tmp.%ld", dst, (long)getpid()) >=
      (int)sizeof tmp)
    return dlp_err_set(e, DLP_ERR_ARG, "path too long: %s", dst);
  FILE *in = fopen(src, "rb");
  if (!in)
    return dlp_err_set(e, DLP_ERR_IO, "cannot open %s: %s", src,
                       strerror(errno));
  FILE *out = fopen(tmp, "wb");
  EVP_MD_CTX *c = EVP_MD_CTX_new();
  unsigned char *buf = malloc(COPY_CHUNK);
  int rc = DLP_OK;
  if (!out)
    rc = dlp_err_set(e, DLP_ERR_IO, "cannot create %s: %s", tmp,
                     strerror(errno));
  else if (!c || !buf || EVP_DigestInit_ex(c, EVP_sha256(), NULL) != 1)
    rc = dlp_err_set(e, DLP_ERR_NOMEM, "no memory to copy %s", src);
  *bytes = 0;
  size_t got;
  while (rc == DLP_OK && (got = fread(buf, 1, COPY_CHUNK, in)) > 0) {
    EVP_DigestUpdate(c, buf, got);
    *bytes += got;
    if (fwrite(buf, 1, got, out) != got)
      rc = dlp_err_set(e, DLP_ERR_IO, "cannot write %s: %s", tmp,
                       strerror(errno));
  }
  if (rc == DLP_OK && ferror(in))
    rc = dlp_err_set(e, DLP_ERR_IO, "cannot read %s", src);
  unsigned char d[EVP_MAX_MD_SIZE];
  unsigned dn = 0;
  if (rc == DLP_OK && EVP_DigestFinal_ex(c, d, &dn) != 1)
    rc = dlp_err_set(e, DLP_ERR_INTERNAL, "hash of %s failed", src);
  if (out && fclose(out) != 0 && rc == DLP_OK)
    rc = dlp_err_set(e, DLP_ERR_IO, "cannot write %s: %s", tmp,
                     strerror(errno));
  if (rc == DLP_OK && rename(tmp, dst) != 0)
    rc = dlp_err_set(e, DLP_ERR_IO, "cannot rename %s to %s: %s", tmp, dst,
                     strerror(errno));
  if (rc != DLP_OK && out) unlink(tmp);
  if (rc == DLP_OK) to_hex(d, dn, sha);
  free(buf);
  EVP_MD_CTX_free(c);
  fclose(in);
  return rc;
}

/* What an imported file turned out to be. */
typedef struct import_plan {
  const nn_zoo_entry *zoo; /* weights for this architecture, or NULL */
  const char *kind;
  char name[NAME_MAX_LEN + 1];
  const char *ext; /* full models: ".h5" / ".onnx" */
  int32_t width, height;
  const char *preprocessing;
} import_plan;

/* Loads path's weights into z's graph (with or without the top). */
static int try_zoo_weights(dlp_err *e, const nn_zoo_entry *z, bool top,
                           const char *path, uint64_t max_bytes) {
  nn_graph *g = NULL;
  int rc = nn_zoo_build(e, z, top, &g);
  if (rc == DLP_OK) rc = nn_keras_load_weights(e, path, max_bytes, g);
  nn_graph_free(g);
  return rc;
}

/* The zoo entry whose graph has the most of the file's layer names (at
 * least 90% of them, and more than 10), or NULL. */
static const nn_zoo_entry *zoo_by_layer_names(const char *path,
                                              uint64_t max_bytes) {
  dlp_err e = {0};
  char **names = NULL;
  int n = 0;
  if (nn_keras_file_layer_names(&e, path, max_bytes, &names, &n) != DLP_OK)
    return NULL;
  const nn_zoo_entry *best = NULL;
  int best_hits = 0;
  for (size_t i = 0; n > 10 && i < nn_zoo_count(); i++) {
    nn_graph *g = NULL;
    if (nn_zoo_build(&e, nn_zoo_at(i), true, &g) != DLP_OK) continue;
    int hits = 0;
    for (int k = 0; k < n; k++)
      hits += nn_graph_find_node(g, names[k]) >= 0;
    nn_graph_free(g);
    if (hits > best_hits && hits * 10 >= n * 9) {
      best = nn_zoo_at(i);
      best_hits = hits;
    }
  }
  nn_keras_names_free(names, n);
  return best;
}

/* Decides whether path holds weights of a zoo architecture: named by `as`,
 * or recognised by its file name (hint) or its layer names. Sets p->zoo
 * and p->kind on success; returns DLP_ERR_NOT_FOUND (no message) when it is
 * not such a file and `as` did not claim it was. */
static int match_zoo(dlp_err *e, const char *path, const char *hint,
                     const char *as, uint64_t max_bytes, import_plan *p) {
  const nn_zoo_entry *z = nn_zoo_find_ci(as);
  bool claimed = z != NULL;
  for (size_t i = 0; !z && i < nn_zoo_count(); i++) {
    const nn_zoo_entry *c = nn_zoo_at(i);
    if ((c->weights_file && strcmp(hint, c->weights_file) == 0) ||
        (c->weights_file_notop && strcmp(hint, c->weights_file_notop) == 0))
      z = c;
  }
  if (!z && !as) z = zoo_by_layer_names(path, max_bytes);
  if (!z) return DLP_ERR_NOT_FOUND;
  bool notop_first = z->weights_file_notop &&
                     strcmp(hint, z->weights_file_notop) == 0;
  dlp_err first = {0}, second = {0};
  if (try_zoo_weights(&first, z, !notop_first, path, max_bytes) == DLP_OK) {
    p->kind = notop_first ? NN_CACHE_KIND_WEIGHTS_NOTOP : NN_CACHE_KIND_WEIGHTS;
  } else if (try_zoo_weights(&second, z, notop_first, path, max_bytes) ==
             DLP_OK) {
    p->kind = notop_first ? NN_CACHE_KIND_WEIGHTS : NN_CACHE_KIND_WEIGHTS_NOTOP;
  } else if (claimed) {
    return dlp_err_set(e, first.code ? first.code : DLP_ERR_SCHEMA,
                       "%s does not hold %s weights: %s", path, z->name,
                       first.msg);
  } else {
    return DLP_ERR_NOT_FOUND;
  }
  p->zoo = z;
  snprintf(p->name, sizeof p->name, "%s", z->name);
  p->width = z->width;
  p->height = z->height;
  p->preprocessing = nn_norm_name(z->norm);
  return DLP_OK;
}

static int check_name(dlp_err *e, const char *name) {
  size_t n = strlen(name);
  if (n == 0 || n > NAME_MAX_LEN || name[0] == '.')
    return dlp_err_set(e, DLP_ERR_ARG,
                       "invalid model name '%s': 1 to %d characters, not "
                       "starting with '.'", name, NAME_MAX_LEN);
  for (size_t i = 0; i < n; i++) {
    char c = name[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
          (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '.'))
      return dlp_err_set(e, DLP_ERR_ARG,
                         "invalid model name '%s': use letters, digits, "
                         "'_', '-' and '.'", name);
  }
  return DLP_OK;
}

/* A full model file under a name of its own: loads it to verify it. */
static int plan_full_model(dlp_err *e, const char *path, const char *hint,
                           const char *as, uint64_t max_bytes,
                           import_plan *p) {
  if (as) {
    snprintf(p->name, sizeof p->name, "%s", as);
  } else { /* the file name without its extension */
    snprintf(p->name, sizeof p->name, "%s", hint);
    char *dot = strrchr(p->name, '.');
    if (dot && dot != p->name) *dot = '\0';
  }
  int rc = check_name(e, p->name);
  if (rc != DLP_OK) return rc;
  if (nn_zoo_find_ci(p->name))
    return dlp_err_set(e, DLP_ERR_ARG,
                       "%s is a zoo architecture, but %s is not weights for "
                       "it; import it under another name with --as NAME",
                       p->name, path);
  nn_file_kind kind;
  rc = nn_model_file_kind(e, path, &kind);
  if (rc != DLP_OK) return rc;
  nn_graph *g = NULL;
  rc = nn_model_load_file(e, path, max_bytes, 0, 0, &g);
  if (rc != DLP_OK) return rc;
  p->kind = kind == NN_FILE_KERAS ? NN_CACHE_KIND_KERAS : NN_CACHE_KIND_ONNX;
  p->ext = kind == NN_FILE_KERAS ? ".h5" : ".onnx";
  p->width = g->input_spec.width;
  p->height = g->input_spec.height;
  if (g->n_inputs == 1) {
    const nn_value *in = &g->values[g->inputs[0]];
    if (p->width <= 0 && in->shape.ndim == 4) {
      p->height = (int32_t)in->shape.dims[2];
      p->width = (int32_t)in->shape.dims[3];
    }
  }
  if (p->width < 0 || p->height < 0) p->width = p->height = 0;
  p->preprocessing = nn_norm_name(g->input_spec.norm);
  nn_graph_free(g);
  return DLP_OK;
}

/* Replaces the index entry of p->name with the new one. */
static int index_put(dlp_err *e, const char *dir, const import_plan *p,
                     const char *file, const char *sha, uint64_t bytes,
                     const char *source) {
  cJSON *root = NULL;
  int rc = index_read(e, dir, &root);
  if (rc != DLP_OK) return rc;
  cJSON *models = cJSON_GetObjectItem(root, "models");
  for (int i = cJSON_GetArraySize(models) - 1; i >= 0; i--) {
    const cJSON *n = cJSON_GetObjectItem(cJSON_GetArrayItem(models, i), "name");
    if (cJSON_IsString(n) && strcasecmp(n->valuestring, p->name) == 0)
      cJSON_DeleteItemFromArray(models, i);
  }
  cJSON *o = cJSON_CreateObject();
  bool ok = o && cJSON_AddStringToObject(o, "name", p->name) &&
            cJSON_AddStringToObject(o, "kind", p->kind) &&
            cJSON_AddStringToObject(o, "file", file) &&
            cJSON_AddStringToObject(o, "sha256", sha) &&
            cJSON_AddNumberToObject(o, "bytes", (double)bytes) &&
            cJSON_AddNumberToObject(o, "width", p->width) &&
            cJSON_AddNumberToObject(o, "height", p->height) &&
            cJSON_AddStringToObject(o, "preprocessing", p->preprocessing) &&
            cJSON_AddStringToObject(o, "source", source);
  if (ok) ok = cJSON_AddItemToArray(models, o);
  else cJSON_Delete(o);
  rc = ok ? index_write(e, dir, root)
          : dlp_err_set(e, DLP_ERR_NOMEM, "no memory for the index");
  cJSON_Delete(root);
  return rc;
}

/* Holds an exclusive lock on dir/.lock while the index changes, so that two
 * imports at once do not lose an entry. */
static int lock_cache(dlp_err *e, const char *dir, int *fd) {
  char path[PATH_MAX_LEN];
  int rc = nn_cache_path(e, dir, ".lock", path, sizeof path);
  if (rc != DLP_OK) return rc;
  *fd = open(path, O_RDWR | O_CREAT, 0644);
  if (*fd < 0 || flock(*fd, LOCK_EX) != 0) {
    if (*fd >= 0) close(*fd);
    return dlp_err_set(e, DLP_ERR_IO, "cannot lock %s: %s", path,
                       strerror(errno));
  }
  return DLP_OK;
}

/* Import with a file-name hint (the downloaded file's URL name). */
static int cache_import(dlp_ctx *ctx, dlp_err *e, const char *dir,
                        const char *path, const char *hint, const char *as,
                        const char *source, char **name_out) {
  uint64_t max_bytes = dlp_ctx_max_file_bytes(ctx);
  import_plan p;
  memset(&p, 0, sizeof p);
  struct stat st;
  if (stat(path, &st) != 0)
    return dlp_err_set(e, errno == ENOENT ? DLP_ERR_NOT_FOUND : DLP_ERR_IO,
                       "cannot import %s: %s", path, strerror(errno));
  if (!S_ISREG(st.st_mode))
    return dlp_err_set(e, DLP_ERR_ARG, "cannot import %s: not a file", path);
  nn_file_kind kind;
  int rc = nn_model_file_kind(e, path, &kind);
  if (rc != DLP_OK) return rc;
  rc = kind == NN_FILE_KERAS
           ? match_zoo(e, path, hint, as, max_bytes, &p)
           : (nn_zoo_find_ci(as) ? dlp_err_set(e, DLP_ERR_FORMAT,
                                               "%s is an ONNX file, not Keras "
                                               "weights for %s", path, as)
                                 : DLP_ERR_NOT_FOUND);
  if (rc == DLP_ERR_NOT_FOUND)
    rc = plan_full_model(e, path, hint, as, max_bytes, &p);
  if (rc != DLP_OK) return rc;
  char file[NAME_MAX_LEN + 16], dst[PATH_MAX_LEN];
  if (p.zoo)
    snprintf(file, sizeof file, "%.*s", NAME_MAX_LEN + 15,
             strcmp(p.kind, NN_CACHE_KIND_WEIGHTS) == 0
                 ? p.zoo->weights_file
                 : p.zoo->weights_file_notop);
  else
    snprintf(file, sizeof file, "%s%s", p.name, p.ext);
  int lock = -1;
  rc = mkdir_p(e, dir);
  if (rc == DLP_OK) rc = lock_cache(e, dir, &lock);
  if (rc != DLP_OK) return rc;
  char sha[65];
  uint64_t bytes = 0;
  rc = nn_cache_path(e, dir, file, dst, sizeof dst);
  if (rc == DLP_OK) rc = copy_hash(e, path, dst, sha, &bytes);
  if (rc == DLP_OK) rc = index_put(e, dir, &p, file, sha, bytes, source);
  close(lock);
  if (rc == DLP_OK && name_out) {
    *name_out = dlp_strdup(p.zoo ? p.zoo->name : p.name);
    if (!*name_out)
      rc = dlp_err_set(e, DLP_ERR_NOMEM, "import: no memory for the name");
  }
  return rc;
}

int dlp_model_import(dlp_ctx *ctx, const char *model_dir, const char *path,
                     const char *as, char **name_out) {
  if (name_out) *name_out = NULL;
  if (!path) return dlp_fail(ctx, DLP_ERR_ARG, "import: no file given");
  dlp_err e = {0};
  char dir[PATH_MAX_LEN];
  int rc = nn_cache_dir(&e, model_dir, dir, sizeof dir);
  if (rc == DLP_OK)
    rc = cache_import(ctx, &e, dir, path, base_name(path), as, path, name_out);
  return rc == DLP_OK ? dlp_ok(ctx) : dlp_fail_from(ctx, &e);
}

/* --- fetch -------------------------------------------------------------- */

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc = CURLE_FAILED_INIT;
static void curl_init(void) { curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT); }

typedef struct fetch_state {
  dlp_ctx *ctx;
  const char *what;
} fetch_state;

static int on_progress(void *user, curl_off_t total, curl_off_t now,
                       curl_off_t ut, curl_off_t un) {
  (void)ut;
  (void)un;
  fetch_state *s = user;
  return dlp_progress(s->ctx, s->what, (uint64_t)now, (uint64_t)total, false);
}

/* Downloads url into the open file fp. */
static int download(dlp_ctx *ctx, dlp_err *e, const char *url, FILE *fp) {
  pthread_once(&curl_once, curl_init);
  if (curl_init_rc != CURLE_OK)
    return dlp_err_set(e, DLP_ERR_INTERNAL, "libcurl failed to start: %s",
                       curl_easy_strerror(curl_init_rc));
  CURL *c = curl_easy_init();
  if (!c) return dlp_err_set(e, DLP_ERR_NOMEM, "libcurl: no memory");
  char errbuf[CURL_ERROR_SIZE] = "";
  fetch_state st = {ctx, "downloading"};
  curl_easy_setopt(c, CURLOPT_URL, url);
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https,file");
  curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
  curl_easy_setopt(c, CURLOPT_MAXREDIRS, 10L);
  curl_easy_setopt(c, CURLOPT_FAILONERROR, 1L);
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 30L);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, fp);
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt(c, CURLOPT_USERAGENT, "dlp/" DLP_VERSION);
  curl_easy_setopt(c, CURLOPT_MAXFILESIZE_LARGE,
                   (curl_off_t)dlp_ctx_max_file_bytes(ctx));
  curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
  curl_easy_setopt(c, CURLOPT_XFERINFODATA, &st);
  CURLcode cr = curl_easy_perform(c);
  long status = 0;
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
  curl_easy_cleanup(c);
  if (cr == CURLE_OK && fflush(fp) != 0)
    return dlp_err_set(e, DLP_ERR_IO, "cannot write the download: %s",
                       strerror(errno));
  if (cr == CURLE_OK) return DLP_OK;
  if (cr == CURLE_ABORTED_BY_CALLBACK)
    return dlp_err_set(e, DLP_ERR_ARG, "cancelled");
  if (cr == CURLE_HTTP_RETURNED_ERROR)
    return dlp_err_set(e, DLP_ERR_NOT_FOUND,
                       "cannot download %s: the server answered HTTP %ld",
                       url, status);
  if (cr == CURLE_FILESIZE_EXCEEDED)
    return dlp_err_set(e, DLP_ERR_TOO_LARGE,
                       "cannot download %s: larger than the file limit", url);
  return dlp_err_set(e, cr == CURLE_FILE_COULDNT_READ_FILE ? DLP_ERR_NOT_FOUND
                                                           : DLP_ERR_IO,
                     "cannot download %s: %s", url,
                     *errbuf ? errbuf : curl_easy_strerror(cr));
}

/* The hash a download must have: from a "#sha256=HEX" or "#md5=HEX" URL
 * fragment (cut off the URL), else the zoo's published MD5 for that file. */
typedef struct want_hash {
  const EVP_MD *md;
  const char *name; /* "sha256" / "md5" */
  char hex[129];
  const char *who; /* "the URL" / "Keras" */
} want_hash;

static void pick_hash(char *url, const nn_zoo_entry *z, want_hash *w) {
  memset(w, 0, sizeof *w);
  char *frag = strchr(url, '#');
  if (frag) {
    *frag++ = '\0';
    if (strncasecmp(frag, "sha256=", 7) == 0) {
      w->md = EVP_sha256();
      w->name = "sha256";
      snprintf(w->hex, sizeof w->hex, "%s", frag + 7);
    } else if (strncasecmp(frag, "md5=", 4) == 0) {
      w->md = EVP_md5();
      w->name = "md5";
      snprintf(w->hex, sizeof w->hex, "%s", frag + 4);
    }
    w->who = "the URL";
  }
  if (!w->md && z) {
    const char *file = base_name(url);
    const char *md5 = (z->weights_file_notop &&
                       strcmp(file, z->weights_file_notop) == 0)
                          ? z->md5_notop
                          : z->md5;
    if (md5) {
      w->md = EVP_md5();
      w->name = "md5";
      snprintf(w->hex, sizeof w->hex, "%s", md5);
      w->who = "Keras";
    }
  }
  for (char *p = w->hex; *p; p++)
    if (*p >= 'A' && *p <= 'F') *p = (char)(*p - 'A' + 'a');
}

static int check_hash(dlp_err *e, const char *path, const char *url,
                      const want_hash *w) {
  if (!w->md) return DLP_OK;
  char got[2 * EVP_MAX_MD_SIZE + 1];
  int rc = hash_file(e, path, w->md, got);
  if (rc != DLP_OK) return rc;
  if (strcmp(got, w->hex) == 0) return DLP_OK;
  return dlp_err_set(e, DLP_ERR_CORRUPT,
                     "the file downloaded from %s has %s %s, but %s says %s: "
                     "nothing was added to the cache", url, w->name, got,
                     w->who, w->hex);
}

int dlp_model_fetch(dlp_ctx *ctx, const char *model_dir, const char *name,
                    const char *url) {
  if (!name) return dlp_fail(ctx, DLP_ERR_ARG, "fetch: no model name given");
  const nn_zoo_entry *z = nn_zoo_find_ci(name);
  if (!url && !z)
    return dlp_fail(ctx, DLP_ERR_NOT_FOUND,
                    "fetch: %s is not a zoo model, so it has no canonical "
                    "address; give the URL of the file", name);
  if (!url) url = z->url;
  if (!url || !*url)
    return dlp_fail(ctx, DLP_ERR_UNSUPPORTED, "fetch: %s has no download "
                    "address", name);
  dlp_err e = {0};
  char dir[PATH_MAX_LEN], tmp[PATH_MAX_LEN];
  char *u = dlp_strdup(url);
  if (!u) return dlp_fail(ctx, DLP_ERR_NOMEM, "no memory");
  want_hash w;
  pick_hash(u, z, &w);
  int rc = nn_cache_dir(&e, model_dir, dir, sizeof dir);
  if (rc == DLP_OK) rc = mkdir_p(&e, dir);
  if (rc == DLP_OK && snprintf(tmp, sizeof tmp, "%s/.fetch-XXXXXX", dir) >=
                          (int)sizeof tmp)
    rc = dlp_err_set(&e, DLP_ERR_ARG, "path too long: %s", dir);
  int fd = rc == DLP_OK ? mkstemp(tmp) : -1;
  if (rc == DLP_OK && fd < 0)
    rc = dlp_err_set(&e, DLP_ERR_IO, "cannot create a file in %s: %s", dir,
                     strerror(errno));
  if (fd >= 0) {
    FILE *fp = fdopen(fd, "wb");
    if (!fp) {
      close(fd);
      rc = dlp_err_set(&e, DLP_ERR_IO, "cannot write %s", tmp);
    } else {
      rc = download(ctx, &e, u, fp);
      if (fclose(fp) != 0 && rc == DLP_OK)
        rc = dlp_err_set(&e, DLP_ERR_IO, "cannot write %s", tmp);
    }
    dlp_progress(ctx, "downloading", 1, 1, true);
    if (rc == DLP_OK) rc = check_hash(&e, tmp, u, &w);
    if (rc == DLP_OK) {
      rc = cache_import(ctx, &e, dir, tmp, base_name(u), z ? z->name : name,
                        u, NULL);
      if (rc != DLP_OK) { /* the temporary file's name means nothing */
        char msg[DLP_ERRMSG_MAX];
        snprintf(msg, sizeof msg, "%s", e.msg);
        dlp_err_set(&e, rc, "the file downloaded from %s cannot be used "
                    "(nothing was added to the cache): %s", u, msg);
      }
    }
    unlink(tmp);
  }
  free(u);
  return rc == DLP_OK ? dlp_ok(ctx) : dlp_fail_from(ctx, &e);
}
