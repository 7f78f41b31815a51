/*
 * AES-256-GCM straight into the caller's buffers, with the OpenSSL that Node itself carries
 * (its symbols are the node binary's). Node 20's Cipher allocates a fresh buffer for every
 * update; sealing and opening an archive chunk here costs no allocation and no copy.
 */
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include "addon.h"

#define TAG_BYTES 16
#define KEY_BYTES 32
#define NONCE_BYTES 12

typedef struct { uint8_t *key, *nonce, *aad, *src, *dst; size_t key_len, nonce_len, aad_len, src_len, dst_len; } gcm_args;

static int gcm_arg(napi_env env, napi_callback_info info, gcm_args *a) {
  size_t argc = 5;
  napi_value argv[5];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 5) {
    napi_throw_type_error(env, NULL, "chronovol-native: gcm(key, nonce, aad, src, dst)");
    return 0;
  }
  if (!bytes_arg(env, argv[0], &a->key, &a->key_len) || !bytes_arg(env, argv[1], &a->nonce, &a->nonce_len) ||
      !bytes_arg(env, argv[2], &a->aad, &a->aad_len) || !bytes_arg(env, argv[3], &a->src, &a->src_len) ||
      !bytes_arg(env, argv[4], &a->dst, &a->dst_len)) return 0;
  if (a->key_len != KEY_BYTES || a->nonce_len != NONCE_BYTES || a->src_len > (size_t)1 << 30 || a->aad_len > (size_t)1 << 20) {
    napi_throw_range_error(env, NULL, "chronovol-native: gcm wants a 32-byte key, a 12-byte nonce, and at most 1 GiB");
    return 0;
  }
  return 1;
}

/* Runs one seal (enc=1: dst = ciphertext then tag) or open (enc=0: src = ciphertext then tag); 1 if done and authentic. */
static int gcm_run(const gcm_args *a, int enc) {
  size_t len = enc ? a->src_len : a->src_len - TAG_BYTES;
  int n = 0, ok = 0;
  uint8_t none[TAG_BYTES]; /* GCM's final writes nothing; dst may be empty */
  EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
  if (!ctx) return 0;
  if (EVP_CipherInit_ex(ctx, EVP_aes_256_gcm(), NULL, a->key, a->nonce, enc) != 1) goto done;
  if (a->aad_len && EVP_CipherUpdate(ctx, NULL, &n, a->aad, (int)a->aad_len) != 1) goto done;
  if (len && EVP_CipherUpdate(ctx, a->dst, &n, a->src, (int)len) != 1) goto done;
  if (!enc && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, TAG_BYTES, a->src + len) != 1) goto done;
  if (EVP_CipherFinal_ex(ctx, none, &n) != 1) goto done;
  if (enc && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, TAG_BYTES, a->dst + len) != 1) goto done;
  ok = 1;
done:
  EVP_CIPHER_CTX_free(ctx);
  return ok;
}

/* gcmSeal(key, nonce, aad, src, dst): dst (src.length + 16 bytes) gets the ciphertext, then the tag. */
static napi_value js_gcm_seal(napi_env env, napi_callback_info info) {
  gcm_args a;
  if (!gcm_arg(env, info, &a)) return NULL;
  if (a.dst_len != a.src_len + TAG_BYTES) {
    napi_throw_range_error(env, NULL, "chronovol-native: gcmSeal's dst must be 16 bytes longer than src");
    return NULL;
  }
  if (!gcm_run(&a, 1)) {
    napi_throw_error(env, NULL, "chronovol-native: AES-256-GCM sealing failed");
    return NULL;
  }
  return NULL;
}

/*
 * gcmOpen(key, nonce, aad, src, dst): src is the ciphertext then the tag; dst (16 bytes shorter)
 * gets the plaintext. Returns false when the chunk is not authentic: dst then holds garbage.
 */
static napi_value js_gcm_open(napi_env env, napi_callback_info info) {
  gcm_args a;
  napi_value out;
  if (!gcm_arg(env, info, &a)) return NULL;
  if (a.src_len < TAG_BYTES || a.dst_len != a.src_len - TAG_BYTES) {
    napi_throw_range_error(env, NULL, "chronovol-native: gcmOpen's dst must be 16 bytes shorter than src");
    return NULL;
  }
  CHECK(napi_get_boolean(env, gcm_run(&a, 0), &out));
  return out;
}

/*
 * gcmOpenChunks(key, aad, first, count, chunkPlainBytes, src, dst, callback(bad)): opens chunks
 * first, first+1, ... of an object of `count` chunks on the threadpool, so the event loop goes
 * on meanwhile. src holds them back to back (ciphertext then tag each), dst gets the plaintext;
 * each chunk's nonce is its index, and the last 9 bytes of `aad` (a template) are rewritten with
 * its index and final flag. bad: -1 when all are authentic, else the first that is not (counted
 * from 0 in this call), or -2 when src and dst do not fit together.
 *
 * dst may be src itself (the same first byte; any other overlap is refused): each chunk is then
 * opened in place and its plaintext moved down over the tags before it, so a read costs no
 * second buffer (a fresh one costs a page fault per 4 KiB: in a cold scan, perf put those at
 * half the cost of the decryption itself). A chunk that fails leaves what it decrypted in the
 * buffer: the caller then throws it away.
 */
typedef struct {
  napi_async_work work;
  napi_ref callback, src_ref, dst_ref;
  uint8_t key[KEY_BYTES], *aad, *src, *dst;
  size_t aad_len, src_len, dst_len, chunk;
  uint64_t first, count;
  int32_t bad;
  int in_place;
} open_job;

