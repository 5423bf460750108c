; greeter.s — sums the bytes of a greeting held in a pinned, read-only data cap.
;
; The image (greeter.toml) pins the greeting in slot 3 and maps it read-only at
; 0x30000. The code adds up its bytes until the first zero byte and returns the sum
; in r7 through host op 0 (HALT / REPLY). A store to 0x30000 would page-fault: the
; page is pinned.
.code
main:
        load_imm r2, 0x30000            ; cursor
        load_imm r7, 0                  ; sum
        fallthrough
loop:
        load_ind_u8 r5, r2, 0
        branch_eq_imm r5, 0, done
        add_64 r7, r7, r5
        add_imm_64 r2, r2, 1
        jump loop
done:
        ecalli 0                        ; HALT: r7 is the return value
