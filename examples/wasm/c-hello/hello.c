/*
 * c-hello: a Spindle reactor in C, with no SDK and no libc. It shows the
 * ABI of docs/abi.md at its barest: each task is an export of type
 * () -> i32 named for the task, and talks to the host through the
 * "spindle" imports.
 *
 *   hello: output "hello, " followed by the input bytes.
 *   fail:  fail with the message "c says no".
 *
 * Build (see README.md):
 *
 *   clang --target=wasm32-wasi -ffreestanding -nostdlibinc -mexec-model=reactor -nostdlib \
 *     -O2 -Wall -Wextra -Werror -Wl,--no-entry -o c-hello.wasm hello.c
 */
#include <stdint.h>

#define SPINDLE_IMPORT(name) \
	__attribute__((import_module("spindle"), import_name(name)))

SPINDLE_IMPORT("input_len") int32_t spindle_input_len(void);
SPINDLE_IMPORT("input_read") int32_t spindle_input_read(uint8_t *buf, int32_t cap);
SPINDLE_IMPORT("output_write") int32_t spindle_output_write(const uint8_t *ptr, int32_t len);
SPINDLE_IMPORT("error_set") int32_t spindle_error_set(const char *ptr, int32_t len);

#define WASM_PAGE 65536

/*
 * scratch is a buffer at the end of linear memory, grown a page at a time
 * with memory.grow and reused by every call. Nothing else grows memory (no
 * libc, no malloc), so each grow extends it in place.
 */
static uint8_t *scratch;
static uint32_t scratch_cap;

static uint8_t *scratch_get(uint32_t n) {
	if (n <= scratch_cap)
		return scratch;
	uint32_t pages = (n - scratch_cap + WASM_PAGE - 1) / WASM_PAGE;
	uintptr_t old = __builtin_wasm_memory_grow(0, pages);
	if (old == (uintptr_t)-1)
		return 0;
	if (scratch == 0)
		scratch = (uint8_t *)(old * WASM_PAGE);
	scratch_cap += pages * WASM_PAGE;
	return scratch;
}

/* fail gives msg, a string literal, to error_set and returns failure. */
#define fail(msg) (spindle_error_set(msg, sizeof(msg) - 1), 1)

__attribute__((export_name("hello")))
int32_t hello(void) {
	static const uint8_t prefix[] = "hello, ";
	int32_t n = spindle_input_len();
	if (n < 0)
		return fail("c-hello: input_len failed");
	uint8_t *buf = 0;
	if (n > 0) {
		buf = scratch_get((uint32_t)n);
		if (buf == 0)
			return fail("c-hello: out of memory");
		if (spindle_input_read(buf, n) != n)
			return fail("c-hello: input_read failed");
	}
	/* output_write appends, so no copy is needed to join the two. */
	if (spindle_output_write(prefix, sizeof prefix - 1) < 0 ||
	    spindle_output_write(buf, n) < 0)
		return fail("c-hello: output refused");
	return 0;
}

__attribute__((export_name("fail")))
int32_t fail_task(void) {
	return fail("c says no");
}
