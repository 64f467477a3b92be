// What an apply designed as strata's costs without its JavaScript: extracts an uncompressed tar (regular
// files, directories and symlinks: all of minbase's 6,768 entries but its 2 hardlinks and 8 devices) and
// hashes the whole tarball beside it.
//
//   gcc -O2 -o /tmp/extract-floor benchmarks/probes/extract-floor.c -lcrypto -lpthread
//   /tmp/extract-floor buffers <layer.tar> <new-dir>   # 1 MiB positional reads, bodies written from those
//                                                        # buffers, a thread hashing the buffers behind
//   /tmp/extract-floor copy <layer.tar> <new-dir>      # bodies by copy_file_range from the tarball, headers
//                                                        # by pread, a thread reading and hashing the tarball
//   /tmp/extract-floor map <layer.tar> <new-dir>       # the tarball mapped (mmap, page tables filled a 4 MiB
//                                                        # window ahead): bodies written from its pages, a
//                                                        # thread hashing them behind, nothing copied to buffers
//
// `map` is a measurement, not a design strata can take: what is hashed would be the file's pages at some
// later moment, not the bytes that were written, so a file changed during the apply could pass for the
// layer its digest names (and a file cut short under a mapping kills the process with SIGBUS).
//
// Prints the main thread's time and the whole run's (until the hash is done), in milliseconds.
#define _GNU_SOURCE
#include <fcntl.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define CHUNK (1 << 20)
#define RING 32
#define HASH_READ (256 * 1024)

static int layer;
static int by_buffers;
static int by_map;
// Mode `map`: the whole tarball mapped; the parse publishes how far it has gone for the hashing thread.
static unsigned char *mapped;
static size_t mapped_size, mapped_at, populated;
#define WINDOW (4 << 20)

// The ring of read buffers: the main thread fills them in order, the hashing thread takes them in order.
static unsigned char *ring[RING];
static size_t ring_len[RING];
static long filled, hashed; // buffers filled and hashed so far (under lock)
static int done_reading;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t changed = PTHREAD_COND_INITIALIZER;

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static void die(const char *what) {
  perror(what);
  exit(1);
}

static void *hash_thread(void *unused) {
  (void)unused;
  EVP_MD_CTX *ctx = EVP_MD_CTX_new();
  EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
  if (by_map) {
    size_t done = 0;
    for (;;) {
      pthread_mutex_lock(&lock);
      while (filled == (long)done && !done_reading) pthread_cond_wait(&changed, &lock);
      size_t until = filled;
      int finished = done_reading && until == done;
      pthread_mutex_unlock(&lock);
      if (finished) break;
      EVP_DigestUpdate(ctx, mapped + done, until - done);
      done = until;
    }
  } else if (by_buffers) {
    for (long next = 0;; next++) {
      pthread_mutex_lock(&lock);
      while (filled == next && !done_reading) pthread_cond_wait(&changed, &lock);
      int finished = filled == next;
      pthread_mutex_unlock(&lock);
      if (finished) break;
      EVP_DigestUpdate(ctx, ring[next % RING], ring_len[next % RING]);
      pthread_mutex_lock(&lock);
      hashed = next + 1;
      pthread_cond_signal(&changed);
      pthread_mutex_unlock(&lock);
    }
  } else {
    unsigned char *buffer = malloc(HASH_READ);
    ssize_t n;
    for (off_t at = 0; (n = pread(layer, buffer, HASH_READ, at)) > 0; at += n) EVP_DigestUpdate(ctx, buffer, n);
    free(buffer);
  }
  unsigned char digest[32];
  unsigned int size;
  EVP_DigestFinal_ex(ctx, digest, &size);
  printf("sha256:");
  for (unsigned i = 0; i < size; i++) printf("%02x", digest[i]);
  printf("\n");
  EVP_MD_CTX_free(ctx);
  return NULL;
}

// The buffered reader (mode `buffers`): the current buffer, where in it the parse is, the file offset.
static long current = -1;
static size_t at_in_buffer;
static off_t read_offset;

static int next_buffer(void) {
  pthread_mutex_lock(&lock);
  if (current >= 0) filled = current + 1; // the parse is done with it: hash it
  pthread_cond_signal(&changed);
  while (current + 1 - hashed >= RING) pthread_cond_wait(&changed, &lock); // wait for a free buffer
  pthread_mutex_unlock(&lock);
  long slot = (current + 1) % RING;
  ssize_t n = pread(layer, ring[slot], CHUNK, read_offset);
  if (n < 0) die("pread");
  if (n == 0) return 0;
  current++;
  ring_len[slot] = n;
  read_offset += n;
  at_in_buffer = 0;
  return 1;
}

// Mode `map`: the parse has passed `at`; the hashing thread may take everything before it.
static void publish(size_t at) {
  pthread_mutex_lock(&lock);
  filled = at;
  pthread_cond_signal(&changed);
  pthread_mutex_unlock(&lock);
}

