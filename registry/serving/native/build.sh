#!/bin/sh
# Build the compiled tree walker: build.sh SOURCE LIBRARY (the Makefile and the Dockerfile both call this).
# -ffp-contract=off and -fno-fast-math: nothing fused or reordered, so forests add up exactly as scikit-learn's do.
set -eu
exec "${CC:-cc}" ${CFLAGS:--O2} -std=c11 -Wall -Wextra -fPIC -shared -ffp-contract=off -fno-fast-math -o "$2" "$1"
