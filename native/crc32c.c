/*
 * CRC32C (Castagnoli) for chronovol's block units, with the SSE4.2 crc32 instruction run on
 * three independent streams at once (the instruction's latency is 3 cycles, its throughput 1),
 * the streams joined by a table-driven "shift by n zero bytes". About 3-4x faster than
 * @node-rs/crc32 here, which matters because every block is checked on every read.
 *
 * Defines nothing on a CPU without SSE4.2 (or not x86-64): src/format/crc.ts then falls back
 * to @node-rs/crc32, with identical results. The algorithm follows Mark Adler's crc32c.c.
 */
#include "addon.h"
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define POLY 0x82f63b78u /* reflected Castagnoli polynomial */

/* a*b modulo POLY, both reflected (zlib's multmodp). */
static uint32_t multmodp(uint32_t a, uint32_t b) {
  uint32_t m = 1u << 31, p = 0;
  for (;;) {
    if (a & m) {
      p ^= b;
      if ((a & (m - 1)) == 0) break;
    }
    m >>= 1;
    b = b & 1 ? (b >> 1) ^ POLY : b >> 1;
  }
  return p;
}

/* x^(8n) modulo POLY: the operator that appends n zero bytes to a CRC. */
static uint32_t x8nmodp(size_t n) {
  uint32_t p = 1u << 31, pw = 1u << 30; /* p = 1, pw = x */
  for (size_t k = n * 8; k; k >>= 1) {
    if (k & 1) p = multmodp(pw, p);
    pw = multmodp(pw, pw);
  }
  return p;
}

/* Lane lengths: LONG for big buffers, MID makes a 4 KiB block 3 x 1360 + 16, SHORT mops up. */
#define LONG 8192
#define MID 1360
#define SHORT 256
static uint32_t shift_long[4][256], shift_mid[4][256], shift_short[4][256];

static void make_shift(uint32_t table[4][256], size_t n) {
  uint32_t op = x8nmodp(n);
  for (int k = 0; k < 4; k++)
    for (uint32_t v = 0; v < 256; v++) table[k][v] = multmodp(op, v << (8 * k));
}

static inline uint32_t shift(uint32_t table[4][256], uint32_t crc) {
  return table[0][crc & 0xff] ^ table[1][(crc >> 8) & 0xff] ^ table[2][(crc >> 16) & 0xff] ^ table[3][crc >> 24];
}

#if defined(__x86_64__)
#include <nmmintrin.h>

__attribute__((target("sse4.2"))) static inline uint64_t lanes3(uint64_t c0, const uint8_t **pp, size_t lane, uint32_t table[4][256]) {
  const uint8_t *p = *pp;
  uint64_t c1 = 0, c2 = 0, v0, v1, v2;
  for (size_t i = 0; i < lane; i += 8) {
    memcpy(&v0, p + i, 8);
    memcpy(&v1, p + lane + i, 8);
    memcpy(&v2, p + 2 * lane + i, 8);
    c0 = _mm_crc32_u64(c0, v0);
    c1 = _mm_crc32_u64(c1, v1);
    c2 = _mm_crc32_u64(c2, v2);
  }
  *pp = p + 3 * lane;
  c0 = shift(table, (uint32_t)c0) ^ (uint32_t)c1;
  return shift(table, (uint32_t)c0) ^ (uint32_t)c2;
}

__attribute__((target("sse4.2"))) static uint32_t crc32c_hw(uint32_t crc, const uint8_t *p, size_t n) {
  uint64_t c = ~crc & 0xffffffffu;
  while (n >= 3 * LONG) { c = lanes3(c, &p, LONG, shift_long); n -= 3 * LONG; }
  while (n >= 3 * MID) { c = lanes3(c, &p, MID, shift_mid); n -= 3 * MID; }
  while (n >= 3 * SHORT) { c = lanes3(c, &p, SHORT, shift_short); n -= 3 * SHORT; }
  uint64_t v;
  for (; n >= 8; n -= 8, p += 8) { memcpy(&v, p, 8); c = _mm_crc32_u64(c, v); }
  for (; n; n--) c = _mm_crc32_u8((uint32_t)c, *p++);
  return ~(uint32_t)c;
}
#define HAVE_HW 1
#else
#define HAVE_HW 0
static uint32_t crc32c_hw(uint32_t crc, const uint8_t *p, size_t n) { (void)p; (void)n; return crc; }
#endif

