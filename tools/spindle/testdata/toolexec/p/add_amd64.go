package p

// Add returns a+b (add_amd64.s).
func Add(a, b int64) int64
