// quant.c built with AVX-512 F/BW/VL/VNNI as well (binding.gyp): q8_0, q4_k and q6_k run on 512-bit vectors
// (quant_wide.c).
#include "quant.c"
