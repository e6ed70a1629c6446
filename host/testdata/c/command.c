// A C command: prints its args and $FOO, copies stdin to stdout, writes to
// stderr and exits with the code in argv[1] (default 0). With argv[1] ==
// "flood" it writes to stdout forever.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
	if (argc > 1 && strcmp(argv[1], "flood") == 0) {
		static char line[4096];
		memset(line, 'y', sizeof line);
		for (;;) {
			fwrite(line, 1, sizeof line, stdout);
		}
	}
	for (int i = 0; i < argc; i++) {
		printf("arg %s\n", argv[i]);
	}
	const char *foo = getenv("FOO");
	printf("FOO=%s\n", foo ? foo : "(unset)");
	char buf[256];
	size_t n;
	while ((n = fread(buf, 1, sizeof buf, stdin)) > 0) {
		fwrite(buf, 1, n, stdout);
	}
	fprintf(stderr, "bye\n");
	return argc > 1 ? atoi(argv[1]) : 0;
}
