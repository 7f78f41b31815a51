/*
 * AES-256-GCM straight into the caller's buffers, with the OpenSSL that Node itself carries
 * (its symbols are the node binary's). Node 20's Cipher allocates a fresh buffer for every
 * update; sealing and opening an archive chunk here costs no allocation and no copy.
 */
#include <openssl/evp.h>
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

void register_aes_gcm(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
    { "gcmSeal", NULL, js_gcm_seal, NULL, NULL, NULL, napi_default, NULL },
    { "gcmOpen", NULL, js_gcm_open, NULL, NULL, NULL, napi_default, NULL },
  };
  napi_define_properties(env, exports, 2, props);
}
