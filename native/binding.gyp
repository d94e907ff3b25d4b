# The optional native CPU backend (src/backend/native.ts). kernels.c is compiled once per instruction set: a
# portable build with the compiler's baseline flags, and on x86-64 an AVX2+FMA build that the addon uses only when
# the CPU (and OS) report both (__builtin_cpu_supports), so a binary built on one machine still runs on an older
# one. No -march=native.
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
      "sources": ["src/addon.c", "src/pool.c", "src/kernels.c"],
      "defines": ["MB_ISA=generic"],
      "libraries": ["-lm", "-lpthread"],
      "conditions": [
        ["target_arch=='x64'", {
          "defines": ["MB_HAVE_X86"],
          "dependencies": ["mambabyte_avx2"]
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
          "sources": ["src/kernels_avx2.c"],
          "defines": ["MB_ISA=avx2"],
          "cflags": ["-mavx2", "-mfma"],
          "xcode_settings": { "OTHER_CFLAGS": ["-mavx2", "-mfma"] }
        }
      ]
    }]
  ]
}