/* ---- N-API glue ------------------------------------------------------------------------ */

int bytes_arg(napi_env env, napi_value v, uint8_t **data, size_t *len) {
  napi_typedarray_type type;
  void *d;
  if (napi_get_typedarray_info(env, v, &type, len, &d, NULL, NULL) != napi_ok || type != napi_uint8_array) {
    napi_throw_type_error(env, NULL, "expected a Buffer or Uint8Array");
    return 0;
  }
  *data = d;
  return 1;
}

void call_back_once(napi_env env, napi_ref callback, int32_t value) {
  napi_value cb, global, arg;
  if (napi_get_reference_value(env, callback, &cb) == napi_ok && napi_get_global(env, &global) == napi_ok &&
      napi_create_int32(env, value, &arg) == napi_ok) {
    napi_call_function(env, global, cb, 1, &arg, NULL);
  }
  napi_delete_reference(env, callback);
}

int num_arg(napi_env env, napi_value v, double *out) {
  if (napi_get_value_double(env, v, out) != napi_ok || *out < 0 || *out != (double)(int64_t)*out) {
    napi_throw_type_error(env, NULL, "expected a non-negative integer");
    return 0;
  }
  return 1;
}

/* crc32c(buf, initial) -> uint32 */
static napi_value js_crc32c(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2], out;
  uint8_t *data;
  size_t len;
  double initial = 0;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 1 || !bytes_arg(env, argv[0], &data, &len)) return NULL;
  if (argc > 1 && !num_arg(env, argv[1], &initial)) return NULL;
  CHECK(napi_create_uint32(env, crc32c_hw((uint32_t)initial, data, len), &out));
  return out;
}

/*
 * Common arguments of packUnits/unpackUnits: (src, srcOffset, blockSize, count, dst, dstOffset);
 * of checkUnits: the first four (dst is then NULL).
 */
typedef struct { uint8_t *src, *dst; size_t block, count; } units_args;

enum units_op { PACK, UNPACK, CHECK };

static int units_arg(napi_env env, napi_callback_info info, units_args *a, enum units_op op) {
  size_t want = op == CHECK ? 4 : 6, argc = 6, slen, dlen = 0;
  napi_value argv[6];
  double so, bs, cnt, dof = 0;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != want) {
    napi_throw_type_error(env, NULL, op == CHECK ? "expected (src, srcOffset, blockSize, count)" : "expected (src, srcOffset, blockSize, count, dst, dstOffset)");
    return 0;
  }
  a->dst = NULL;
  if (!bytes_arg(env, argv[0], &a->src, &slen) || !num_arg(env, argv[1], &so) || !num_arg(env, argv[2], &bs) || !num_arg(env, argv[3], &cnt)) return 0;
  if (op != CHECK && (!bytes_arg(env, argv[4], &a->dst, &dlen) || !num_arg(env, argv[5], &dof))) return 0;
  double unit = bs + 4;
  double need_src = so + cnt * (op == PACK ? bs : unit), need_dst = op == CHECK ? 0 : dof + cnt * (op == PACK ? unit : bs);
  if (bs == 0 || need_src > (double)slen || need_dst > (double)dlen) {
    napi_throw_range_error(env, NULL, "units out of range");
    return 0;
  }
  a->src += (size_t)so;
  if (a->dst) a->dst += (size_t)dof;
  a->block = (size_t)bs;
  a->count = (size_t)cnt;
  return 1;
}

static inline void put_le32(uint8_t *p, uint32_t v) { p[0] = v; p[1] = v >> 8; p[2] = v >> 16; p[3] = v >> 24; }
static inline uint32_t get_le32(const uint8_t *p) { return p[0] | p[1] << 8 | p[2] << 16 | (uint32_t)p[3] << 24; }

