// A C reactor with one export per behaviour the host tests need. It has no
// spindle_call, so unknown tasks are not_found.
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include "spindle.h"

static int32_t out_str(const char *s) { return output_write(s, (int32_t)strlen(s)); }

static int32_t out_i32(int32_t v) { return output_write(&v, 4); }

// hello: "hello, " + input.
EXPORT("hello") int32_t hello(void) {
	int32_t n = input_len();
	char *b = malloc((size_t)n + 7);
	memcpy(b, "hello, ", 7);
	input_read(b + 7, n);
	output_write(b, n + 7);
	free(b);
	return 0;
}

EXPORT("fail") int32_t fail(void) {
	const char *msg = "boom";
	error_set("first", 5);
	error_set(msg, (int32_t)strlen(msg)); // the last one wins
	return 1;
}

EXPORT("fail_quiet") int32_t fail_quiet(void) { return 7; }

EXPORT("loop") int32_t loop(void) {
	volatile int32_t x = 0;
	for (;;) {
		x++;
	}
	return 0;
}

// grow: memory.grow until refused, then trap as a runtime would.
EXPORT("grow") int32_t grow(void) {
	while (__builtin_wasm_memory_grow(0, 16) != (size_t)-1) {
	}
	__builtin_trap();
}

// grow_soft: memory.grow until refused, then fail politely.
EXPORT("grow_soft") int32_t grow_soft(void) {
	while (__builtin_wasm_memory_grow(0, 16) != (size_t)-1) {
	}
	return 2;
}

EXPORT("trap") int32_t trap(void) { __builtin_trap(); }

EXPORT("div0") int32_t div0(void) {
	volatile int32_t zero = 0;
	return 100 / zero;
}

// deep calls itself through a volatile pointer, so that the compiler can
// turn the recursion into neither a loop nor a tail call.
static int32_t deep(int32_t n);
static int32_t (*volatile deep_ptr)(int32_t) = deep;

static int32_t deep(int32_t n) { return deep_ptr(n + 1) + 1; }

EXPORT("recurse") int32_t recurse(void) { return deep(0); }

// flood: output_write 64 KiB chunks until ERR_LIMIT, then return 0.
EXPORT("flood") int32_t flood(void) {
	static char chunk[65536];
	for (;;) {
		if (output_write(chunk, sizeof chunk) == -2) {
			return 0;
		}
	}
}

// logflood: 100 logs of 1 KiB; output: how many got ERR_LIMIT.
EXPORT("logflood") int32_t logflood(void) {
	static char msg[1024];
	memset(msg, 'x', sizeof msg);
	int32_t limited = 0;
	for (int i = 0; i < 100; i++) {
		if (spindle_log(0, msg, sizeof msg) == -2) {
			limited++;
		}
	}
	out_i32(limited);
	return 0;
}

// badptr: each host function with pointers outside memory; output: the
// return codes, as int32s.
EXPORT("badptr") int32_t badptr(void) {
	int32_t codes[9];
	uint32_t end = (uint32_t)__builtin_wasm_memory_size(0) * 65536;
	codes[0] = task_name(PTR(end - 2), 16);
	codes[1] = input_read(PTR(0xfffffff0), 100);
	codes[2] = output_write(PTR(end), 1);
	codes[3] = error_set(PTR(0xffffffff), 2);
	codes[4] = spindle_log(0, PTR(end - 1), 2);
	codes[5] = spindle_send(PTR(end), 4, "x", 1, 0);
	codes[6] = spindle_send("x", 1, PTR(0xffffff00), 0x7fffffff, 0);
	codes[7] = output_write("ok", -1);       // a negative length is huge
	codes[8] = task_name(PTR(end), 0);       // an empty range at the end is inside
	output_write(codes, sizeof codes);
	return 0;
}

// counter: a count that survives only as long as the instance.
EXPORT("counter") int32_t counter(void) {
	static int32_t n;
	n++;
	out_i32(n);
	return 0;
}

EXPORT("exit3") int32_t exit3(void) { exit(3); }

// send: input is [sender_len u32][sender][flags u32][data]; output: the
// code send returned.
EXPORT("send") int32_t do_send(void) {
	int32_t n = input_len();
	char *in = malloc((size_t)n);
	input_read(in, n);
	uint32_t slen;
	memcpy(&slen, in, 4);
	uint32_t flags;
	memcpy(&flags, in + 4 + slen, 4);
	char *data = in + 8 + slen;
	out_i32(spindle_send(in + 4, (int32_t)slen, data, n - 8 - (int32_t)slen, (int32_t)flags));
	return 0;
}

// taskname: task_name into a 2-byte buffer; output: the length returned and
// the bytes copied.
EXPORT("taskname") int32_t taskname(void) {
	char buf[2];
	int32_t n = task_name(buf, 2);
	out_i32(n);
	output_write(buf, 2);
	return 0;
}

// stdio: print to stdout and stderr.
EXPORT("stdio") int32_t stdio(void) {
	printf("to stdout\n");
	fflush(stdout);
	fprintf(stderr, "to stderr\n");
	return 0;
}

// grow_by: memory.grow by the number of pages in the input (an int32);
// fails with status 1 if refused. Output: the pages after.
EXPORT("grow_by") int32_t grow_by(void) {
	int32_t pages = 0;
	input_read(&pages, 4);
	if (__builtin_wasm_memory_grow(0, (size_t)pages) == (size_t)-1) {
		return 1;
	}
	out_i32((int32_t)__builtin_wasm_memory_size(0));
	return 0;
}
