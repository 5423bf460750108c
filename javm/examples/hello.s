; hello.s — the smallest complete program: its output is a string.
;
; A standard program's output is mem[r7 .. r7 + r8] when it halts, and it halts by
; jumping to the address in r0 (0xFFFF0000 at entry).
;
;   javm run examples/hello.pvm
.ro
msg:    .ascii "hello, world\n"

.code
main:
        load_imm r7, msg        ; output address
        load_imm r8, 13         ; output length
        jump_ind r0, 0          ; return to the caller: halt
