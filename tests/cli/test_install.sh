# test_install.sh - `cmake --install` (what `make install PREFIX=...` runs)
# gives a library, header, dlp and dlp.pc that a program outside the tree
# can build against with pkg-config, and libdlp exports only the public API.
source "$(dirname "$0")/common.sh"

BUILD=$(cd "$(dirname "$DLP_BIN")" && pwd)
PREFIX="$WORK/prefix"
if cmake --install "$BUILD" --prefix "$PREFIX" >"$WORK/install.log" 2>&1; then
  pass "cmake --install into a fresh prefix"
else
  fail "cmake --install into a fresh prefix" "$(cat "$WORK/install.log")"
fi
libdir=$(ls -d "$PREFIX"/lib* | head -n 1)
for f in include/dlp.h bin/dlp; do
  check "installed $f" test -e "$PREFIX/$f"
done
check "installed libdlp.so" test -e "$libdir/libdlp.so"
pc=$(find "$PREFIX" -name dlp.pc | head -n 1)
check "installed dlp.pc" test -n "$pc"

# The README's C example, built the way the README says.
cat >"$WORK/app.c" <<'C'
#include <dlp.h>
#include <stdio.h>
#include <string.h>
int main(int argc, char **argv) {
  dlp_ctx *ctx;
  if (dlp_ctx_new(&ctx) != DLP_OK) return 1;
  dlp_scan_opts so;
  dlp_scan_opts_init(&so);
  so.labels_from_dirs = 1;
  dlp_frame *f = NULL;
  int rc = dlp_read_images(ctx, argv[1], &so, &f);
  if (rc == DLP_OK) printf("%zu rows, version %s\n", dlp_frame_nrows(f), dlp_version());
  else fprintf(stderr, "dlp: %s\n", dlp_errmsg(ctx));
  dlp_frame_free(f);
  dlp_ctx_free(ctx);
  return rc != DLP_OK || strcmp(dlp_version(), DLP_VERSION) != 0;
}
C
export PKG_CONFIG_PATH="$(dirname "$pc")"
# In the ASan/UBSan build the library is instrumented: so must the program be.
san=()
[ "${DLP_SANITIZED:-0}" = 1 ] && san=(-fsanitize=address,undefined)
if cc -std=c11 -Wall -Werror "${san[@]}" "$WORK/app.c" -o "$WORK/app" \
     $(pkg-config --cflags --libs dlp) 2>"$WORK/cc.log"; then
  pass "a program builds with pkg-config --cflags --libs dlp"
else
  fail "a program builds with pkg-config --cflags --libs dlp" "$(cat "$WORK/cc.log")"
fi
mkdir -p "$WORK/imgs/cats"
printf 'not an image' >"$WORK/imgs/cats/x.jpg"
if LD_LIBRARY_PATH="$libdir" "$WORK/app" "$WORK/imgs" >"$WORK/app.out" 2>&1 &&
   grep -q "^1 rows, version " "$WORK/app.out"; then
  pass "the installed library runs the example"
else
  fail "the installed library runs the example" "$(cat "$WORK/app.out")"
fi
check "pkg-config reports the header's version" \
  test "$(pkg-config --modversion dlp)" = \
       "$(sed -n 's/^#define DLP_VERSION "\(.*\)"/\1/p' "$PREFIX/include/dlp.h")"

# Only names declared DLP_API in dlp.h leave the shared library.
nm -D --defined-only "$libdir/libdlp.so" | awk '$2 ~ /^[TDB]$/ {print $3}' |
  sort >"$WORK/exported"
grep -o 'dlp_[a-z0-9_]*(' "$PREFIX/include/dlp.h" | tr -d '(' | sort -u >"$WORK/declared"
extra=$(comm -23 "$WORK/exported" "$WORK/declared")
if [ -z "$extra" ]; then
  pass "libdlp.so exports no internal symbol"
else
  fail "libdlp.so exports no internal symbol" "$extra"
fi
# And every function dlp.h declares is there (no declaration without code).
missing=$(comm -13 "$WORK/exported" "$WORK/declared")
if [ -z "$missing" ]; then
  pass "libdlp.so defines every function dlp.h declares"
else
  fail "libdlp.so defines every function dlp.h declares" "$missing"
fi
finish
