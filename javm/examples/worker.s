; worker.s — starts a job, pauses for more input, then finishes with it.
;
; Host op 16 (HOST_YIELD) yields the marker in slot 5. The driver routes the yield to
; the nearest waiting instance whose yield-marker cap catches that marker (the
; supervisor, which called this worker) and the invocation pauses. The embedder
; resumes it with `call_resume` (`javm store invoke --resume 1 --scratchpad HASH`),
; putting a data cap in this instance's slot 0; the worker copies it into memory
; and replies with its length up to the first zero byte. Without a catcher the yield
; traps the worker.
.code
main:
        load_imm r7, 5                  ; the marker's slot
        ecalli 16                       ; HOST_YIELD: pause until resumed
        load_imm r7, 0                  ; slot 0: the input the embedder supplied
        load_imm r8, 0x40000
        load_imm r9, 4096
        ecalli 22                       ; READ_DATA_CAP (traps if slot 0 is empty)
        load_imm r2, 0x40000
        load_imm r7, 0                  ; length
        fallthrough
next:
        load_ind_u8 r5, r2, 0
        branch_eq_imm r5, 0, done
        add_imm_64 r7, r7, 1
        add_imm_64 r2, r2, 1
        branch_lt_u_imm r7, 4096, next
done:
        ecalli 0                        ; REPLY: r7 = the input's length
