; hash.s — FNV-1a (64-bit) over n pseudo-random bytes.
;
; Input:  optional 4-byte little-endian n (default 65536, at most 1048576).
; Output: the hash, 8 bytes little-endian.
;
;   javm run examples/hash.pvm
;
; The bytes come from a xorshift64 generator written 8 at a time into the heap; the
; hash loop then reads them back one byte at a time (load, xor, multiply).
.heap 256
.stack 4096

.rw
buf:

.code
main:
        load_imm r2, 65536              ; n
        branch_lt_u_imm r8, 4, check
        load_ind_u32 r2, r7, 0
        fallthrough
check:
        load_imm r3, 1048576
        branch_ge_u r3, r2, start
        trap                            ; n is larger than the heap
start:
        load_imm r9, buf
        load_imm_64 r4, 0x9E3779B97F4A7C15 ; generator state
        load_imm r5, 0                  ; offset
        fallthrough
fill:
        shlo_l_imm_64 r6, r4, 13        ; x ^= x << 13
        xor r4, r4, r6
        shlo_r_imm_64 r6, r4, 7         ; x ^= x >> 7
        xor r4, r4, r6
        shlo_l_imm_64 r6, r4, 17        ; x ^= x << 17
        xor r4, r4, r6
        add_64 r6, r9, r5
        store_ind_u64 r4, r6, 0
        add_imm_64 r5, r5, 8
        branch_lt_u r5, r2, fill
        load_imm_64 r10, 0xCBF29CE484222325 ; FNV offset basis
        load_imm_64 r11, 0x100000001B3  ; FNV prime
        load_imm r5, 0
        fallthrough
hash:
        add_64 r6, r9, r5
        load_ind_u8 r12, r6, 0
        xor r10, r10, r12
        mul_64 r10, r10, r11
        add_imm_64 r5, r5, 1
        branch_lt_u r5, r2, hash
        add_imm_64 r1, r1, -8           ; room on the stack
        store_ind_u64 r10, r1, 0
        move_reg r7, r1                 ; output = the 8 bytes of the hash
        load_imm r8, 8
        jump_ind r0, 0
