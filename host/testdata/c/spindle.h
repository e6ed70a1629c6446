// The spindle host functions of docs/abi.md, for the test guests.
#include <stdint.h>

#define SPINDLE(n) __attribute__((import_module("spindle"), import_name(n)))
#define EXPORT(n) __attribute__((export_name(n)))

SPINDLE("task_name") int32_t task_name(void *buf, int32_t cap);
SPINDLE("input_len") int32_t input_len(void);
SPINDLE("input_read") int32_t input_read(void *buf, int32_t cap);
SPINDLE("output_write") int32_t output_write(const void *ptr, int32_t len);
SPINDLE("error_set") int32_t error_set(const void *ptr, int32_t len);
SPINDLE("log") int32_t spindle_log(int32_t level, const void *ptr, int32_t len);
SPINDLE("send") int32_t spindle_send(const void *sender, int32_t sender_len, const void *data, int32_t data_len, int32_t flags);

// Raw pointers for the bad-pointer tests: casts from integers.
#define PTR(x) ((void *)(uintptr_t)(x))
