/*
 * The volume's single-owner lock (src/volume/volume-dir.ts): an open-file-description lock
 * (fcntl F_OFD_SETLK) on the whole LOCK file. It belongs to the open file description, so the
 * kernel drops it the moment its owner dies, zombie or not, where a pid recorded in the file
 * outlives the process until its parent reaps it. Unlike flock, it can be tested without being
 * taken (F_OFD_GETLK), so a reader asking "who owns this volume?" never makes a starting owner fail.
 */
#define _GNU_SOURCE /* F_OFD_SETLK, F_OFD_GETLK */
#include "addon.h"
#include <errno.h>
#include <fcntl.h>
#include <string.h>

static int whole_file_lock(int fd, int cmd, struct flock *fl) {
  memset(fl, 0, sizeof *fl);
  fl->l_type = F_WRLCK;
  fl->l_whence = SEEK_SET; /* l_start 0, l_len 0: the whole file, however long it grows */
  int r;
  do r = fcntl(fd, cmd, fl);
  while (r != 0 && errno == EINTR);
  return r == 0 ? 0 : errno;
}

/* lockNoWait(fd) -> 0 when the exclusive lock is taken, or an errno (EAGAIN: another owner holds it). */
static napi_value js_lock_no_wait(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], out;
  double fd;
  struct flock fl;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc != 1 || !num_arg(env, argv[0], &fd)) return NULL;
  CHECK(napi_create_int32(env, whole_file_lock((int)fd, F_OFD_SETLK, &fl), &out));
  return out;
}

/* lockHeld(fd) -> 1 when another open file description holds a lock on the file, 0 when none does, or -errno. */
static napi_value js_lock_held(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], out;
  double fd;
  struct flock fl;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc != 1 || !num_arg(env, argv[0], &fd)) return NULL;
  int err = whole_file_lock((int)fd, F_OFD_GETLK, &fl);
  CHECK(napi_create_int32(env, err ? -err : fl.l_type != F_UNLCK, &out));
  return out;
}

void register_file_lock(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
    { "lockNoWait", NULL, js_lock_no_wait, NULL, NULL, NULL, napi_default, NULL },
    { "lockHeld", NULL, js_lock_held, NULL, NULL, NULL, napi_default, NULL },
  };
  napi_define_properties(env, exports, 2, props);
}
