/*
 * preadNoWait: a read that never waits for the disk. preadv2 with RWF_NOWAIT copies what the
 * page cache holds and returns; a read whose data is not cached yet comes back short, or with
 * EAGAIN. The event loop reads segment files with it, and finishes a miss on the threadpool
 * instead of blocking in pread while the disk catches up (src/segment/segment-set.ts).
 */
#define _GNU_SOURCE
#include "addon.h"
#include <errno.h>
#include <sys/uio.h>

/* preadNoWait(fd, buf, bufOffset, length, position) -> bytes read (0 when none is cached), or -errno. */
static napi_value js_pread_no_wait(napi_env env, napi_callback_info info) {
  size_t argc = 5, len;
  napi_value argv[5], out;
  uint8_t *buf;
  double fd, off, n, pos;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc != 5 || !num_arg(env, argv[0], &fd) || !bytes_arg(env, argv[1], &buf, &len) || !num_arg(env, argv[2], &off) ||
      !num_arg(env, argv[3], &n) || !num_arg(env, argv[4], &pos)) return NULL;
  if (off + n > (double)len) {
    napi_throw_range_error(env, NULL, "preadNoWait: range outside the buffer");
    return NULL;
  }
  double done = 0;
  while (done < n) {
    struct iovec iov = { buf + (size_t)(off + done), (size_t)(n - done) };
    ssize_t r = preadv2((int)fd, &iov, 1, (off_t)(pos + done), RWF_NOWAIT);
    if (r < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) break;
      if (done == 0) done = -errno;
      break;
    }
    if (r == 0) break;
    done += (double)r;
  }
  CHECK(napi_create_double(env, done, &out));
  return out;
}

void register_read_no_wait(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
    { "preadNoWait", NULL, js_pread_no_wait, NULL, NULL, NULL, napi_default, NULL },
  };
  napi_define_properties(env, exports, 1, props);
}
