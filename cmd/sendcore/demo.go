package main

import (
	"context"
	"fmt"
)

func cmdDemo(_ context.Context, _ []string, io stdio) int {
	fmt.Fprintln(io.err, "sendcore demo: not built yet")
	return exitFailure
}