/* packUnits: blocks -> (crc32c u32 LE, data) units. */
static napi_value js_pack_units(napi_env env, napi_callback_info info) {
  units_args a;
  if (!units_arg(env, info, &a, PACK)) return NULL;
  for (size_t i = 0; i < a.count; i++) {
    const uint8_t *s = a.src + i * a.block;
    uint8_t *d = a.dst + i * (a.block + 4);
    put_le32(d, crc32c_hw(0, s, a.block));
    memcpy(d + 4, s, a.block);
  }
  return NULL;
}

/*
 * Units are checked and copied from a staged copy of up to STAGE_UNITS of them. The source is
 * usually cold (read from the disk by DMA): one memcpy of the packed units streams it into the
 * cache, and the CRC then runs on cached bytes. Checking the cold bytes in place ran the CRC's
 * three short streams at memory latency: 14.5 us per 128 KiB of 4 KiB units here, against 8.7
 * staged 16 units at a time (4 units: 10.5). The bytes served are the bytes checked, both from
 * the one staged copy. The stage is per thread (only the main thread calls this today; a worker
 * thread that did would get its own), allocated on first use and kept.
 */
#define STAGE_UNITS 16
#define STAGE_BYTES (132u << 10)
static __thread uint8_t *stage;

static napi_value first_bad_unit(napi_env env, const units_args *a) {
  napi_value out;
  int32_t bad = -1;
  const size_t unit = a->block + 4;
  size_t piece = STAGE_BYTES / unit;
  if (piece > STAGE_UNITS) piece = STAGE_UNITS;
  if (!stage && piece > 1) stage = malloc(STAGE_BYTES);
  if (!stage) piece = 0; /* too large a block, or no memory: in place, as before */
  for (size_t i = 0; i < a->count && bad < 0;) {
    size_t n = piece ? (a->count - i < piece ? a->count - i : piece) : 1;
    const uint8_t *s = a->src + i * unit;
    if (piece) {
      memcpy(stage, s, n * unit);
      s = stage;
    }
    for (size_t k = 0; k < n; k++, s += unit) {
      if (crc32c_hw(0, s + 4, a->block) != get_le32(s)) { bad = (int32_t)(i + k); break; }
      if (a->dst) memcpy(a->dst + (i + k) * a->block, s + 4, a->block);
    }
    i += n;
  }
  CHECK(napi_create_int32(env, bad, &out));
  return out;
}

/* unpackUnits: checks every unit's CRC, copies the data out; returns -1, or the first bad unit. */
static napi_value js_unpack_units(napi_env env, napi_callback_info info) {
  units_args a;
  return units_arg(env, info, &a, UNPACK) ? first_bad_unit(env, &a) : NULL;
}

/* checkUnits(src, srcOffset, blockSize, count): unpackUnits without the copy (archiving, verify). */
static napi_value js_check_units(napi_env env, napi_callback_info info) {
  units_args a;
  return units_arg(env, info, &a, CHECK) ? first_bad_unit(env, &a) : NULL;
}

/* Defines crc32c, packUnits, unpackUnits and checkUnits on exports, if this CPU has SSE4.2. */
void register_crc32c(napi_env env, napi_value exports) {
#if HAVE_HW
  __builtin_cpu_init();
  if (!__builtin_cpu_supports("sse4.2")) return;
  make_shift(shift_long, LONG);
  make_shift(shift_mid, MID);
  make_shift(shift_short, SHORT);
  napi_property_descriptor props[] = {
    { "crc32c", NULL, js_crc32c, NULL, NULL, NULL, napi_default, NULL },
    { "packUnits", NULL, js_pack_units, NULL, NULL, NULL, napi_default, NULL },
    { "unpackUnits", NULL, js_unpack_units, NULL, NULL, NULL, napi_default, NULL },
    { "checkUnits", NULL, js_check_units, NULL, NULL, NULL, napi_default, NULL },
  };
  napi_define_properties(env, exports, 4, props);
#endif
}
