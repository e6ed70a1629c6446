/*
 * c-bad: misbehaving tasks in C, for host tests that need what a Go guest
 * cannot easily do, in a module that instantiates in microseconds. No SDK,
 * no libc; built like c-hello (see README.md).
 *
 *   recurse:     recurses until the engine's call stack overflows (C frames
 *                live on the engine's stack; Go's live in linear memory).
 *   unreachable: executes the unreachable instruction.
 *   loop:        spins forever.
 *   membomb:     grows memory a page at a time until a grow is refused, then
 *                fails with "memory.grow refused after N pages".
 */
#include <stdint.h>

__attribute__((import_module("spindle"), import_name("error_set")))
int32_t spindle_error_set(const char *ptr, int32_t len);

/* Volatile, so that the compiler can neither drop the loops nor turn the
 * recursion into one. */
static volatile int32_t sink, never;

__attribute__((noinline)) static int32_t down(int32_t n) {
	sink = n;
	if (never)
		return n;
	return down(n + 1) + sink;
}

__attribute__((export_name("recurse")))
int32_t recurse(void) {
	return down(0);
}

__attribute__((export_name("unreachable")))
int32_t unreachable(void) {
	__builtin_trap();
}

__attribute__((export_name("loop")))
int32_t loop(void) {
	while (!never)
		sink++;
	return 0;
}

__attribute__((export_name("membomb")))
int32_t membomb(void) {
	uint32_t pages = 0;
	while (__builtin_wasm_memory_grow(0, 1) != (uintptr_t)-1)
		pages++;
	/* "memory.grow refused after N pages", without libc. */
	static char msg[48] = "memory.grow refused after ";
	int32_t n = 26;
	char digits[10];
	int32_t d = 0;
	do {
		digits[d++] = (char)('0' + pages % 10);
		pages /= 10;
	} while (pages);
	while (d)
		msg[n++] = digits[--d];
	for (const char *s = " pages"; *s; s++)
		msg[n++] = *s;
	spindle_error_set(msg, n);
	return 1;
}