static void open_execute(napi_env env, void *data) {
  open_job *j = data;
  uint8_t nonce[NONCE_BYTES];
  size_t at = 0, out = 0;
  j->bad = -1;
  for (uint64_t i = j->first;; i++) {
    size_t plain = j->dst_len - out < j->chunk ? j->dst_len - out : j->chunk;
    if (i >= j->count || at + plain + TAG_BYTES > j->src_len) { j->bad = -2; return; }
    memset(nonce, 0, NONCE_BYTES);
    for (int b = 0; b < 8; b++) nonce[b] = j->aad[j->aad_len - 9 + b] = (uint8_t)(i >> (8 * b));
    j->aad[j->aad_len - 1] = i == j->count - 1;
    gcm_args a = { j->key, nonce, j->aad, j->src + at, j->in_place ? j->src + at : j->dst + out, KEY_BYTES, NONCE_BYTES, j->aad_len, plain + TAG_BYTES, plain };
    if (!gcm_run(&a, 0)) { j->bad = (int32_t)(i - j->first); return; }
    if (j->in_place && out != at) memmove(j->dst + out, j->src + at, plain);
    at += plain + TAG_BYTES;
    out += plain;
    if (at == j->src_len) break;
  }
  if (out != j->dst_len) j->bad = -2;
}

static void open_complete(napi_env env, napi_status status, void *data) {
  open_job *j = data;
  call_back_once(env, j->callback, status == napi_ok ? j->bad : -2);
  napi_delete_reference(env, j->src_ref);
  napi_delete_reference(env, j->dst_ref);
  napi_delete_async_work(env, j->work);
  free(j->aad);
  free(j);
}

static napi_value js_gcm_open_chunks(napi_env env, napi_callback_info info) {
  size_t argc = 8, key_len, aad_len;
  napi_value argv[8], name;
  uint8_t *key, *aad;
  double first, count, chunk;
  napi_valuetype t;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc != 8) {
    napi_throw_type_error(env, NULL, "chronovol-native: gcmOpenChunks(key, aad, first, count, chunkPlainBytes, src, dst, callback)");
    return NULL;
  }
  open_job *j = calloc(1, sizeof *j);
  if (!j) {
    napi_throw_error(env, NULL, "out of memory");
    return NULL;
  }
  if (!bytes_arg(env, argv[0], &key, &key_len) || !bytes_arg(env, argv[1], &aad, &aad_len) || !num_arg(env, argv[2], &first) ||
      !num_arg(env, argv[3], &count) || !num_arg(env, argv[4], &chunk) || !bytes_arg(env, argv[5], &j->src, &j->src_len) ||
      !bytes_arg(env, argv[6], &j->dst, &j->dst_len)) goto fail;
  if (napi_typeof(env, argv[7], &t) != napi_ok || t != napi_function) {
    napi_throw_type_error(env, NULL, "expected a callback");
    goto fail;
  }
  if (key_len != KEY_BYTES || aad_len < 9 || aad_len > (size_t)1 << 20 || chunk < 1 || j->src_len > (size_t)1 << 30) {
    napi_throw_range_error(env, NULL, "chronovol-native: gcmOpenChunks wants a 32-byte key, an aad of 9 bytes or more, and at most 1 GiB");
    goto fail;
  }
  j->in_place = j->dst == j->src && j->dst_len > 0;
  if (!j->in_place && j->dst < j->src + j->src_len && j->src < j->dst + j->dst_len) {
    napi_throw_range_error(env, NULL, "chronovol-native: gcmOpenChunks' dst must be src itself or not overlap it");
    goto fail;
  }
  /* The key and the aad template are ours to rewrite on the thread; src and dst stay referenced. */
  j->aad = malloc(aad_len);
  if (!j->aad) {
    napi_throw_error(env, NULL, "out of memory");
    goto fail;
  }
  memcpy(j->key, key, KEY_BYTES);
  memcpy(j->aad, aad, aad_len);
  j->aad_len = aad_len;
  j->first = (uint64_t)first;
  j->count = (uint64_t)count;
  j->chunk = (size_t)chunk;
  if (napi_create_reference(env, argv[7], 1, &j->callback) != napi_ok || napi_create_reference(env, argv[5], 1, &j->src_ref) != napi_ok ||
      napi_create_reference(env, argv[6], 1, &j->dst_ref) != napi_ok || napi_create_string_utf8(env, "chronovol-gcm-open", NAPI_AUTO_LENGTH, &name) != napi_ok ||
      napi_create_async_work(env, NULL, name, open_execute, open_complete, j, &j->work) != napi_ok || napi_queue_async_work(env, j->work) != napi_ok) {
    napi_throw_error(env, NULL, "chronovol-native: could not queue gcmOpenChunks");
    goto fail; /* leaks the references made: only when N-API itself fails */
  }
  return NULL;
fail:
  free(j->aad);
  free(j);
  return NULL;
}

void register_aes_gcm(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
    { "gcmSeal", NULL, js_gcm_seal, NULL, NULL, NULL, napi_default, NULL },
    { "gcmOpen", NULL, js_gcm_open, NULL, NULL, NULL, napi_default, NULL },
    { "gcmOpenChunks", NULL, js_gcm_open_chunks, NULL, NULL, NULL, napi_default, NULL },
    { "gcmOpenChunksInPlace", NULL, NULL, NULL, NULL, NULL, napi_default, NULL },
  };
  /* A flag, not a function: an addon built before in-place opening has none, and gets a separate dst. */
  if (napi_get_boolean(env, true, &props[3].value) != napi_ok) return;
  napi_define_properties(env, exports, 4, props);
}
