; sort.s — insertion sort of n pseudo-random 32-bit values.
;
; Input:  optional 4-byte little-endian n (default 1000, at most 65536).
; Output: 16 bytes: a hash of the sorted array (h = h * 31 + a[i], mod 2^64), then 1
;         if the array is sorted (0 if not), both little-endian u64.
;
;   javm run examples/sort.pvm
;
; The values come from a linear congruential generator; the array lives in the heap.
.heap 64
.stack 4096

.rw
array:

.code
main:
        load_imm r2, 1000               ; n
        branch_lt_u_imm r8, 4, check
        load_ind_u32 r2, r7, 0
        fallthrough
check:
        load_imm r3, 65537
        branch_lt_u r2, r3, fill
        trap                            ; n is larger than the heap
fill:
        load_imm r9, array
        load_imm r4, 0                  ; i
        load_imm r5, 12345              ; seed
        fallthrough
fill_loop:
        branch_ge_u r4, r2, sort
        mul_imm_32 r5, r5, 1103515245   ; seed = seed * 1103515245 + 12345 (mod 2^32)
        add_imm_32 r5, r5, 12345
        shlo_l_imm_64 r6, r4, 2
        add_64 r6, r6, r9
        store_ind_u32 r5, r6, 0         ; a[i] = seed
        add_imm_64 r4, r4, 1
        jump fill_loop
sort:
        load_imm r4, 1                  ; i
        fallthrough
sort_outer:
        branch_ge_u r4, r2, verify
        shlo_l_imm_64 r6, r4, 2
        add_64 r6, r6, r9
        load_ind_u32 r7, r6, 0          ; key = a[i]
        move_reg r10, r4                ; j = i
        fallthrough
sort_inner:
        branch_eq_imm r10, 0, place
        shlo_l_imm_64 r6, r10, 2
        add_64 r6, r6, r9
        load_ind_u32 r11, r6, -4        ; a[j - 1]
        branch_ge_u r7, r11, place      ; stop once a[j - 1] <= key
        store_ind_u32 r11, r6, 0        ; a[j] = a[j - 1]
        add_imm_64 r10, r10, -1
        jump sort_inner
place:
        shlo_l_imm_64 r6, r10, 2
        add_64 r6, r6, r9
        store_ind_u32 r7, r6, 0         ; a[j] = key
        add_imm_64 r4, r4, 1
        jump sort_outer
verify:
        load_imm r4, 0                  ; i
        load_imm r12, 0                 ; hash
        load_imm r3, 1                  ; sorted
        load_imm r11, 0                 ; previous value
        fallthrough
verify_loop:
        branch_ge_u r4, r2, out
        shlo_l_imm_64 r6, r4, 2
        add_64 r6, r6, r9
        load_ind_u32 r5, r6, 0
        set_lt_u r10, r5, r11           ; out of order?
        cmov_nz_imm r3, r10, 0
        mul_imm_64 r12, r12, 31
        add_64 r12, r12, r5
        move_reg r11, r5
        add_imm_64 r4, r4, 1
        jump verify_loop
out:
        add_imm_64 r1, r1, -16
        store_ind_u64 r12, r1, 0
        store_ind_u64 r3, r1, 8
        move_reg r7, r1
        load_imm r8, 16
        jump_ind r0, 0
