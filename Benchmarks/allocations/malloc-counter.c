// Counts a process's heap allocations for sessiond's allocation budgets (Benchmarks/allocations).
//
// Loaded with LD_PRELOAD into an unchanged binary: every malloc, calloc, realloc, posix_memalign,
// aligned_alloc, memalign and valloc adds one to a 64-bit counter kept in the file named by
// MALLOC_COUNTER_FILE (created, 8 bytes, shared), so another process reads it before and after a
// run of requests. The allocations themselves go to glibc's own functions (__libc_*), which need no
// dlsym and so cannot recurse. Frees are not counted: the budgets count allocations, as swift-nio's
// alloc-counter and ordo-one/benchmark's mallocCountTotal do.
//
//   clang -O2 -shared -fPIC -o malloc-counter.so malloc-counter.c
//   MALLOC_COUNTER_FILE=/tmp/count LD_PRELOAD=$PWD/malloc-counter.so sessiond
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);

// NULL until the constructor has mapped the file (the dynamic loader allocates before that).
static uint64_t *counter;

__attribute__((constructor)) static void map_counter(void) {
    const char *path = getenv("MALLOC_COUNTER_FILE");
    if (!path) return;
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) return;
    if (ftruncate(fd, sizeof(uint64_t)) == 0) {
        void *page = mmap(NULL, sizeof(uint64_t), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (page != MAP_FAILED) counter = page;
    }
    close(fd);
}

static inline void count(void) {
    uint64_t *c = counter;
    if (c) __atomic_fetch_add(c, 1, __ATOMIC_RELAXED);
}

void *malloc(size_t size) {
    count();
    return __libc_malloc(size);
}

void *calloc(size_t n, size_t size) {
    count();
    return __libc_calloc(n, size);
}

void *realloc(void *pointer, size_t size) {
    count();
    return __libc_realloc(pointer, size);
}

void *memalign(size_t alignment, size_t size) {
    count();
    return __libc_memalign(alignment, size);
}

void *aligned_alloc(size_t alignment, size_t size) {
    count();
    return __libc_memalign(alignment, size);
}

void *valloc(size_t size) {
    count();
    return __libc_memalign((size_t)sysconf(_SC_PAGESIZE), size);
}

int posix_memalign(void **result, size_t alignment, size_t size) {
    count();
    if (alignment % sizeof(void *) != 0 || (alignment & (alignment - 1)) != 0) return EINVAL;
    void *pointer = __libc_memalign(alignment, size);
    if (!pointer && size) return ENOMEM;
    *result = pointer;
    return 0;
}
