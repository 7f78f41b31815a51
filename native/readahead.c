/*
 * Read-ahead without copying: posix_fadvise(WILLNEED) on a libuv threadpool thread starts the
 * disk reads for a range of a segment file, so a scan finds the next bytes in the page cache.
 * The fallback (src/storage/node-file-system.ts) reads the range into a throw-away buffer, which
 * costs a copy of every byte. Not on the main thread: the call can wait for request slots.
 */
#include "addon.h"
#include <fcntl.h>
#include <stdlib.h>

typedef struct {
  napi_async_work work;
  napi_ref callback;
  int fd, err;
  off_t pos, len;
} advice_t;

static void execute(napi_env env, void *data) {
  advice_t *a = data;
  a->err = posix_fadvise(a->fd, a->pos, a->len, POSIX_FADV_WILLNEED);
}

static void complete(napi_env env, napi_status status, void *data) {
  advice_t *a = data;
  napi_value cb, global, arg;
  if (napi_get_reference_value(env, a->callback, &cb) == napi_ok && napi_get_global(env, &global) == napi_ok &&
      napi_create_int32(env, status == napi_ok ? a->err : -1, &arg) == napi_ok) {
    napi_call_function(env, global, cb, 1, &arg, NULL);
  }
  napi_delete_reference(env, a->callback);
  napi_delete_async_work(env, a->work);
  free(a);
}

/* willNeed(fd, position, length, callback(errno)) */
static napi_value js_will_need(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4], name;
  double fd, pos, len;
  napi_valuetype t;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc != 4 || !num_arg(env, argv[0], &fd) || !num_arg(env, argv[1], &pos) || !num_arg(env, argv[2], &len)) return NULL;
  if (napi_typeof(env, argv[3], &t) != napi_ok || t != napi_function) {
    napi_throw_type_error(env, NULL, "expected a callback");
    return NULL;
  }
  advice_t *a = calloc(1, sizeof *a);
  if (!a) {
    napi_throw_error(env, NULL, "out of memory");
    return NULL;
  }
  a->fd = (int)fd;
  a->pos = (off_t)pos;
  a->len = (off_t)len;
  CHECK(napi_create_reference(env, argv[3], 1, &a->callback));
  CHECK(napi_create_string_utf8(env, "chronovol:willNeed", NAPI_AUTO_LENGTH, &name));
  CHECK(napi_create_async_work(env, NULL, name, execute, complete, a, &a->work));
  CHECK(napi_queue_async_work(env, a->work));
  return NULL;
}

void register_readahead(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
    { "willNeed", NULL, js_will_need, NULL, NULL, NULL, napi_default, NULL },
  };
  napi_define_properties(env, exports, 1, props);
}
