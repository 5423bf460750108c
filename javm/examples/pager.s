; pager.s — sums a data set that the host pages in on demand.
;
; `ecalli 1` asks the host where the data is: r7 = its address, r8 = the number of
; 64-bit words. The data's pages are not mapped when the guest starts: each first
; read of one page-faults, and the host maps it, fills it and resumes the run, which
; retries the read (an inner-VM pager; see examples/embed.rs, which runs it).
; `ecalli 2` logs the message at r7 (length r8).
; Output: the sum, 8 bytes little-endian.
;
;   cargo run -p javm --example embed
.ro
msg:    .ascii "summed"

.stack 4096

.code
main:
        ecalli 1                        ; r7 = data, r8 = words
        load_imm r3, 0                  ; sum
        branch_eq_imm r8, 0, done
loop:
        load_ind_u64 r4, r7, 0
        add_64 r3, r3, r4
        add_imm_64 r7, r7, 8
        add_imm_64 r8, r8, -1
        branch_ne_imm r8, 0, loop
done:
        load_imm r7, msg
        load_imm r8, 6
        ecalli 2
        add_imm_64 r1, r1, -8
        store_ind_u64 r3, r1, 0
        move_reg r7, r1
        load_imm r8, 8
        jump_ind r0, 0
