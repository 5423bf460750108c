; caller.s — calls the instance in slot 3 of its cnode and returns what it replied,
; plus one.
;
; Host op 26 (HOST_CALL) takes the callee's slot in r7 and the endpoint in r8; the
; callee's reply arrives in r7. `javm store put examples/caller.toml --slot 3=HASH`
; places a published instance (e.g. the greeter's) in slot 3.
.stack 4096

.code
main:
        load_imm r7, 3                  ; callee slot
        load_imm r8, 0                  ; callee endpoint
        load_imm r9, 0                  ; arguments for the callee: r9..r12 -> its r7..r10
        ecalli 26                       ; HOST_CALL
        add_imm_64 r7, r7, 1
        ecalli 0                        ; HALT: r7 is the return value
