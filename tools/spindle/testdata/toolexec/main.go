// Command toolexec is what spindle toolexec's test builds twice, natively
// and with the wasip1 tools: a main package (compile, link) importing a
// package with assembly (asm).
package main

import (
	"fmt"

	"example.com/toolexec/p"
)

func main() { fmt.Println("2+3 =", p.Add(2, 3)) }
