# The machine code of lib/net/native/_crc32c.ts: CRC-32C by the CPU's crc32 instruction
# (SSE4.2), x86-64, System V calling convention. The bytes that file holds are this source
# assembled (`as crc32c.S -o crc32c.o && objcopy -O binary -j .text crc32c.o crc32c.bin`);
# tests/hardware_crc_test.ts assembles it again and compares.
  .intel_syntax noprefix
  .text

# int compare(const uint8_t *base, int32_t *job): the comparator of the C library's tfind(),
# which calls it with the datagram (tfind's key) and the job (the one node's key). job holds
# { crc, from, to }: the CRC-32C register (neither inverted) after base[from..to) from crc goes
# back into job[0]. Returns 0 ("found"). from <= to and to <= the length of base: the caller's.
compare:
  mov eax, dword ptr [rsi]
  mov edx, dword ptr [rsi + 4]
  mov ecx, dword ptr [rsi + 8]
  add rdi, rdx
  sub rcx, rdx
  jbe 3f
1:                                  # 8 bytes an instruction
  cmp rcx, 8
  jb 2f
  crc32 rax, qword ptr [rdi]
  add rdi, 8
  sub rcx, 8
  jmp 1b
2:                                  # then the last bytes, one at a time
  test rcx, rcx
  jz 3f
  crc32 eax, byte ptr [rdi]
  inc rdi
  dec rcx
  jmp 2b
3:
  mov dword ptr [rsi], eax
  xor eax, eax
  ret

# uint32_t features(void): CPUID leaf 1's ECX, whose bit 20 says SSE4.2 (the crc32 instruction).
features:
  push rbx
  mov eax, 1
  xor ecx, ecx
  cpuid
  mov eax, ecx
  pop rbx
  ret
