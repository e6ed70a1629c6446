package mask_test

import (
	"encoding/base64"
	"fmt"
	"os"

	"github.com/spindle-hq/spindle/ci/mask"
)

func Example() {
	m, err := mask.New([][]byte{[]byte("hunter2-token")})
	if err != nil {
		fmt.Println(err)
		return
	}
	w := m.Writer(os.Stdout)
	// The secret arrives split across writes, and base64-encoded.
	fmt.Fprint(w, "login with hunter2")
	fmt.Fprint(w, "-token ok\n")
	fmt.Fprintf(w, "header: Basic %s\n", base64.StdEncoding.EncodeToString([]byte("user:hunter2-token")))
	w.Close()

	fmt.Println(m.String("error: bad token \"hunter2-token\""))

	_, err = mask.New([][]byte{[]byte("abc")})
	fmt.Println(err)
	// Output:
	// login with *** ok
	// header: Basic dXNlcjp***
	// error: bad token "***"
	// mask: secret 0 is 3 bytes: mask: secret shorter than 4 bytes
}
