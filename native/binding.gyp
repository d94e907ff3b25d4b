# The optional native CPU backend (src/backend/native.ts). kernels.c and quant.c are compiled once per instruction
# set: a portable build with the compiler's baseline flags, and on x86-64 an AVX2+FMA+F16C build and an AVX-512
# (F/BW/VL/VNNI) build of quant.c, which the addon uses only when the CPU (and OS) report them
# (__builtin_cpu_supports), so a binary built on one machine still runs on an older one. No -march=native.
{
  "target_defaults": {
    "cflags": ["-std=gnu11", "-O3", "-fPIC", "-ffp-contract=fast", "-fno-math-errno", "-Wno-unused-function", "-Wno-psabi"],
    "cflags!": ["-O2"],
    "xcode_settings": {
      "OTHER_CFLAGS": ["-std=gnu11", "-O3", "-ffp-contract=fast", "-fno-math-errno", "-Wno-unused-function", "-Wno-psabi"]
    }
  },
  "targets": [
    {
      "target_name": "mambabyte",
      "sources": ["src/addon.c", "src/pool.c", "src/kernels.c", "src/quant.c", "src/quant_ref.c", "src/step.c"],
      "defines": ["MB_ISA=generic"],
      "libraries": ["-lm", "-lpthread"],
      "conditions": [
        ["target_arch=='x64'", {
          "defines": ["MB_HAVE_X86"],
          "dependencies": ["mambabyte_avx2", "mambabyte_avx512"]
        }]
      ]
    }
  ],
  "conditions": [
    ["target_arch=='x64'", {
      "targets": [
        {
          "target_name": "mambabyte_avx2",
          "type": "static_library",
          "sources": ["src/kernels_avx2.c", "src/quant_avx2.c"],
          "defines": ["MB_ISA=avx2", "MB_HAVE_X86"],
          "cflags": ["-mavx2", "-mfma", "-mf16c"],
          "xcode_settings": { "OTHER_CFLAGS": ["-mavx2", "-mfma", "-mf16c"] }
        },
        {
          "target_name": "mambabyte_avx512",
          "type": "static_library",
          "sources": ["src/quant_avx512.c"],
          "defines": ["MB_ISA=avx512", "MB_HAVE_X86"],
          "cflags": ["-mavx2", "-mfma", "-mf16c", "-mavx512f", "-mavx512bw", "-mavx512vl", "-mavx512vnni"],
          "xcode_settings": { "OTHER_CFLAGS": ["-mavx2", "-mfma", "-mf16c", "-mavx512f", "-mavx512bw", "-mavx512vl", "-mavx512vnni"] }
        }
      ]
    }]
  ]
}
