// Command gocmd is a Go command for the host tests. Each argument is an
// operation; it prints one line per operation:
//
//	sandbox            year, environment, /data, random bytes
//	read:PATH          the file's contents, or the error
//	write:PATH:TEXT    writes TEXT to PATH
//	symlink:OLD:NEW    makes NEW a symlink to OLD
//	ls:PATH            the names in a directory
//	exit:N             exits with code N
package main

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

func main() {
	for _, arg := range os.Args[1:] {
		op, rest, _ := strings.Cut(arg, ":")
		switch op {
		case "sandbox":
			fmt.Printf("year=%d\n", time.Now().Year())
			fmt.Printf("env=%q\n", os.Environ())
			if _, err := os.ReadDir("/data"); err != nil {
				fmt.Printf("data=error\n")
			} else {
				fmt.Printf("data=ok\n")
			}
			r := make([]byte, 8)
			rand.Read(r)
			fmt.Printf("rand=%s\n", hex.EncodeToString(r))
		case "read":
			b, err := os.ReadFile(rest)
			report(arg, string(b), err)
		case "write":
			p, text, _ := strings.Cut(rest, ":")
			report(arg, "", os.WriteFile(p, []byte(text), 0o644))
		case "symlink":
			oldname, newname, _ := strings.Cut(rest, ":")
			report(arg, "", os.Symlink(oldname, newname))
		case "ls":
			entries, err := os.ReadDir(rest)
			var names []string
			for _, e := range entries {
				names = append(names, e.Name())
			}
			report(arg, strings.Join(names, ","), err)
		case "exit":
			n, _ := strconv.Atoi(rest)
			os.Exit(n)
		default:
			fmt.Fprintf(os.Stderr, "unknown op %q\n", arg)
			os.Exit(100)
		}
	}
}

func report(arg, ok string, err error) {
	if err != nil {
		fmt.Printf("%s -> error\n", arg)
		return
	}
	fmt.Printf("%s -> ok %s\n", arg, ok)
}
