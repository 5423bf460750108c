/* calls: naive recursive Fibonacci (fib(27)) plus a mutually recursive
 * even/odd walk: call-and-return heavy code (jal / jalr through the stack). */
#include "pb_guest.h"

static volatile uint32_t calls_n = 27;

__attribute__((noinline)) static uint64_t rfib(uint32_t n) {
    return n < 2 ? n : rfib(n - 1) + rfib(n - 2);
}

__attribute__((noinline)) static uint64_t is_odd(uint32_t n, uint64_t acc);
__attribute__((noinline)) static uint64_t is_even(uint32_t n, uint64_t acc) {
    return n == 0 ? acc : is_odd(n - 1, acc * 3 + n);
}
__attribute__((noinline)) static uint64_t is_odd(uint32_t n, uint64_t acc) {
    return n == 0 ? acc ^ 1 : is_even(n - 1, acc + (n << 1));
}

__attribute__((used)) uint64_t bench_calls(void) {
    uint64_t r = rfib(calls_n);
    for (uint32_t i = 0; i < 200; i++)
        r += is_even(1000 + i, i);
    return r;
}

PB_EXPORT(bench_calls);
