// Package deptest holds the test that keeps the import graph of this module
// as docs/imports.md draws it: message types and the frame codec at the
// bottom, importing none of the module's other packages.
//
// The package has no code of its own. Its test lists the module's packages
// with `go list` and fails on any import edge between them that the table
// at the top of deptest_test.go does not allow, on any package missing from
// that table, and on third-party imports by the bottom packages. A new
// package, or a new edge, is added to the table and to docs/imports.md in
// the same change.
package deptest
