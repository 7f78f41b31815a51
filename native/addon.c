#include "addon.h"

static napi_value init(napi_env env, napi_value exports) {
  register_crc32c(env, exports);
  register_io_hints(env, exports);
  register_aligned_buffer(env, exports);
  register_affinity(env, exports);
  register_read_no_wait(env, exports);
  register_file_lock(env, exports);
  register_aes_gcm(env, exports);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
