#!/usr/bin/env bash
# Builds the matview image without a container engine or a base image:
# a release build, its shared libraries (as ldd lists them) and a passwd entry
# for the non-root user, put into a FROM scratch image by buildah (vfs
# storage, chroot isolation), exported as an OCI archive; then the image's
# root filesystem is unpacked and its binary run in it (chroot) as a check.
#
#   hack/image.sh [OUTPUT]   default target/matview-image.oci.tar
set -euo pipefail
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO_ROOT"
OUT="${1:-target/matview-image.oci.tar}"
VERSION=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
log() { printf '[image %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }

command -v buildah >/dev/null || { log "buildah is required (apt-get install buildah)"; exit 1; }
command -v umoci >/dev/null || { log "umoci is required (apt-get install umoci)"; exit 1; }

log "cargo build --release --locked --bin matview"
cargo build --release --locked --bin matview
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
ROOT="$WORK/rootfs"
mkdir -p "$ROOT/usr/local/bin" "$ROOT/etc" "$ROOT/tmp"
cp target/release/matview "$ROOT/usr/local/bin/matview"
# The shared libraries the binary needs, at the paths the loader looks in.
ldd target/release/matview | grep -o '/[^ ]*' | while read -r lib; do
  mkdir -p "$ROOT$(dirname "$lib")"
  cp -L "$lib" "$ROOT$lib"
done
echo "nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin" >"$ROOT/etc/passwd"
echo "nonroot:x:65532:" >"$ROOT/etc/group"
chmod 1777 "$ROOT/tmp"
cat >"$WORK/Containerfile" <<CONTAINERFILE
FROM scratch
COPY rootfs/ /
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/matview"]
LABEL org.opencontainers.image.title="matview" \\
      org.opencontainers.image.version="$VERSION" \\
      org.opencontainers.image.description="Declarative CQRS read models for Kafka, run by Kubernetes" \\
      org.opencontainers.image.licenses="Apache-2.0"
CONTAINERFILE
log "buildah bud (vfs, chroot isolation)"
STORAGE=(--storage-driver vfs --root "$WORK/storage" --runroot "$WORK/run")
buildah "${STORAGE[@]}" bud --isolation chroot -t "matview:$VERSION" -f "$WORK/Containerfile" "$WORK" >&2
mkdir -p "$(dirname "$OUT")"
rm -f "$OUT"
buildah "${STORAGE[@]}" push "matview:$VERSION" "oci-archive:$OUT:matview:$VERSION" >&2
log "image: $OUT ($(du -h "$OUT" | cut -f1))"

log "check: unpack the image and run its entrypoint in it"
mkdir -p "$WORK/oci" && tar -xf "$OUT" -C "$WORK/oci"
umoci raw unpack --rootless --image "$WORK/oci:matview:$VERSION" "$WORK/unpacked" >&2
chroot --userspec=65532:65532 "$WORK/unpacked" /usr/local/bin/matview version
log "ok"
