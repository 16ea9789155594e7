/* main.c - the dlp command: dispatch to sub-commands. */
#include "dlp.h"

#include <stdio.h>
#include <string.h>

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "version") == 0) {
    printf("dlp %s\n", dlp_version());
    return 0;
  }
  fprintf(stderr, "usage: dlp version\n");
  return 2;
}
