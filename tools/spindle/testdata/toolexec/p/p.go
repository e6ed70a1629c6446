// Package p adds, in assembly on amd64.
package p
