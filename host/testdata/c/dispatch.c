// A C reactor that exports only spindle_call and dispatches on task_name.
#include <string.h>
#include "spindle.h"

EXPORT("spindle_call") int32_t spindle_call(void) {
	char name[64];
	int32_t n = task_name(name, sizeof name);
	if (n > (int32_t)sizeof name) {
		error_set("task name too long", 18);
		return 1;
	}
	if (n == 4 && memcmp(name, "echo", 4) == 0) {
		char buf[256];
		int32_t len = input_read(buf, sizeof buf);
		output_write("echo:", 5);
		output_write(buf, len);
		return 0;
	}
	const char *msg = "unknown task: ";
	error_set(msg, (int32_t)strlen(msg)); // the dispatcher's own error
	return 1;
}
