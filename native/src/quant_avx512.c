// quant.c built with AVX-512 F/BW/VL/VNNI as well (binding.gyp): its dot products use vpdpbusd on 256-bit vectors.
#include "quant.c"
