module example.com/spindletest

go 1.26
