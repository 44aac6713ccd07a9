; The BIOS golden image's boot sector (nasm -f bin).
;
; Booted from a SAN disk by iPXE, it proves that the machine runs its own disk
; and can write to it: it reads sector 1 (magic "ZBOOTCNT" + a counter byte),
; increments the counter, writes the sector back, prints the new value on COM1
; and leaves QEMU through isa-debug-exit (port 0xf4) so the value is also the
; exit status: (value << 1) | 1. Any failure exits with value 127.
; A second drive (0x81: the host's data disk) gets a counter of its own in its
; sector 1, started on a blank sector, printed as ZBOOT-DATA=<n>.

bits 16
org 0x7c00

COM1        equ 0x3f8
EXIT_PORT   equ 0xf4
BUF         equ 0x7e00
MAGIC_LEN   equ 8
FAILED      equ 127
DATA_DRIVE  equ 0x81

start:
    cli
    xor ax, ax
    mov ds, ax
    mov es, ax
    mov ss, ax
    mov sp, 0x7c00
    sti
    mov [drive], dl

    mov si, msg_hello
    call puts

    mov ah, 0x02                ; read sector 1 into BUF
    call disk_io
    jc fail

    mov si, magic               ; is it our counter sector?
    mov di, BUF
    mov cx, MAGIC_LEN
    repe cmpsb
    jne fail

    cmp byte [BUF + MAGIC_LEN], FAILED - 1
    jae fail                    ; the counter is full
    inc byte [BUF + MAGIC_LEN]

    mov ah, 0x03                ; write it back
    call disk_io
    jc fail

    mov si, msg_count
    call puts
    mov al, [BUF + MAGIC_LEN]
    mov [count], al
    call putdec
    mov si, msg_eol
    call puts

    mov byte [drive], DATA_DRIVE ; a data disk as the second drive: count there too
    mov ah, 0x02
    call disk_io
    jc .done                    ; no second drive
    mov si, magic
    mov di, BUF
    mov cx, MAGIC_LEN
    repe cmpsb
    je .data_count
    xor al, al                  ; not a counter: start one only on a blank sector
    mov di, BUF
    mov cx, MAGIC_LEN + 1
    repe scasb
    jne .done
    mov si, magic
    mov di, BUF
    mov cx, MAGIC_LEN
    rep movsb
.data_count:
    cmp byte [BUF + MAGIC_LEN], FAILED - 1
    jae .done
    inc byte [BUF + MAGIC_LEN]
    mov ah, 0x03
    call disk_io
    jc .done
    mov si, msg_data
    call puts
    mov al, [BUF + MAGIC_LEN]
    call putdec
    mov si, msg_eol
    call puts
.done:
    call pause
    mov al, [count]
    jmp exit

fail:
    mov si, msg_fail
    call puts
    call pause
    mov al, FAILED

exit:
    out EXIT_PORT, al
.hang:                          ; no debug-exit device: stop here
    cli
    hlt
    jmp .hang

; INT 13h on one sector at CHS 0/0/2 (LBA 1) with BUF; AH = 2 (read) or 3 (write)
disk_io:
    mov al, 1
    mov cx, 0x0002
    xor dh, dh
    mov dl, [drive]
    mov bx, BUF
    int 0x13
    ret

; print the zero-terminated string at SI on COM1
puts:
    lodsb
    test al, al
    jz .done
    call putc
    jmp puts
.done:
    ret

; print AL on COM1 once the transmitter is empty
putc:
    push ax
    mov dx, COM1 + 5
.wait:
    in al, dx
    test al, 0x20
    jz .wait
    pop ax
    mov dx, COM1
    out dx, al
    ret

; print AL (0-255) in decimal
putdec:
    xor cx, cx
    mov bl, 10
.divide:
    xor ah, ah
    div bl                      ; AL = quotient, AH = remainder
    push ax
    inc cx
    test al, al
    jnz .divide
.print:
    pop ax
    mov al, ah
    add al, '0'
    call putc
    loop .print
    ret

; wait 0.2 s (INT 15h AH=86h, CX:DX microseconds) so the serial line drains
pause:
    mov ah, 0x86
    mov cx, 0x0003
    mov dx, 0x0d40
    int 0x15
    ret

drive:      db 0
count:      db 0
magic:      db "ZBOOTCNT"
msg_hello:  db "ZBOOT-BIOS: boot sector running", 13, 10, 0
msg_count:  db "ZBOOT-COUNTER=", 0
msg_data:   db "ZBOOT-DATA=", 0
msg_eol:    db 13, 10, 0
msg_fail:   db "ZBOOT-ERROR: counter sector unreadable or full", 13, 10, 0

times 510 - ($ - $$) db 0
dw 0xaa55
