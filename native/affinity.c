/*
 * CPU affinity of one thread: the caller (tid 0) or another thread of this process, by tid
 * (sched_{get,set}affinity act on a thread, not the process). See src/fuse/thread-placement.ts.
 */
#define _GNU_SOURCE
#include "addon.h"
#include <errno.h>
#include <sched.h>
#include <string.h>

/* An optional thread id argument at argv[i]; 0 (the caller) if absent. */
static int tid_arg(napi_env env, size_t argc, napi_value *argv, size_t i, pid_t *tid) {
  double t = 0;
  if (argc > i && !num_arg(env, argv[i], &t)) return 0;
  *tid = (pid_t)t;
  return 1;
}

/* threadAffinity(tid = 0) -> the CPUs the thread may run on. */
static napi_value js_thread_affinity(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], out, v;
  pid_t tid;
  cpu_set_t set;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (!tid_arg(env, argc, argv, 0, &tid)) return NULL;
  if (sched_getaffinity(tid, sizeof set, &set) != 0) {
    napi_throw_error(env, NULL, strerror(errno));
    return NULL;
  }
  CHECK(napi_create_array(env, &out));
  uint32_t n = 0;
  for (int cpu = 0; cpu < CPU_SETSIZE; cpu++) {
    if (!CPU_ISSET(cpu, &set)) continue;
    CHECK(napi_create_uint32(env, (uint32_t)cpu, &v));
    CHECK(napi_set_element(env, out, n++, v));
  }
  return out;
}

/* setThreadAffinity(cpus, tid = 0) -> 0 or an errno. */
static napi_value js_set_thread_affinity(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2], out;
  pid_t tid;
  uint32_t len;
  bool is_array;
  cpu_set_t set;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 1 || napi_is_array(env, argv[0], &is_array) != napi_ok || !is_array) {
    napi_throw_type_error(env, NULL, "expected an array of CPU numbers");
    return NULL;
  }
  if (!tid_arg(env, argc, argv, 1, &tid)) return NULL;
  CHECK(napi_get_array_length(env, argv[0], &len));
  CPU_ZERO(&set);
  for (uint32_t i = 0; i < len; i++) {
    napi_value e;
    double cpu;
    CHECK(napi_get_element(env, argv[0], i, &e));
    if (!num_arg(env, e, &cpu)) return NULL;
    if (cpu >= CPU_SETSIZE) {
      napi_throw_range_error(env, NULL, "CPU number out of range");
      return NULL;
    }
    CPU_SET((int)cpu, &set);
  }
  int err = sched_setaffinity(tid, sizeof set, &set) == 0 ? 0 : errno;
  CHECK(napi_create_int32(env, err, &out));
  return out;
}

/* currentCpu() -> the CPU the calling thread is running on now. */
static napi_value js_current_cpu(napi_env env, napi_callback_info info) {
  napi_value out;
  CHECK(napi_create_int32(env, sched_getcpu(), &out));
  return out;
}

void register_affinity(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
    { "threadAffinity", NULL, js_thread_affinity, NULL, NULL, NULL, napi_default, NULL },
    { "setThreadAffinity", NULL, js_set_thread_affinity, NULL, NULL, NULL, napi_default, NULL },
    { "currentCpu", NULL, js_current_cpu, NULL, NULL, NULL, napi_default, NULL },
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
}
