// Every function the addon exports, in one list: its JavaScript name and its C function (in
// strata_native.c, at.c, mount.c, decode.c, gunzip.c, unzstd.c, io_buffer.c, sha256.c or tar_header.c). init() registers exactly these.
#ifndef STRATA_METHODS_H
#define STRATA_METHODS_H

#define STRATA_METHODS(X)                 \
  X("mknod", js_mknod)                    \
  X("lutimens", js_lutimens)              \
  X("llistxattr", js_llistxattr)          \
  X("lgetxattr", js_lgetxattr)            \
  X("lsetxattr", js_lsetxattr)            \
  X("lremovexattr", js_lremovexattr)      \
  X("lstatBatch", js_lstat_batch)         \
  X("listDirSorted", js_list_dir_sorted)  \
  X("readFileInto", js_read_file_into)    \
  X("writeNewFile", js_write_new_file)    \
  X("startWriteback", js_start_writeback) \
  X("fileHasherCreate", js_file_hasher_create) \
  X("fileHasherHash", js_file_hasher_hash)     \
  X("fileHasherDigest", js_file_hasher_digest) \
  X("fileHasherFree", js_file_hasher_free)     \
  X("fileHasherRun", js_file_hasher_run)       \
  X("fileHashRunPoll", js_file_hash_run_poll)  \
  X("fileHashRunFree", js_file_hash_run_free)  \
  X("layerWriterCreate", js_layer_writer_create) \
  X("layerWriterPush", js_layer_writer_push)     \
  X("layerWriterPoll", js_layer_writer_poll)     \
  X("layerWriterClose", js_layer_writer_close)   \
  X("layerWriterFree", js_layer_writer_free)     \
  X("openRoot", js_open_root)             \
  X("openDirAt", js_open_dir_at)          \
  X("statAt", js_stat_at)                 \
  X("readlinkAt", js_readlink_at)         \
  X("makeAt", js_make_at)                 \
  X("symlinkAt", js_symlink_at)           \
  X("linkAt", js_link_at)                 \
  X("removeAt", js_remove_at)             \
  X("unlinkAt", js_unlink_at)             \
  X("writeFileAt", js_write_file_at)      \
  X("createFileAt", js_create_file_at)    \
  X("finishFile", js_finish_file)         \
  X("closeFd", js_close_fd)               \
  X("setAttrsAt", js_set_attrs_at)        \
  X("setXattrAt", js_set_xattr_at)        \
  X("getXattrAt", js_get_xattr_at)        \
  X("removeXattrAt", js_remove_xattr_at)  \
  X("listDirAt", js_list_dir_at)          \
  X("mountOverlay", js_mount_overlay)     \
  X("mountBind", js_mount_bind)           \
  X("unmount", js_unmount)                \
  X("diskUsage", js_disk_usage)           \
  X("gzipDecoderCreate", js_gzip_decoder_create) \
  X("zstdDecoderCreate", js_zstd_decoder_create) \
  X("decoderRun", js_decoder_run)         \
  X("ioBuffer", js_io_buffer)             \
  X("sha256Create", js_sha256_create)     \
  X("sha256Update", js_sha256_update)     \
  X("sha256Digest", js_sha256_digest)     \
  X("tarHeader", js_tar_header)          \
  X("tarHeaderFields", js_tar_header_fields)

#define STRATA_DECLARE(name, fn) napi_value fn(napi_env env, napi_callback_info info);
STRATA_METHODS(STRATA_DECLARE)
#undef STRATA_DECLARE

#endif
