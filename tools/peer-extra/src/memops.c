/* memops: byte copies, fills and compares over a 96 KiB buffer (24 pages)
 * through the C library helpers the compiler emits calls to. */
#include "pb_guest.h"
#ifdef PB_NATIVE
#include <string.h>
#endif
PB_DEFINE_LIBC

#define LEN (96 * 1024)
static uint8_t a[LEN], b[LEN];
static volatile uint32_t mem_reps = 8;

__attribute__((used)) uint64_t bench_memops(void) {
    uint64_t acc = 0;
    for (uint32_t r = 0; r < mem_reps; r++) {
        memset(a, (int)(r * 37 + 1), LEN);
        for (uint32_t i = 0; i < LEN; i += 61) a[i] = (uint8_t)(i ^ r);
        memcpy(b, a, LEN);
        for (uint32_t i = 0; i < LEN; i += 4096) memcpy(b + i, a + (LEN - 4096 - i), 2048);
        uint64_t h = 0;
        for (uint32_t i = 0; i < LEN; i++) h = h * 131 + b[i];
        acc ^= h + r;
    }
    return acc;
}

PB_EXPORT(bench_memops);
