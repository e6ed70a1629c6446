package oslayer

// KernelReason is kernelReason, for the tests.
var KernelReason = kernelReason
