; divide.s — digits.s with the division instructions: the sum of the decimal digits
; of n pseudo-random 64-bit numbers, each digit split off by rem_u_64 and div_u_64.
;
; Input:  optional 4-byte little-endian n (default 1000).
; Output: the sum, 8 bytes little-endian.
;
;   javm run examples/divide.s
;
; The numbers come from the same 64-bit linear congruential generator as in
; digits.s, so the sums agree; here each digit costs a remainder and a quotient by
; a divisor in a register, as code divides by a value it does not know.
.stack 4096

.code
main:
        load_imm r2, 1000               ; n
        branch_lt_u_imm r8, 4, start
        load_ind_u32 r2, r7, 0
        fallthrough
start:
        load_imm r3, 0                  ; sum
        load_imm_64 r4, 0x9E3779B97F4A7C15 ; generator state
        load_imm r9, 10                 ; the divisor
        load_imm_64 r10, 6364136223846793005
        load_imm_64 r11, 1442695040888963407
        branch_eq_imm r2, 0, done
next:
        mul_64 r4, r4, r10              ; x = x·a + c
        add_64 r4, r4, r11
        move_reg r5, r4                 ; v = x
        fallthrough
digit:
        rem_u_64 r12, r5, r9            ; the digit, v mod 10
        add_64 r3, r3, r12
        div_u_64 r5, r5, r9             ; v = v / 10
        branch_ne_imm r5, 0, digit
        add_imm_64 r2, r2, -1
        branch_ne_imm r2, 0, next
done:
        add_imm_64 r1, r1, -8           ; room on the stack
        store_ind_u64 r3, r1, 0
        move_reg r7, r1                 ; output = the 8 bytes of the sum
        load_imm r8, 8
        jump_ind r0, 0
