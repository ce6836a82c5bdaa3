#!/usr/bin/env bash
# `cmake --install` puts the header, both libraries, the CLI and ttsm.pc in
# place; a program built with pkg-config against them (shared and static)
# runs; the installed CLI runs from any prefix without LD_LIBRARY_PATH; the
# shared library exports only the public ttsm_ names.
source "$(dirname "$0")/lib.sh"
build=$(dirname "$TTSM")
prefix=$TMP/prefix
run cmake --install "$build" --prefix "$prefix"; expect_rc 0
pc=$(find "$prefix" -name ttsm.pc | head -1)
[ -n "$pc" ] || fail "no ttsm.pc installed"
libdir=$(dirname "$(dirname "$pc")")
for f in "$prefix/include/ttsm.h" "$prefix/bin/ttsm" "$libdir/libttsm.a" "$libdir/libttsm.so"; do
  [ -e "$f" ] || fail "not installed: $f"
  PASSED=$((PASSED + 1))
done

cat >"$TMP/prog.c" <<'C'
#include <stdio.h>
#include <ttsm.h>
int main(void)
{
    ttsm_load_config c = ttsm_load_config_default();
    c.engine = "chatterbox";
    c.device = "cpu";
    char key[TTSM_KEY_HEX_SIZE];
    ttsm_error err;
    if (ttsm_cache_key(&c, key, &err) != TTSM_OK) {
        fprintf(stderr, "%s\n", err.message);
        return 1;
    }
    printf("%s %s\n", ttsm_version(), key);
    return ttsm_status_is(TTSM_ERR_OUT_OF_MEMORY, TTSM_ERR_LOAD) ? 0 : 1;
}
C
export PKG_CONFIG_PATH=$(dirname "$pc")
# A sanitizer build's libraries need the same compiler and runtime to link.
CC=${TTSM_CC:-cc}
SAN=${TTSM_SANITIZE:+-fsanitize=$TTSM_SANITIZE}
run sh -c "$CC $SAN -std=c11 -Wall -Werror -o '$TMP/prog' '$TMP/prog.c' \$(pkg-config --cflags --libs ttsm)"
expect_rc 0
want=$(TTSM_CUDA_DRIVER=/nonexistent "$TTSM" key chatterbox --device cpu)
TTSM_CUDA_DRIVER=/nonexistent LD_LIBRARY_PATH=$libdir run "$TMP/prog"; expect_rc 0
expect_out "$want"
run sh -c "$CC $SAN -std=c11 -o '$TMP/prog-static' '$TMP/prog.c' \$(pkg-config --cflags ttsm) '$libdir/libttsm.a' \$(pkg-config --static --libs-only-other --libs-only-l ttsm | sed 's/-lttsm//')"
expect_rc 0
TTSM_CUDA_DRIVER=/nonexistent run "$TMP/prog-static"; expect_rc 0; expect_out "$want"
ldd "$TMP/prog-static" | grep -q libttsm && fail "static program links libttsm.so"

# The installed CLI finds its library through a RUNPATH relative to itself:
# a fresh prefix deep in a temporary folder, then that prefix moved, both with
# no LD_LIBRARY_PATH.
opt=$TMP/x/opt/ttsm
run cmake --install "$build" --prefix "$opt"; expect_rc 0
runpath=$(readelf -d "$opt/bin/ttsm" | sed -n 's/.*(RUNPATH).*\[\(.*\)\]/\1/p')
case $runpath in
  '$ORIGIN/../'*) PASSED=$((PASSED + 1)) ;;
  *) fail "installed ttsm: RUNPATH '$runpath', want \$ORIGIN/../<libdir>" ;;
esac
optlib=$(dirname "$(dirname "$(find "$opt" -name ttsm.pc | head -1)")")
[ "$opt/bin/${runpath#\$ORIGIN/}" -ef "$optlib" ] || fail "RUNPATH $runpath is not $optlib"
PASSED=$((PASSED + 1))
for where in "$opt" "$TMP/moved/ttsm"; do
  if [ "$where" != "$opt" ]; then mkdir -p "$(dirname "$where")"; mv "$opt" "$where"; fi
  lib=$(env -u LD_LIBRARY_PATH ldd "$where/bin/ttsm" | awk '$1 ~ /^libttsm\.so/ {print $3}')
  case $lib in
    "$where"/*) PASSED=$((PASSED + 1)) ;;
    *) fail "installed ttsm in $where loads libttsm from '$lib'" ;;
  esac
  run env -u LD_LIBRARY_PATH TTSM_CUDA_DRIVER=/nonexistent "$where/bin/ttsm" key chatterbox --device cpu
  expect_rc 0; expect_out "$want"
  run env -u LD_LIBRARY_PATH "$where/bin/ttsm" engines
  expect_rc 0; expect_out chatterbox
done

# Only ttsm_ symbols leave the shared library (-fvisibility=hidden + TTSM_API).
leaked=$(nm -D --defined-only "$libdir/libttsm.so" | awk '$2 ~ /[TDBR]/ {print $3}' | grep -v '^ttsm_' || true)
[ -z "$leaked" ] || fail "non-public symbols exported: $leaked"
PASSED=$((PASSED + 1))
done_testing
