/* switch: a small stack-machine interpreter in C (a dense switch compiled to a
 * jump table: indirect jumps), running a counted loop of arithmetic bytecode. */
#include "pb_guest.h"

enum { OP_PUSH, OP_ADD, OP_SUB, OP_MUL, OP_XOR, OP_DUP, OP_SWAP, OP_DROP, OP_LOAD, OP_STORE,
       OP_JNZ, OP_DEC, OP_SHL, OP_SHR, OP_HALT };

static const uint8_t code[] = {
    OP_PUSH, 0,            /* acc */
    OP_PUSH, 200,          /* counter, outer */
    /* loop: */
    OP_SWAP,
    OP_DUP, OP_PUSH, 7, OP_MUL, OP_PUSH, 3, OP_XOR, OP_ADD,
    OP_DUP, OP_PUSH, 5, OP_SHL, OP_XOR,
    OP_DUP, OP_PUSH, 3, OP_SHR, OP_ADD,
    OP_STORE, 1, OP_LOAD, 1,
    OP_SWAP,
    OP_DEC, OP_DUP, OP_JNZ, 4,
    OP_DROP, OP_HALT,
};

static uint64_t mem[4];

__attribute__((noinline)) static uint64_t run(const uint8_t *pc0, uint64_t seed) {
    uint64_t stack[64];
    int sp = 0;
    const uint8_t *pc = pc0;
    mem[0] = seed;
    for (;;) {
        uint8_t op = *pc++;
        switch (op) {
        case OP_PUSH: stack[sp++] = *pc++; break;
        case OP_ADD: sp--; stack[sp - 1] += stack[sp]; break;
        case OP_SUB: sp--; stack[sp - 1] -= stack[sp]; break;
        case OP_MUL: sp--; stack[sp - 1] *= stack[sp]; break;
        case OP_XOR: sp--; stack[sp - 1] ^= stack[sp]; break;
        case OP_DUP: stack[sp] = stack[sp - 1]; sp++; break;
        case OP_SWAP: { uint64_t t = stack[sp - 1]; stack[sp - 1] = stack[sp - 2]; stack[sp - 2] = t; } break;
        case OP_DROP: sp--; break;
        case OP_LOAD: stack[sp++] = mem[*pc++ & 3]; break;
        case OP_STORE: mem[*pc++ & 3] = stack[--sp]; break;
        case OP_JNZ: { uint8_t t = *pc++; if (stack[--sp]) pc = pc0 + t; } break;
        case OP_DEC: stack[sp - 1]--; break;
        case OP_SHL: sp--; stack[sp - 1] <<= (stack[sp] & 63); break;
        case OP_SHR: sp--; stack[sp - 1] >>= (stack[sp] & 63); break;
        case OP_HALT: return stack[sp - 1] + mem[1];
        default: return 0;
        }
    }
}

static volatile uint32_t switch_reps = 500;

__attribute__((used)) uint64_t bench_switch(void) {
    uint64_t r = 0;
    for (uint32_t i = 0; i < switch_reps; i++)
        r = r * 31 + run(code, r + i);
    return r;
}

PB_EXPORT(bench_switch);
