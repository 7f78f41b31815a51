/* chronovol's native addon: shared N-API helpers and the parts' registration functions. */
#ifndef CHRONOVOL_ADDON_H
#define CHRONOVOL_ADDON_H
#include <node_api.h>
#include <stddef.h>
#include <stdint.h>

#define CHECK(call) do { if ((call) != napi_ok) { napi_throw_error(env, NULL, "chronovol-native: " #call " failed"); return NULL; } } while (0)

/* Argument readers: on a wrong argument they throw a TypeError and return 0. */
int bytes_arg(napi_env env, napi_value v, uint8_t **data, size_t *len);
int num_arg(napi_env env, napi_value v, double *out);
/* An async work's completion: calls the referenced callback with one int32, then drops the reference. */
void call_back_once(napi_env env, napi_ref callback, int32_t value);

void register_crc32c(napi_env env, napi_value exports);
void register_io_hints(napi_env env, napi_value exports);
void register_aligned_buffer(napi_env env, napi_value exports);
void register_affinity(napi_env env, napi_value exports);
void register_read_no_wait(napi_env env, napi_value exports);
void register_file_lock(napi_env env, napi_value exports);
void register_aes_gcm(napi_env env, napi_value exports);
#endif
