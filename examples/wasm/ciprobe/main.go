//go:build wasip1

// Command ciprobe is a WASI command for testing CI steps (package ci): its
// arguments are a little script of commands separated by ";", run in order:
//
//	echo WORDS...        print the words
//	cat PATH             print a file
//	write PATH TEXT...   write a file (parents made), the words joined by spaces
//	ls DIR               print the names in a directory, sorted
//	stat PATH            print "PATH: exists" or the error
//	env NAME             print NAME=value
//	stdin                copy stdin to stdout
//	lines                echo each line of stdin as "> LINE", as it comes
//	stdinsum             print the byte count and sha256 of stdin
//	stderr WORDS...      print the words to stderr
//	time                 print the wall clock in nanoseconds
//	sleep MS             sleep (really only with the clock granted)
//	rand                 print 16 random bytes in hex
//	symlink TARGET LINK  make a symlink
//	flood N              write N bytes of 'x' to stdout
//	disk PATH N          write N bytes to a file
//	alloc MIB            allocate and touch MIB MiB, 1 MiB at a time
//	loop                 spin forever
//	exit N               exit with status N
//
// A failing command prints its error to stderr and exits with status 1.
//
//	GOOS=wasip1 GOARCH=wasm go build -o ciprobe.wasm .
package main

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

var sink [][]byte

func main() {
	var cmds [][]string
	cur := []string{}
	for _, a := range os.Args[1:] {
		if a == ";" {
			cmds = append(cmds, cur)
			cur = []string{}
			continue
		}
		cur = append(cur, a)
	}
	cmds = append(cmds, cur)
	for _, c := range cmds {
		if len(c) == 0 {
			continue
		}
		if err := run(c[0], c[1:]); err != nil {
			fmt.Fprintf(os.Stderr, "ciprobe: %s: %v\n", c[0], err)
			os.Exit(1)
		}
	}
}

func run(name string, args []string) error {
	arg := func(i int) string {
		if i < len(args) {
			return args[i]
		}
		return ""
	}
	num := func(i int) int {
		n, _ := strconv.Atoi(arg(i))
		return n
	}
	switch name {
	case "echo":
		fmt.Println(strings.Join(args, " "))
	case "stderr":
		fmt.Fprintln(os.Stderr, strings.Join(args, " "))
	case "cat":
		b, err := os.ReadFile(arg(0))
		if err != nil {
			return err
		}
		os.Stdout.Write(b)
	case "write":
		if err := os.MkdirAll(filepath.Dir(arg(0)), 0o755); err != nil {
			return err
		}
		return os.WriteFile(arg(0), []byte(strings.Join(args[1:], " ")), 0o644)
	case "ls":
		es, err := os.ReadDir(arg(0))
		if err != nil {
			return err
		}
		var names []string
		for _, e := range es {
			names = append(names, e.Name())
		}
		slices.Sort(names)
		fmt.Println(strings.Join(names, " "))
	case "stat":
		if _, err := os.Stat(arg(0)); err != nil {
			fmt.Printf("%s: %v\n", arg(0), err)
		} else {
			fmt.Printf("%s: exists\n", arg(0))
		}
	case "env":
		fmt.Printf("%s=%s\n", arg(0), os.Getenv(arg(0)))
	case "stdin":
		_, err := io.Copy(os.Stdout, os.Stdin)
		return err
	case "lines":
		sc := bufio.NewScanner(os.Stdin)
		for sc.Scan() {
			fmt.Printf("> %s\n", sc.Text())
		}
		return sc.Err()
	case "stdinsum":
		h := sha256.New()
		n, err := io.Copy(h, os.Stdin)
		if err != nil {
			return err
		}
		fmt.Printf("%d %x\n", n, h.Sum(nil))
	case "time":
		fmt.Println(time.Now().UnixNano())
	case "sleep":
		time.Sleep(time.Duration(num(0)) * time.Millisecond)
	case "rand":
		b := make([]byte, 16)
		rand.Read(b)
		fmt.Printf("%x\n", b)
	case "symlink":
		return os.Symlink(arg(0), arg(1))
	case "flood":
		chunk := bytes.Repeat([]byte("x"), 64<<10)
		for n := num(0); n > 0; n -= len(chunk) {
			if _, err := os.Stdout.Write(chunk[:min(n, len(chunk))]); err != nil {
				return err
			}
		}
	case "disk":
		f, err := os.Create(arg(0))
		if err != nil {
			return err
		}
		chunk := make([]byte, 1<<20)
		for n := num(1); n > 0; n -= len(chunk) {
			if _, err := f.Write(chunk[:min(n, len(chunk))]); err != nil {
				f.Close()
				return err
			}
		}
		return f.Close()
	case "alloc":
		for range num(0) {
			b := make([]byte, 1<<20)
			for i := range b {
				b[i] = 1
			}
			sink = append(sink, b)
		}
		fmt.Printf("allocated %d MiB\n", len(sink))
	case "loop":
		for {
		}
	case "exit":
		os.Exit(num(0))
	default:
		return fmt.Errorf("unknown command")
	}
	return nil
}
