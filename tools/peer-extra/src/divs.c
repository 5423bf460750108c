/* divs: division and remainder heavy code: digit sums, gcds and a modular
 * exponentiation by repeated multiply-and-reduce (64-bit and 32-bit). */
#include "pb_guest.h"

static volatile uint32_t divs_n = 20000;

__attribute__((noinline)) static uint64_t gcd(uint64_t a, uint64_t b) {
    while (b) { uint64_t t = a % b; a = b; b = t; }
    return a;
}

__attribute__((used)) uint64_t bench_divs(void) {
    uint64_t acc = 0;
    uint32_t n = divs_n;
    for (uint32_t i = 1; i <= n; i++) {
        uint64_t v = (uint64_t)i * 2654435761u + 12345;
        uint32_t s = 0;
        while (v) { s += (uint32_t)(v % 10); v /= 10; }
        acc += s;
        acc ^= gcd((uint64_t)i * 48271u, 1000000007u + i);
        uint32_t m = 1000003u + (i & 255);
        uint32_t x = i % m, e = i, r = 1;
        while (e) { if (e & 1) r = (uint32_t)(((uint64_t)r * x) % m); x = (uint32_t)(((uint64_t)x * x) % m); e >>= 1; }
        acc += r;
        acc += (int64_t)(acc ^ 0x5555) / (int32_t)(7 + (i & 15));
    }
    return acc;
}

PB_EXPORT(bench_divs);
