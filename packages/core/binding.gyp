{
  "targets": [
    {
      "target_name": "strata_native",
      "sources": ["native/strata_native.c", "native/at.c", "native/mount.c", "native/decode.c", "native/gunzip.c", "native/unzstd.c", "native/io_buffer.c", "native/sha256.c", "native/tar_header.c"],
      "libraries": ["-ldl"],
      "cflags": ["-O2", "-Wall", "-Wextra"]
    }
  ]
}
