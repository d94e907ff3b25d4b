// quant.c built with -mavx2 -mfma -mf16c (binding.gyp); a separate file so the build gives it its own object.
#include "quant.c"
