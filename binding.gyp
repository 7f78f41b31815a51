{
  "targets": [
    {
      "target_name": "chronovol_native",
      "sources": ["native/addon.c", "native/crc32c.c", "native/io-hints.c", "native/aligned-buffer.c", "native/affinity.c", "native/read-nowait.c", "native/file-lock.c", "native/aes-gcm.c"],
      "cflags": ["-O3", "-Wall", "-Wextra", "-Wno-unused-parameter"]
    }
  ]
}
