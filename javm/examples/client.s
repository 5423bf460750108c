; client.s — passes a text to the word counter in slot 3 and returns its reply.
;
; Host op 1 (COPY) copies the text from slot 4 (a pinned data cap of the image) into
; slot 0, the argument slot: HOST_CALL (op 26) moves the caller's slot 0 into the
; callee's. The callee's reply arrives in r7, its status in r8 (0: it replied; 1, 2,
; 3: it trapped, panicked or page-faulted), and what it left in its slot 0 comes back
; in ours.
.code
main:
        load_imm r7, 4                  ; COPY from slot 4
        load_imm r8, 0                  ;        to slot 0
        ecalli 1
        load_imm r7, 3                  ; HOST_CALL the instance in slot 3
        load_imm r8, 0                  ;           at endpoint 0
        ecalli 26
        branch_ne_imm r8, 0, failed
        ecalli 0                        ; REPLY with the callee's r7
failed:
        trap
