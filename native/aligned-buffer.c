/*
 * Page-aligned buffers for O_DIRECT writes: the kernel requires the memory of a direct write to
 * be aligned, and Node's allocator promises no more than 16 bytes. The memory is freed when
 * the Buffer is garbage-collected, and V8 is told of it meanwhile.
 */
#include "addon.h"
#include <stdlib.h>
#include <sys/mman.h>

/* Buffers aligned to a huge page are asked to be backed by huge pages (see below). */
#define HUGE_PAGE_BYTES (2u << 20)

/* The size rides in the hint, so V8's count of external memory can be given back. */
static void release(napi_env env, void *data, void *hint) {
  int64_t ignored;
  napi_adjust_external_memory(env, -(int64_t)(uintptr_t)hint, &ignored);
  free(data);
}

/* alignedBuffer(size, align) -> Buffer */
static napi_value js_aligned_buffer(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2], out;
  double size, align;
  void *p = NULL;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc != 2 || !num_arg(env, argv[0], &size) || !num_arg(env, argv[1], &align)) return NULL;
  if (size < 1 || align < 8 || ((size_t)align & ((size_t)align - 1)) || posix_memalign(&p, (size_t)align, (size_t)size)) {
    napi_throw_range_error(env, NULL, "alignedBuffer: bad size or alignment, or out of memory");
    return NULL;
  }
  /*
   * A direct read lands in the buffer's pages, one DMA segment per physically contiguous run, and
   * the device takes a bounded number of segments per request (virtio-blk here: 254). Over 4 KiB
   * pages a 4 MiB read went out as ~560 KiB requests; over huge pages it can go out whole. Only a
   * hint: without transparent huge pages the buffer works the same, in small pages.
   */
#ifdef MADV_HUGEPAGE
  if ((size_t)align >= HUGE_PAGE_BYTES) madvise(p, (size_t)size, MADV_HUGEPAGE);
#endif
  if (napi_create_external_buffer(env, (size_t)size, p, release, (void *)(uintptr_t)size, &out) != napi_ok) {
    free(p);
    napi_throw_error(env, NULL, "alignedBuffer: napi_create_external_buffer failed");
    return NULL;
  }
  /* Counted as V8's own, so garbage collection runs as often as this memory calls for. */
  int64_t ignored;
  napi_adjust_external_memory(env, (int64_t)size, &ignored);
  return out;
}

void register_aligned_buffer(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
    { "alignedBuffer", NULL, js_aligned_buffer, NULL, NULL, NULL, napi_default, NULL },
  };
  napi_define_properties(env, exports, 1, props);
}
