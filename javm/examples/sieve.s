; sieve.s — the sieve of Eratosthenes: counts the primes below n.
;
; Input:  optional 4-byte little-endian n (default 100000, at most 1048576).
; Output: the number of primes below n, 4 bytes little-endian.
;
;   javm run examples/sieve.pvm               # 9592
;
; The flags live in the heap (256 pages = 1 MiB), which starts right after the empty
; read-write data section, so the `flags` label below is the heap's address.
.heap 256
.stack 4096

.rw
flags:

.code
main:
        load_imm r2, 100000             ; n
        branch_lt_u_imm r8, 4, check
        load_ind_u32 r2, r7, 0
        fallthrough
check:
        load_imm r3, 1048577
        branch_lt_u r2, r3, init
        trap                            ; n is larger than the heap
init:
        load_imm r9, flags              ; base of the flags (0 = prime)
        load_imm r10, 0                 ; count
        load_imm r4, 2                  ; i
        fallthrough
outer:
        branch_ge_u r4, r2, finish
        add_64 r5, r9, r4
        load_ind_u8 r6, r5, 0
        branch_ne_imm r6, 0, next       ; composite
        add_imm_64 r10, r10, 1          ; i is prime
        mul_64 r11, r4, r4              ; j = i * i
        fallthrough
inner:
        branch_ge_u r11, r2, next
        add_64 r5, r9, r11
        store_imm_ind_u8 r5, 0, 1       ; flags[j] = composite
        add_64 r11, r11, r4
        jump inner
next:
        add_imm_64 r4, r4, 1
        jump outer
finish:
        add_imm_64 r1, r1, -8
        store_ind_u32 r10, r1, 0
        move_reg r7, r1
        load_imm r8, 4
        jump_ind r0, 0
