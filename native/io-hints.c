/*
 * I/O hints, run on a libuv threadpool thread (they can wait for request slots, so never on the
 * main thread):
 * - willNeed: posix_fadvise(WILLNEED) starts the disk reads for a range of a segment file, so a
 *   scan finds the next bytes in the page cache. The fallback (src/storage/node-file-system.ts)
 *   reads the range into a throw-away buffer, which costs a copy of every byte.
 * - writeBack: sync_file_range(SYNC_FILE_RANGE_WRITE) starts writing a range that was just
 *   written, so the disk streams while appends go on and the next fdatasync finds little left.
 *   A hint only: durability still comes from fdatasync, which also reports any error.
 */
#define _GNU_SOURCE /* sync_file_range */
#include "addon.h"
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>

typedef struct {
  napi_async_work work;
  napi_ref callback;
  int fd, err, write_back;
  off_t pos, len;
} advice_t;

static void execute(napi_env env, void *data) {
  advice_t *a = data;
  if (a->write_back) a->err = sync_file_range(a->fd, a->pos, a->len, SYNC_FILE_RANGE_WRITE) ? errno : 0;
  else a->err = posix_fadvise(a->fd, a->pos, a->len, POSIX_FADV_WILLNEED);
}

static void complete(napi_env env, napi_status status, void *data) {
  advice_t *a = data;
  call_back_once(env, a->callback, status == napi_ok ? a->err : -1);
  napi_delete_async_work(env, a->work);
  free(a);
}

/* (fd, position, length, callback(errno)): queues the hint. */
static napi_value queue_hint(napi_env env, napi_callback_info info, int write_back) {
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
  a->write_back = write_back;
  a->fd = (int)fd;
  a->pos = (off_t)pos;
  a->len = (off_t)len;
  if (napi_create_reference(env, argv[3], 1, &a->callback) != napi_ok) {
    free(a);
    napi_throw_error(env, NULL, "chronovol-native: could not keep the callback");
    return NULL;
  }
  if (napi_create_string_utf8(env, write_back ? "chronovol:writeBack" : "chronovol:willNeed", NAPI_AUTO_LENGTH, &name) != napi_ok ||
      napi_create_async_work(env, NULL, name, execute, complete, a, &a->work) != napi_ok ||
      napi_queue_async_work(env, a->work) != napi_ok) {
    if (a->work) napi_delete_async_work(env, a->work);
    napi_delete_reference(env, a->callback); /* nothing was queued: complete() will not run */
    free(a);
    napi_throw_error(env, NULL, "chronovol-native: could not queue the hint");
    return NULL;
  }
  return NULL;
}

static napi_value js_will_need(napi_env env, napi_callback_info info) { return queue_hint(env, info, 0); }
static napi_value js_write_back(napi_env env, napi_callback_info info) { return queue_hint(env, info, 1); }

void register_io_hints(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
    { "willNeed", NULL, js_will_need, NULL, NULL, NULL, napi_default, NULL },
    { "writeBack", NULL, js_write_back, NULL, NULL, NULL, napi_default, NULL },
  };
  napi_define_properties(env, exports, 2, props);
}
