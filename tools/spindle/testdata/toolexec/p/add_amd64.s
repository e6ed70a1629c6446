#include "textflag.h"
#include "inc/regs.h"

// func Add(a, b int64) int64
TEXT ·Add(SB), NOSPLIT, $0-24
	MOVQ a+0(FP), SUM
	ADDQ b+8(FP), SUM
	MOVQ SUM, ret+16(FP)
	RET
