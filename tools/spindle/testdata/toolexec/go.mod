module example.com/toolexec

go 1.24
