package target

import (
	"fmt"
	"strings"
)

// splitFields splits a host line on spaces and tabs outside quotes. A
// double or single quote starts a quoted stretch that ends at the same
// quote; the quotes are dropped, what is between them kept as it is.
func splitFields(line string) ([]string, error) {
	var fields []string
	var cur strings.Builder
	in := false // inside a field
	var quote byte
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			} else {
				cur.WriteByte(c)
			}
		case c == '"' || c == '\'':
			quote, in = c, true
		case c == ' ' || c == '\t':
			if in {
				fields = append(fields, cur.String())
				cur.Reset()
				in = false
			}
		default:
			cur.WriteByte(c)
			in = true
		}
	}
	if quote != 0 {
		return nil, fmt.Errorf("unterminated %c quote", quote)
	}
	if in {
		fields = append(fields, cur.String())
	}
	return fields, nil
}

// unquote drops the quotes around a [GROUP:vars] value quoted whole.
func unquote(v string) string {
	if len(v) >= 2 && (v[0] == '"' || v[0] == '\'') && v[len(v)-1] == v[0] {
		return v[1 : len(v)-1]
	}
	return v
}

// checkVarName validates a variable's name: it must also serve as an
// environment variable's.
func checkVarName(k string) error {
	if k == "" {
		return fmt.Errorf("empty variable name")
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c == '_' || i > 0 && '0' <= c && c <= '9') {
			return fmt.Errorf("variable name %q: want letters, digits and %q, not starting with a digit", k, "_")
		}
	}
	if strings.HasPrefix(k, "ansible_") {
		return fmt.Errorf("%s=: spindle reads no ansible_* variables (give a host's connection as target=ssh://USER@HOST:PORT, and via=)", k)
	}
	return nil
}

// placeholder is what target=, via= and name= may hold in place of the
// host's name.
const placeholder = "{name}"

// fillName puts the host's name in place of {name}; any other brace is an
// error.
func fillName(key, v, host string) (string, error) {
	if strings.ContainsAny(strings.ReplaceAll(v, placeholder, ""), "{}") {
		return "", fmt.Errorf("%s=%s: the one placeholder is %s", key, v, placeholder)
	}
	return strings.ReplaceAll(v, placeholder, host), nil
}
