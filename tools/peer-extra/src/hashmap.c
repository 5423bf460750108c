/* hashmap: an open-addressing hash table of 65536 u64 slots (512 KiB in .bss,
 * 128 pages first-touched), filled, then probed with hits and misses. */
#include "pb_guest.h"

#define CAP (1u << 16)
static uint64_t keys[CAP];
static uint32_t vals[CAP];
static volatile uint32_t hm_n = 40000;

static inline uint32_t slot(uint64_t k) { return (uint32_t)((k * 0x9e3779b97f4a7c15ull) >> 48); }

__attribute__((used)) uint64_t bench_hashmap(void) {
    uint32_t n = hm_n;
    uint64_t x = 88172645463325252ull;
    for (uint32_t i = 0; i < n; i++) {
        x ^= x << 13; x ^= x >> 7; x ^= x << 17;
        uint64_t k = x | 1;
        uint32_t s = slot(k);
        while (keys[s] && keys[s] != k) s = (s + 1) & (CAP - 1);
        keys[s] = k;
        vals[s] += i;
    }
    uint64_t acc = 0;
    x = 88172645463325252ull;
    for (uint32_t i = 0; i < 2 * n; i++) {
        x ^= x << 13; x ^= x >> 7; x ^= x << 17;
        uint64_t k = (i & 1) ? (x | 1) : (x & ~1ull);
        uint32_t s = slot(k);
        while (keys[s] && keys[s] != k) s = (s + 1) & (CAP - 1);
        acc = acc * 3 + (keys[s] ? vals[s] : 7);
    }
    return acc;
}

PB_EXPORT(bench_hashmap);
