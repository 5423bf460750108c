; supervisor.s — calls the worker in slot 3 and catches its yields.
;
; The image names slot 4 as its yield-marker slot; the cap there is this
; supervisor's catcher. While it waits in its HOST_CALL, a yield of the worker (or
; running out of gas) is routed to it if the embedder's kernel says that catcher
; catches the marker (`javm store invoke --catch CATCHER=MARKER`, or `=oog` for out
; of gas). The reply is the worker's r7 plus 1000 times its status (0: replied).
.code
main:
        load_imm r7, 3                  ; HOST_CALL the worker in slot 3
        load_imm r8, 0
        ecalli 26
        mul_imm_64 r8, r8, 1000
        add_64 r7, r7, r8
        ecalli 0
