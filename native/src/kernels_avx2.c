// kernels.c built with -mavx2 -mfma (binding.gyp); a separate file so the build gives it its own object.
#include "kernels.c"
