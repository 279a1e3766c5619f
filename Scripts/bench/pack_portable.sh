#!/usr/bin/env bash
# Packs the release `llava` with every shared library it loads into one folder, so that it runs on
# a Linux x86-64 machine without a Swift toolchain (for example a many-core machine for
# `scaling_run.sh`). OpenBLAS is included although `ldd` does not list it: the engine opens it at
# run time (dlopen), after choosing its kernel family from the CPU's features.
#
#   Scripts/bench/pack_portable.sh [DEST] [REFERENCE]
#
# DEST (default .device, inside the project: keep it out of git) receives bundle.tar.xz and a
# wrapper `llava` that unpacks the bundle on first use and runs the binary through the packed
# loader with the packed libraries (the other machine's C library does not matter), with
# LLAVA_HOME set to the project folder above DEST (for Prompts/ and Models/).
# REFERENCE, when given, is a checkpoint folder made by make_bench_checkpoint.py: its tokenizer,
# benchmark inputs and bench_info.json are copied to DEST/reference-inputs, so that the other
# machine can write the same checkpoint with `make_bench_checkpoint.py --inputs-from` (which
# needs neither sentencepiece nor Pillow there).
set -euo pipefail
dest=${1:-.device}
reference=${2:-}
swift build -c release --product llava >&2
bin=$(swift build -c release --product llava --show-bin-path)/llava

libraries=$(ldconfig -p)
blas=$(awk '$1 == "libopenblas.so.0" && /x86-64/ {print $NF}' <<<"$libraries" | head -n 1)
[[ -n $blas && -e $blas ]] || { echo "pack_portable: libopenblas.so.0 not found by ldconfig" >&2; exit 1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/bin" "$tmp/lib" "$dest"
cp "$bin" "$tmp/bin/llava"
cp -L "$blas" "$tmp/lib/libopenblas.so.0"
for object in "$bin" "$blas"; do
    ldd "$object" | awk '/=>/ && $3 ~ /^\// {print $3}' | while read -r lib; do
        [[ -e $tmp/lib/$(basename "$lib") ]] || cp -L "$lib" "$tmp/lib/"
    done
done
loader=$(ldd "$bin" | awk '/ld-linux/ {print $1}')
cp -L "$loader" "$tmp/lib/ld-linux.so"
rm -rf "$dest/bin" "$dest/lib"  # an earlier unpacked bundle
tar cJf "$dest/bundle.tar.xz" -C "$tmp" bin lib

cat > "$dest/llava" <<'WRAPPER'
#!/usr/bin/env bash
here=$(cd "$(dirname "$0")" && pwd)
[[ -x $here/lib/ld-linux.so ]] || tar xJf "$here/bundle.tar.xz" -C "$here"
export LLAVA_HOME=${LLAVA_HOME:-$(cd "$here/.." && pwd)}
exec "$here/lib/ld-linux.so" --library-path "$here/lib" "$here/bin/llava" "$@"
WRAPPER
chmod +x "$dest/llava"

if [[ -n $reference ]]; then
    mkdir -p "$dest/reference-inputs"
    for name in tokenizer.model bench.png question.txt question-600.txt bench_info.json; do
        cp "$reference/$name" "$dest/reference-inputs/"
    done
fi
echo "packed $(du -h "$dest/bundle.tar.xz" | cut -f1) into $dest (OpenBLAS from $blas)" >&2
