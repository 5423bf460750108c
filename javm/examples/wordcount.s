; wordcount.s — counts the words of the text a caller passes in slot 0, and keeps a
; running total across invocations.
;
; The caller puts a data cap in slot 0 before its HOST_CALL (client.s does). Host op
; 22 (READ_DATA_CAP) copies it into this instance's scratch memory at 0x40000; a word
; is a run of bytes above 0x20, and the text ends at the first zero byte (data caps
; are whole pages, zero-padded). The total of all words counted so far lives in the
; memory page at 0x50000: settling a reply publishes the page, so the next invoke of
; the post-instance continues from it. The reply (host op 0) returns the total in r7.
.code
main:
        load_imm r7, 0                  ; slot 0: the text
        load_imm r8, 0x40000            ; copy it here
        load_imm r9, 16384              ; at most 16 KiB (the scratch mapping)
        ecalli 22                       ; READ_DATA_CAP: r7 = bytes copied; traps
                                        ; if slot 0 holds no data cap
        load_imm r2, 0x40000            ; cursor
        add_64 r3, r2, r7               ; end
        load_imm r7, 0                  ; words in this text
        load_imm r4, 1                  ; 1 while between words
        fallthrough
next:
        branch_ge_u r2, r3, done
        load_ind_u8 r5, r2, 0
        add_imm_64 r2, r2, 1
        branch_eq_imm r5, 0, done       ; end of the text
        branch_lt_u_imm r5, 33, gap     ; space or control byte
        branch_eq_imm r4, 0, next       ; inside a word
        add_imm_64 r7, r7, 1            ; a word starts here
        load_imm r4, 0
        jump next
gap:
        load_imm r4, 1
        jump next
done:
        load_u64 r6, 0x50000            ; running total
        add_64 r7, r7, r6
        store_u64 r7, 0x50000
        ecalli 0                        ; REPLY: r7 = words counted so far
