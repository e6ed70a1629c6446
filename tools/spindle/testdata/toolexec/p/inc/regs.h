// The register Add sums in: a header below the package's directory, as
// runtime's cgo/abi_amd64.h is, so that a shipped asm run needs the
// includes of its sources followed (gotool's asmIncludes).
#define SUM AX
