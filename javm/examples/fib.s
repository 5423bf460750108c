; fib.s — iterative Fibonacci: F(n) mod 2^64.
;
; Input:  optional 4-byte little-endian n (default 90).
; Output: F(n) as 8 bytes, little-endian.
;
;   javm run examples/fib.pvm                 # F(90) = 2880067194370816120
;   javm run examples/fib.pvm --arg 0a000000  # F(10) = 55
;
; The loop is five instructions per step; the interpreter benchmark runs it.
.stack 4096

.code
main:
        load_imm r2, 90                 ; n
        branch_lt_u_imm r8, 4, start    ; no argument: keep the default
        load_ind_u32 r2, r7, 0          ; n = the argument
        fallthrough                     ; a branch target must start a block
start:
        load_imm r3, 0                  ; a = F(0)
        load_imm r4, 1                  ; b = F(1)
        branch_eq_imm r2, 0, done
loop:
        add_64 r5, r3, r4               ; t = a + b
        move_reg r3, r4                 ; a = b
        move_reg r4, r5                 ; b = t
        add_imm_64 r2, r2, -1
        branch_ne_imm r2, 0, loop
done:
        add_imm_64 r1, r1, -8           ; room on the stack
        store_ind_u64 r3, r1, 0
        move_reg r7, r1                 ; output = the 8 bytes of a
        load_imm r8, 8
        jump_ind r0, 0
