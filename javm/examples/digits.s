; digits.s — the sum of the decimal digits of n pseudo-random 64-bit numbers.
;
; Input:  optional 4-byte little-endian n (default 1000).
; Output: the sum, 8 bytes little-endian.
;
;   javm run examples/digits.pvm
;
; The numbers come from a 64-bit linear congruential generator. Each digit is
; split off the way compilers divide by ten: the quotient is the high half of a
; multiply by 0xCCCCCCCCCCCCCCCD shifted right by 3, the remainder v − 10·q with
; 10·q written as q·8 + q·2, then masked to a byte.
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
        load_imm_64 r9, 0xCCCCCCCCCCCCCCCD ; 2^67 / 10, rounded up
        load_imm_64 r10, 6364136223846793005
        load_imm_64 r11, 1442695040888963407
        branch_eq_imm r2, 0, done
next:
        mul_64 r4, r4, r10              ; x = x·a + c
        add_64 r4, r4, r11
        move_reg r5, r4                 ; v = x
        fallthrough
digit:
        mul_upper_u_u r6, r5, r9        ; q = v / 10
        shlo_r_imm_64 r6, r6, 3
        shlo_l_imm_64 r12, r6, 3        ; 10·q = q·8 + q·2
        shlo_l_imm_64 r8, r6, 1
        add_64 r12, r12, r8
        sub_64 r12, r5, r12             ; the digit, v − 10·q
        and_imm r12, r12, 255
        add_64 r3, r3, r12
        move_reg r5, r6                 ; v = q
        branch_ne_imm r5, 0, digit
        add_imm_64 r2, r2, -1
        branch_ne_imm r2, 0, next
done:
        add_imm_64 r1, r1, -8           ; room on the stack
        store_ind_u64 r3, r1, 0
        move_reg r7, r1                 ; output = the 8 bytes of the sum
        load_imm r8, 8
        jump_ind r0, 0
