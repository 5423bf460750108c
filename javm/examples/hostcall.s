; hostcall.s — n host calls in a loop (measures exit and re-entry).
;
; Input:  optional 4-byte little-endian n (default 1000).
; Output: the number of calls made, 8 bytes little-endian. The host answers every
; `ecalli 0` by doing nothing (`javm run` reports an unserviced host call as the
; exit, so run it with `javm bench`).
.stack 4096

.code
main:
        load_imm r2, 1000               ; n
        branch_lt_u_imm r8, 4, start
        load_ind_u32 r2, r7, 0
        fallthrough
start:
        load_imm r3, 0                  ; calls made
        branch_eq_imm r2, 0, done
loop:
        ecalli 0
        add_imm_64 r3, r3, 1
        branch_ne r3, r2, loop
done:
        add_imm_64 r1, r1, -8
        store_ind_u64 r3, r1, 0
        move_reg r7, r1
        load_imm r8, 8
        jump_ind r0, 0