// Takes `n` bytes of the tarball: into `out`, written to `fd`, or (neither) passed over.
static int take(unsigned char *out, size_t n, int fd) {
  if (by_map) {
    if (mapped_at + n > mapped_size) return 0;
    // Page tables filled a window ahead in one call, instead of a fault per few pages.
    while (populated < mapped_at + n + WINDOW && populated < mapped_size) {
      size_t len = populated + WINDOW > mapped_size ? mapped_size - populated : WINDOW;
      madvise(mapped + populated, len, MADV_POPULATE_READ);
      populated += len;
    }
    const unsigned char *from = mapped + mapped_at;
    if (out) memcpy(out, from, n);
    else if (fd >= 0)
      for (size_t done = 0; done < n;) {
        ssize_t w = write(fd, from + done, n - done);
        if (w <= 0) die("write");
        done += w;
      }
    size_t before = mapped_at;
    mapped_at += n;
    if (mapped_at / (1 << 20) != before / (1 << 20)) publish(mapped_at);
    return 1;
  }
  while (n > 0) {
    if (current < 0 || at_in_buffer == ring_len[current % RING])
      if (!next_buffer()) return 0;
    size_t piece = ring_len[current % RING] - at_in_buffer;
    if (piece > n) piece = n;
    const unsigned char *from = ring[current % RING] + at_in_buffer;
    if (out) memcpy(out, from, piece), out += piece;
    else if (fd >= 0 && write(fd, from, piece) != (ssize_t)piece) die("write");
    at_in_buffer += piece;
    n -= piece;
  }
  return 1;
}

static unsigned long octal(const unsigned char *field, int width) {
  unsigned long value = 0;
  for (int i = 0; i < width && field[i]; i++)
    if (field[i] >= '0' && field[i] <= '7') value = value * 8 + (field[i] - '0');
  return value;
}

int main(int argc, char **argv) {
  if (argc != 4 || (strcmp(argv[1], "buffers") && strcmp(argv[1], "copy") && strcmp(argv[1], "map"))) {
    fprintf(stderr, "usage: %s buffers|copy|map <layer.tar> <new-dir>\n", argv[0]);
    return 2;
  }
  by_map = !strcmp(argv[1], "map");
  by_buffers = !strcmp(argv[1], "buffers") || by_map;
  if ((layer = open(argv[2], O_RDONLY)) < 0) die(argv[2]);
  if (mkdir(argv[3], 0755)) die(argv[3]);
  int root = open(argv[3], O_DIRECTORY);
  for (int i = 0; i < RING; i++) ring[i] = aligned_alloc(4096, CHUNK), memset(ring[i], 0, CHUNK);

  double start = now();
  if (by_map) {
    struct stat st;
    if (fstat(layer, &st)) die("fstat");
    mapped_size = st.st_size;
    mapped = mmap(NULL, mapped_size, PROT_READ, MAP_PRIVATE, layer, 0);
    if (mapped == MAP_FAILED) die("mmap");
  }
  pthread_t hasher;
  pthread_create(&hasher, NULL, hash_thread, NULL);
  unsigned char header[512];
  char name[8192], long_name[8192];
  int have_long_name = 0;
  off_t offset = 0; // mode `copy`: where the next header is
  for (;;) {
    if (by_buffers ? !take(header, 512, -1) : pread(layer, header, 512, offset) != 512) break;
    if (!by_buffers) offset += 512;
    if (header[0] == 0) break;
    unsigned long size = octal(header + 124, 12), padded = (size + 511) & ~511UL;
    char type = header[156];
    if (type == 'L' || type == 'x' || type == 'g') { // a long name, or PAX records (passed over)
      static unsigned char record[1 << 20];
      if (padded > sizeof record) die("record too long");
      if (by_buffers) take(record, padded, -1);
      else if (pread(layer, record, padded, offset) != (ssize_t)padded) die("pread");
      else offset += padded;
      if (type == 'L') memcpy(long_name, record, size), long_name[size] = 0, have_long_name = 1;
      continue;
    }
    if (have_long_name) strcpy(name, long_name), have_long_name = 0;
    else if (header[345]) snprintf(name, sizeof name, "%.155s/%.100s", header + 345, header);
    else snprintf(name, sizeof name, "%.100s", header);
    char *path = name;
    if (path[0] == '.' && path[1] == '/') path += 2;
    size_t length = strlen(path);
    if (length && path[length - 1] == '/') path[length - 1] = 0;
    unsigned mode = octal(header + 100, 8) & 07777;
    struct timespec times[2] = {{(time_t)octal(header + 136, 12), 0}, {(time_t)octal(header + 136, 12), 0}};
    if (type == '0' || type == 0) {
      if (!*path || !strcmp(path, ".")) die("a file at the root");
      int fd = openat(root, path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
      if (fd < 0) die(path);
      if (by_buffers) take(NULL, size, fd), take(NULL, padded - size, -1);
      else {
        off_t from = offset;
        for (size_t left = size; left > 0;) {
          ssize_t n = copy_file_range(layer, &from, fd, NULL, left, 0);
          if (n <= 0) die("copy_file_range");
          left -= n;
        }
        offset += padded;
      }
      futimens(fd, times);
      close(fd);
      continue;
    }
    if (by_buffers) take(NULL, padded, -1);
    else offset += padded;
    if (!*path || !strcmp(path, ".")) continue;
    if (type == '5') mkdirat(root, path, mode);
    else if (type == '2') symlinkat((char *)header + 157, root, path);
  }
  if (by_map) {
    pthread_mutex_lock(&lock);
    filled = mapped_size; // the end blocks too
    done_reading = 1;
    pthread_cond_signal(&changed);
    pthread_mutex_unlock(&lock);
  } else if (by_buffers) {
    while (next_buffer()) {
    } // the rest of the tarball (its end blocks), hashed too
    pthread_mutex_lock(&lock);
    filled = current + 1;
    done_reading = 1;
    pthread_cond_signal(&changed);
    pthread_mutex_unlock(&lock);
  }
  double parsed = now();
  pthread_join(hasher, NULL);
  printf("main %.1f ms, all %.1f ms\n", parsed - start, now() - start);
  return 0;
}
