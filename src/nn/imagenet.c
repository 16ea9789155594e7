/* imagenet.c - the ImageNet class descriptions (dlp_imagenet_class), read
 * once from imagenet_classes.txt: $DLP_DATA_DIR, then the install data
 * folder, then the build tree (the build writes it from Debian's torchvision
 * _meta.py; see docs/models.md). */
#include "core.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define N_CLASSES 1000
#define CLASSES_FILE "imagenet_classes.txt"
#define MAX_BYTES (1u << 20)

#ifndef DLP_INSTALL_DATADIR
#define DLP_INSTALL_DATADIR "/usr/local/share/dlp"
#endif
#ifndef DLP_BUILD_DATADIR
#define DLP_BUILD_DATADIR ""
#endif

static pthread_once_t once = PTHREAD_ONCE_INIT;
static char *text;                   /* the file, lines cut at '\n' */
static const char *names[N_CLASSES]; /* into text; all set, or none */

/* Takes the file if it has exactly N_CLASSES non-empty lines. */
static bool load(const char *dir) {
  if (!dir || !*dir) return false;
  char path[4096];
  if (snprintf(path, sizeof path, "%s/%s", dir, CLASSES_FILE) >=
      (int)sizeof path)
    return false;
  uint8_t *data = NULL;
  size_t len = 0;
  dlp_err e = {0};
  if (dlp_read_file(&e, path, MAX_BYTES, &data, &len) != DLP_OK) return false;
  char *s = realloc(data, len + 1);
  if (!s) {
    free(data);
    return false;
  }
  s[len] = '\0';
  int n = 0;
  for (char *p = s; *p && n <= N_CLASSES;) {
    char *nl = strchr(p, '\n');
    if (nl) *nl = '\0';
    if (*p == '\0' || n == N_CLASSES) {
      n = -1;
      break;
    }
    names[n++] = p;
    if (!nl) break;
    p = nl + 1;
  }
  if (n != N_CLASSES) {
    memset(names, 0, sizeof names);
    free(s);
    return false;
  }
  text = s;
  return true;
}

static void load_once(void) {
  if (!load(getenv("DLP_DATA_DIR")) && !load(DLP_INSTALL_DATADIR))
    load(DLP_BUILD_DATADIR);
}

const char *dlp_imagenet_class(int index) {
  pthread_once(&once, load_once);
  if (index < 0 || index >= N_CLASSES) return NULL;
  return names[index];
}
