# The machine code of lib/net/native/_crc32c.ts: CRC-32C by the CPU's crc32 instruction
# (SSE4.2), x86-64, System V calling convention. The bytes that file holds are this source
# assembled (`as crc32c.S -o crc32c.o && objcopy -O binary -j .text crc32c.o crc32c.bin`);
# tests/hardware_crc_test.ts assembles it again and compares.
  .intel_syntax noprefix
  .text

# int compare(const uint8_t *base, int32_t *job): the comparator of the C library's tfind(),
# which calls it with the datagram (tfind's key) and the job (the one node's key). job holds
# { crc, from, to, lane, k1, k2 }: the CRC-32C register (neither inverted) after base[from..to)
# from crc goes back into job[0]. Returns 0 ("found"). from <= to and to <= the length of base:
# the caller's.
#
# With lane 0 the range is read in one go. With lane > 0 (a multiple of 8, and 3 * lane <=
# to - from; the processor has PCLMULQDQ) it is read as three lanes at once, A = the first lane
# bytes, B = the next lane, C = the rest: the crc32 instruction takes 3 cycles but starts one a
# cycle, so three independent registers go three times as fast. They are joined as CRC-32C's
# linearity allows: the register after a range is A's run through the zero bytes after A, xor
# B's run through those after B, xor C's; a register is run through m zero bytes by a
# carry-less multiplication by k = x^(8m - 33) mod P (reflected), reduced by the crc32
# instruction. The caller gives k1 for A (m = to - from - lane) and k2 for B (m = to - from -
# 2 * lane).
compare:
  mov eax, dword ptr [rsi]
  mov edx, dword ptr [rsi + 4]
  mov ecx, dword ptr [rsi + 8]
  mov r8d, dword ptr [rsi + 12]
  xor r11d, r11d                    # A's and B's joined registers (none in one go)
  add rdi, rdx
  sub rcx, rdx
  jbe 3f
  test r8, r8
  jnz 4f
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
  xor eax, r11d
  mov dword ptr [rsi], eax
  xor eax, eax
  ret
4:                                  # three lanes of r8 bytes, 8 bytes of each a round
  xor r9d, r9d
  xor r10d, r10d
  mov rdx, r8
5:
  crc32 rax, qword ptr [rdi]
  crc32 r9, qword ptr [rdi + r8]
  crc32 r10, qword ptr [rdi + r8 * 2]
  add rdi, 8
  sub rdx, 8
  jnz 5b
  movd xmm0, eax                    # A * k1 xor B * k2, reduced: A and B joined
  movd xmm1, dword ptr [rsi + 16]
  pclmulqdq xmm0, xmm1, 0
  movd xmm2, r9d
  movd xmm3, dword ptr [rsi + 20]
  pclmulqdq xmm2, xmm3, 0
  pxor xmm0, xmm2
  movq rdx, xmm0
  crc32 r11, rdx
  mov eax, r10d                     # C goes on alone with what is past its lane
  lea rdi, [rdi + r8 * 2]
  sub rcx, r8
  sub rcx, r8
  sub rcx, r8
  jmp 1b

# uint32_t features(void): CPUID leaf 1's ECX, whose bit 20 says SSE4.2 (the crc32 instruction)
# and bit 1 PCLMULQDQ (the carry-less multiplication).
features:
  push rbx
  mov eax, 1
  xor ecx, ecx
  cpuid
  mov eax, ecx
  pop rbx
  ret
